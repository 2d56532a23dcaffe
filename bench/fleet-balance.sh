#!/usr/bin/env bash
# How the fleet spreads load on this box, with the native engine (gemma3-270m Q4_K_M) behind
# `autoglm up`, measured with `autoglm loadtest --json` through the gateway (closed loop, c=8,
# token-id prompts, ignore_eos). Each configuration runs in its own `up`, one at a time, in
# alternating order per round; medians over rounds.
#   1. 2 replicas × 1 thread vs 1 replica × 2 threads (fixed 64-token prompts and outputs).
#   2. least-outstanding vs round-robin on 2 replicas × 1 thread, outputs mixed uniformly in
#      8...256 tokens: p95 end-to-end latency.
# Not part of CI. Env: ROUNDS (3), C (8), REQS (32), AUTOGLM (.build/release/autoglm).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${ROUNDS:-3}"; C="${C:-8}"; REQS="${REQS:-32}"
need_autoglm; need_model
RES="$(mktemp -d -t fleet-balance.XXXXXX)"

spec() {  # threads maxSeqs
  cat >"$RES/spec-$1.yaml" <<YAML
apiVersion: autoglm/v1
name: balance-bench
model:
  ref: $MODEL
backend:
  type: native
  threads: $1
  maxSeqs: $2
  contextLength: 512
YAML
  echo "$RES/spec-$1.yaml"
}
S1="$(spec 1 8)"; S2="$(spec 2 8)"

# run NAME SPEC REPLICAS POLICY ROUND [extra loadtest flags...]
run() {
  local name=$1 spec=$2 replicas=$3 policy=$4 round=$5; shift 5
  local p; p="$(port)"
  bg_start "$RES/$name-r$round.log" "$AUTOGLM" up "$spec" --replicas "$replicas" --policy "$policy" --host 127.0.0.1 \
    --port "$p" --max-queue 256 --watch-interval 0
  wait_ready "http://127.0.0.1:$p/readyz" 900
  wait_replicas "http://127.0.0.1:$p" "$replicas"   # every replica (the gateway is ready with the first)
  "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --concurrency "$C" --requests "$REQS" --prompt-tokens 64 \
    --warmup "$C" --seed "$round" --json "$@" >"$RES/$name-r$round.json"
  stop_pid "$BG_PID"
}

echo "load average before: $(loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="a b"; else order="b a"; fi
  for x in $order; do
    if [ "$x" = a ]; then run 2x1 "$S1" 2 least-outstanding "$round" --max-tokens 64
    else run 1x2 "$S2" 1 least-outstanding "$round" --max-tokens 64; fi
  done
  for x in $order; do
    if [ "$x" = a ]; then run lo "$S1" 2 least-outstanding "$round" --max-tokens 8 --max-tokens-to 256
    else run rr "$S1" 2 round-robin "$round" --max-tokens 8 --max-tokens-to 256; fi
  done
done
echo "load average after: $(loadavg)"

python3 - "$RES" "$ROUNDS" <<'PY'
import json, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    return [json.load(open(f"{res}/{name}-r{r}.json")) for r in range(1, rounds + 1)]
def row(name, label):
    rs = load(name)
    tps = [r["outputTokensPerSecond"] for r in rs]
    ttft = [r["ttft"]["p50"] for r in rs]
    e2e = [r["e2e"]["p95"] for r in rs]
    bad = sum(r["failed"] for r in rs)
    print(f"{label:<34} tok/s {' '.join(f'{x:6.1f}' for x in tps)}  median {statistics.median(tps):6.1f} | "
          f"TTFT p50 ms {statistics.median(ttft):7.1f} | e2e p95 ms {' '.join(f'{x:7.0f}' for x in e2e)}  median {statistics.median(e2e):7.0f}"
          + (f"  FAILED {bad}" if bad else ""))
    return statistics.median(tps), statistics.median(e2e)
a = row("2x1", "2 replicas x 1 thread")
b = row("1x2", "1 replica x 2 threads")
print(f"  2x1 / 1x2 throughput: {a[0] / b[0]:.2f}x")
lo = row("lo", "least-outstanding, mixed 8-256")
rr = row("rr", "round-robin, mixed 8-256")
print(f"  least-outstanding / round-robin p95 e2e: {lo[1] / rr[1]:.2f}x")
PY
