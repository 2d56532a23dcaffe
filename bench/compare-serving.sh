#!/usr/bin/env bash
# Serving benchmark: our `autoglm serve` vs llama.cpp's `llama-server`, same model (gemma3-270m
# Q4_K_M), 2 threads each, one server at a time, alternating per concurrency level, driven by
# `autoglm loadtest --json` (closed loop, token-id prompts, ignore_eos, fixed output length).
# Not part of CI. Builds llama-server once (bench/build-llama-server.sh; slow on 2 cores).
#
# Env: CONCURRENCY ("1 4 8"), NP ("1 4 8": llama-server -np values tried; -c = CTX_PER_SLOT × np),
#      PROMPT (64), OUT (64), REQS_PER_C (4: requests per client), THREADS (2), ROUNDS (1),
#      AUTOGLM (.build/release/autoglm), LLAMA_SERVER (path; default: build it; "none": ours only).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CONCURRENCY="${CONCURRENCY:-1 4 8}"
NP="${NP:-1 4 8}"
PROMPT="${PROMPT:-64}"; OUTTOK="${OUT:-64}"; REQS_PER_C="${REQS_PER_C:-4}"
THREADS="${THREADS:-2}"; ROUNDS="${ROUNDS:-1}"; CTX_PER_SLOT="${CTX_PER_SLOT:-512}"
need_autoglm; need_model
LLAMA_SERVER="$(llama_server_path)"
RES="$(mktemp -d -t compare-serving.XXXXXX)"
PID=""
stop() { stop_pid "$PID"; PID=""; }

# run NAME C START-COMMAND... : starts a server, loads it at concurrency C, stops it.
run() {
  local name="$1" c="$2" p; shift 2
  p="$(port)"
  bg_start "$RES/$name-c$c.log" "$@" --port "$p"
  PID=$BG_PID
  if ! wait_ready "http://127.0.0.1:$p/${READY_PATH:-readyz}"; then echo "$name did not come up; see $RES/$name-c$c.log" >&2; stop; return 1; fi
  "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --concurrency "$c" --requests $((c * REQS_PER_C)) \
    --prompt-tokens "$PROMPT" --max-tokens "$OUTTOK" --warmup "$c" --seed 1 --json >"$RES/$name-c$c.json"
  stop
}

for round in $(seq 1 "$ROUNDS"); do
  # The engine alone, same model, threads and lengths, right before the servers (the C=1 bar
  # compares serving at concurrency 1 with this decode speed).
  "$AUTOGLM" bench --model "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPT" --gen-tokens "$OUTTOK" \
    --json >"$RES/bench-r$round.json"
  for c in $CONCURRENCY; do
    READY_PATH=readyz run "autoglm-r$round" "$c" "$AUTOGLM" serve --model "$MODEL" --threads "$THREADS" \
      --max-seqs "$((c > 8 ? c : 8))" --kv-cache-mb 512 --ctx "$CTX_PER_SLOT"
    [ "$LLAMA_SERVER" = none ] && continue
    for np in $NP; do
      READY_PATH=health run "llama-np$np-r$round" "$c" "$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" -tb "$THREADS" \
        -np "$np" -c $((CTX_PER_SLOT * np)) --host 127.0.0.1
    done
  done
done

[ "$LLAMA_SERVER" = none ] && NP=""
python3 - "$RES" "$CONCURRENCY" "$NP" "$ROUNDS" <<'PY'
import json, os, sys, statistics
res, cs, nps, rounds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
def load(name, c):
    vals = []
    for r in range(1, rounds + 1):
        p = os.path.join(res, f"{name}-r{r}-c{c}.json")
        if os.path.exists(p):
            vals.append(json.load(open(p)))
    return vals
def med(vs, f): return statistics.median(f(v) for v in vs) if vs else float("nan")
print(f"{'server':<14}{'C':>3}{'tok/s':>9}{'TTFT p50':>10}{'TTFT p99':>10}{'TPOT p50':>10}{'TPOT p99':>10}{'e2e p50':>9}{'fail':>6}{'tok/s ratio':>13}")
for c in cs:
    ours = load("autoglm", c)
    base = med(ours, lambda v: v["outputTokensPerSecond"])
    rows = [("autoglm", ours)] + [(f"llama np={n}", load(f"llama-np{n}", c)) for n in nps]
    for name, vs in rows:
        if not vs: print(f"{name:<14}{c:>3}  (no result)"); continue
        tps = med(vs, lambda v: v["outputTokensPerSecond"])
        ratio = base / tps if tps else float("nan")
        print(f"{name:<14}{c:>3}{tps:>9.1f}{med(vs, lambda v: v['ttft']['p50']):>10.0f}{med(vs, lambda v: v['ttft']['p99']):>10.0f}"
              f"{med(vs, lambda v: v['tpot']['p50']):>10.1f}{med(vs, lambda v: v['tpot']['p99']):>10.1f}{med(vs, lambda v: v['e2e']['p50']):>9.0f}"
              f"{sum(v['failed'] for v in vs):>6}{ratio:>13.2f}")
print("(ratio = autoglm tok/s ÷ that row's tok/s; ms elsewhere)")
benches = [json.load(open(os.path.join(res, f"bench-r{r}.json"))) for r in range(1, rounds + 1)
           if os.path.exists(os.path.join(res, f"bench-r{r}.json"))]
ones = load("autoglm", "1")
if benches and ones:
    dec = statistics.median(b["decode_tok_s"] for b in benches)
    pre = statistics.median(b["prefill_tok_s"] for b in benches)
    out1 = med(ones, lambda v: v["outputTokensPerSecond"])
    tpot = med(ones, lambda v: v["tpot"]["p50"])
    print(f"autoglm bench (same lengths, interleaved): prefill {pre:.1f} tok/s, decode {dec:.1f} tok/s")
    print(f"C=1 serving: output {out1:.1f} tok/s = {out1 / dec:.2f}x bench decode (includes TTFT); "
          f"1000/TPOT p50 = {1000 / tpot:.1f} tok/s = {1000 / tpot / dec:.2f}x bench decode")
PY
echo "load average: $(loadavg)   raw results: $RES"
