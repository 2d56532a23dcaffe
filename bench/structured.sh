#!/usr/bin/env bash
# What constrained decoding costs: decode tok/s of `autoglm serve` (Qwen2.5-Coder-0.5B Q4_K_M,
# 2 threads) with a JSON Schema response_format vs the same requests without one, at concurrency
# 1 and 8, greedy and sampled (temperature 0.8, where every step needs the token mask), in
# alternating rounds (ROUNDS, default 3; medians). Decode tok/s per request = (completion tokens
# − 1) / (last token time − first token time), from the SSE stream; the figure is the median over
# requests and rounds. Then the grammar costs from the server's /metrics: compile time per
# request, token masks built (per-state cache misses) and the mean time per mask.
# The unconstrained requests use ignore_eos with the same max_tokens, so both decode comparable
# lengths. Not part of CI. Env: ROUNDS (3), MAX_TOKENS (96), THREADS (2), AUTOGLM.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
QWEN="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
ROUNDS="${ROUNDS:-3}"; MAX_TOKENS="${MAX_TOKENS:-96}"; THREADS="${THREADS:-2}"
need_autoglm; need_model "$QWEN"
RES="$(mktemp -d -t structured.XXXXXX)"
p="$(port)"
bg_start "$RES/serve.log" "$AUTOGLM" serve --model "$QWEN" --threads "$THREADS" --max-seqs 8 --kv-cache-mb 256 \
  --ctx 1024 --host 127.0.0.1 --port "$p" --served-model-name qwen
wait_ready "http://127.0.0.1:$p/readyz" || { echo "server did not come up; see $RES/serve.log" >&2; exit 1; }
echo "model $QWEN; threads $THREADS; max_tokens $MAX_TOKENS; $ROUNDS alternating rounds; load average before: $(loadavg)"
python3 - "$p" "$ROUNDS" "$MAX_TOKENS" <<'PY'
import json, statistics, sys, threading, time, urllib.request
port, rounds, max_tokens = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
url = f"http://127.0.0.1:{port}"
# A schema whose answers run long: a list of people with several fields each.
schema = {"type": "object", "properties": {"people": {"type": "array", "items": {
    "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                     "city": {"type": "string"}, "hobbies": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age", "city", "hobbies"], "additionalProperties": False}}},
    "required": ["people"], "additionalProperties": False}
topics = ["a football team", "a chess club", "a book club", "a cooking class", "a hiking group", "a rock band",
          "a school class", "an office team"]

def one(k, constrained, temperature, out):
    body = {"model": "qwen", "max_tokens": max_tokens, "temperature": temperature, "seed": k, "stream": True,
            "messages": [{"role": "user", "content": f"List the members of {topics[k % len(topics)]} as JSON."}]}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "people", "schema": schema, "strict": True}}
    else:
        body["ignore_eos"] = True
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    times = []
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if line.startswith(b"data: {"):
                c = json.loads(line[6:])
                if c["choices"] and c["choices"][0]["delta"].get("content"):
                    times.append(time.monotonic())
    if len(times) > 2:
        out.append((len(times) - 1) / (times[-1] - times[0]))

def run(conc, constrained, temperature):
    out, threads = [], []
    for k in range(conc):
        t = threading.Thread(target=one, args=(k, constrained, temperature, out)); t.start(); threads.append(t)
    for t in threads: t.join()
    return out

# Warm-up: the vocabulary-as-bytes table and the code paths.
run(1, True, 0); run(1, False, 0)
results = {}
for rnd in range(rounds):
    for conc in (1, 8):
        for temperature in (0.0, 0.8):
            for constrained in (False, True):
                results.setdefault((conc, temperature, constrained), []).extend(run(conc, constrained, temperature))
print(f"{'concurrency':>11} {'temperature':>11} {'plain tok/s':>12} {'schema tok/s':>13} {'ratio':>6}")
for conc in (1, 8):
    for temperature in (0.0, 0.8):
        a = statistics.median(results[(conc, temperature, False)]); b = statistics.median(results[(conc, temperature, True)])
        print(f"{conc:>11} {temperature:>11} {a:>12.1f} {b:>13.1f} {b / a:>6.2f}")
text = urllib.request.urlopen(url + "/metrics").read().decode()
def metric(name):
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name) and not l.startswith("#"))
masks, mask_s = metric("autoglm:grammar_masks_built_total"), metric("autoglm:grammar_mask_seconds_total")
cs, cc = metric("autoglm:grammar_compile_seconds_sum"), metric("autoglm:grammar_compile_seconds_count")
print(f"grammar compile: {cs / max(cc, 1) * 1000:.2f} ms per request ({int(cc)} requests)")
print(f"token masks built: {int(masks)}, {mask_s / max(masks, 1) * 1000:.2f} ms each (151,665-token vocabulary)")
PY
echo "load average after: $(loadavg)"
