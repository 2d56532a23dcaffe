#!/usr/bin/env bash
# What the front door costs: one llama-server (gemma3-270m Q4_K_M, -np 8, 2 threads) measured
# directly and through autoglm, alternating A/B per round, at concurrency 1 and 8, with
# `autoglm loadtest --json` (closed loop, token-id prompts, ignore_eos, fixed lengths).
# FRONT=serve (default): `autoglm serve --config` (backend llamacpp) fronting that same process with
#   --backend-url, so both paths hit one warm server.
# FRONT=up: `autoglm up` (backend llamacpp, 1 replica) — the fleet's gateway; "direct" is its
#   replica's own address (from /fleet/status).
# Prints output tok/s and TTFT p50 per path, the medians over rounds, and the ratios.
# Not part of CI. Env: FRONT (serve), ROUNDS (5), CONCURRENCY ("1 8"), PROMPT (64), OUT (64), REQS_PER_C (4),
#   THREADS (2), AUTOGLM (.build/release/autoglm), LLAMA_SERVER (default: bench/build-llama-server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${ROUNDS:-5}"; CONCURRENCY="${CONCURRENCY:-1 8}"
PROMPT="${PROMPT:-64}"; OUTTOK="${OUT:-64}"; REQS_PER_C="${REQS_PER_C:-4}"; THREADS="${THREADS:-2}"
need_autoglm; need_model
LLAMA_SERVER="$(llama_server_path)"
RES="$(mktemp -d -t frontdoor.XXXXXX)"

FRONT="${FRONT:-serve}"
LPORT="$(port)"; FPORT="$(port)"
cat >"$RES/spec.yaml" <<YAML
apiVersion: autoglm/v1
kind: Deployment
name: frontdoor-bench
model:
  ref: $MODEL
backend:
  type: llamacpp
  executable: $LLAMA_SERVER
  threads: $THREADS
  maxSeqs: 8
  contextLength: 512
YAML
if [ "$FRONT" = up ]; then
  bg_start "$RES/up.log" "$AUTOGLM" up "$RES/spec.yaml" --replicas 1 --host 127.0.0.1 --port "$FPORT" --max-queue 64 \
    --watch-interval 0
  FRONT_PID=$BG_PID
  wait_ready "http://127.0.0.1:$FPORT/readyz"
  LPORT="$(curl -fsS "http://127.0.0.1:$FPORT/fleet/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replicas"][0]["url"].rsplit(":",1)[1])')"
else
  bg_start "$RES/llama-server.log" "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$LPORT" --alias bench \
    -t "$THREADS" -np 8 -c $((8 * 512)) --metrics --no-webui
  bg_start "$RES/serve.log" "$AUTOGLM" serve --config "$RES/spec.yaml" --backend-url "http://127.0.0.1:$LPORT" \
    --host 127.0.0.1 --port "$FPORT" --max-queue 64
  FRONT_PID=$BG_PID
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, clock ticks
wait_ready "http://127.0.0.1:$LPORT/health"
wait_ready "http://127.0.0.1:$FPORT/readyz"
echo "front: $FRONT (pid $FRONT_PID), backend: llama-server on port $LPORT"
echo "load average before: $(loadavg)"

for round in $(seq 1 "$ROUNDS"); do
  for c in $CONCURRENCY; do
    # Alternate which path goes first, so drift (other load, heat) falls on both.
    order="direct front"; [ $((round % 2)) = 0 ] && order="front direct"
    for path in $order; do
      p=$LPORT; seed=$((round * 2)); [ "$path" = front ] && { p=$FPORT; seed=$((round * 2 + 1)); }
      # A different seed per run: different random prompts, so llama-server's prompt cache never
      # gives the second path of a round a head start.
      before=$(cpu_ticks "$FRONT_PID")
      "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --concurrency "$c" --requests $((c * REQS_PER_C)) \
        --prompt-tokens "$PROMPT" --max-tokens "$OUTTOK" --warmup "$c" --seed "$seed" --json >"$RES/$path-c$c-r$round.json"
      echo $(( $(cpu_ticks "$FRONT_PID") - before )) >"$RES/$path-c$c-r$round.cpu"
    done
  done
done
echo "load average after: $(loadavg)"

python3 - "$RES" "$ROUNDS" "$CONCURRENCY" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
res, rounds, cs, tck = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
print(f"{'c':>3} {'path':>7} {'tok/s (rounds)':>40} {'median':>8} {'TTFT p50 ms (rounds)':>44} {'median':>8}")
for c in cs:
    med = {}
    for path in ("direct", "front"):
        rs = [json.load(open(f"{res}/{path}-c{c}-r{r}.json")) for r in range(1, rounds + 1)]
        bad = sum(r["failed"] for r in rs)
        tps = [r["outputTokensPerSecond"] for r in rs]
        ttft = [r["ttft"]["p50"] for r in rs]  # LoadGen reports milliseconds
        med[path] = (statistics.median(tps), statistics.median(ttft))
        print(f"{c:>3} {path:>7} {' '.join(f'{x:6.1f}' for x in tps):>40} {med[path][0]:8.1f} "
              f"{' '.join(f'{x:7.1f}' for x in ttft):>44} {med[path][1]:8.1f}" + (f"  FAILED {bad}" if bad else ""))
    print(f"{c:>3}   front/direct throughput {med['front'][0] / med['direct'][0] * 100:.1f}%   "
          f"added TTFT p50 {med['front'][1] - med['direct'][1]:+.2f} ms")
    # The front door's own CPU while it relayed (a noise-free cost: on a box whose cores the
    # backend fills, this is what it takes from the backend).
    secs_ = sum(int(open(f"{res}/front-c{c}-r{r}.cpu").read()) for r in range(1, rounds + 1)) / tck
    toks = sum(json.load(open(f"{res}/front-c{c}-r{r}.json"))["outputTokens"] for r in range(1, rounds + 1))
    wall = sum(json.load(open(f"{res}/front-c{c}-r{r}.json"))["durationSeconds"] for r in range(1, rounds + 1))
    print(f"{c:>3}   front door CPU {secs_:.2f} s for {toks} tokens ({secs_ / toks * 1e6:.0f} µs/token), "
          f"{secs_ / wall * 100:.1f}% of one core over its runs")
PY
