#!/usr/bin/env bash
# prefix-affinity vs round-robin on a multi-turn chat workload: `autoglm up` with 2 llama-server
# replicas (backend llamacpp, 1 thread and 4 slots each, prompt caching on — llama-server's
# default: a slot keeps its last prompt's KV and a request takes the slot whose cached prompt
# it shares most with), gemma3-270m Q4_K_M; `autoglm loadtest --conversations 8 --turns 4
# --system-tokens S --user-tokens 32 --max-tokens 32` (8 conversations at once sharing one system
# prompt, each turn repeating the conversation so far). Alternating rounds, medians.
# Not part of CI. Env: ROUNDS (3), S (1000), AUTOGLM (.build/release/autoglm), LLAMA_SERVER.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${ROUNDS:-3}"; S="${S:-1000}"
need_autoglm; need_model
LLAMA_SERVER="$(llama_server_path)"
RES="$(mktemp -d -t fleet-affinity.XXXXXX)"
cat >"$RES/spec.yaml" <<YAML
apiVersion: autoglm/v1
name: affinity-bench
model:
  ref: $MODEL
backend:
  type: llamacpp
  executable: $LLAMA_SERVER
  threads: 1
  maxSeqs: 4
  contextLength: 2048
YAML

run() {  # POLICY ROUND
  local p; p="$(port)"
  bg_start "$RES/$1-r$2.log" "$AUTOGLM" up "$RES/spec.yaml" --replicas 2 --policy "$1" --host 127.0.0.1 --port "$p" \
    --max-queue 256 --watch-interval 0
  wait_ready "http://127.0.0.1:$p/readyz" 900
  wait_replicas "http://127.0.0.1:$p" 2
  "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --conversations 8 --turns 4 --system-tokens "$S" --user-tokens 32 \
    --max-tokens 32 --seed "$2" --json >"$RES/$1-r$2.json"
  stop_pid "$BG_PID"
}

echo "load average before: $(loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="prefix-affinity round-robin"; else order="round-robin prefix-affinity"; fi
  for policy in $order; do run "$policy" "$round"; done
done
echo "load average after: $(loadavg)"

python3 - "$RES" "$ROUNDS" <<'PY'
import json, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for policy in ("prefix-affinity", "round-robin"):
    rs = [json.load(open(f"{res}/{policy}-r{r}.json")) for r in range(1, rounds + 1)]
    tps = [r["outputTokensPerSecond"] for r in rs]
    t1 = [r["ttftByTurn"][0]["p50"] for r in rs]
    later = [statistics.median([t["p50"] for t in r["ttftByTurn"][1:]]) for r in rs]
    bad = sum(r["failed"] for r in rs)
    med[policy] = (statistics.median(tps), statistics.median(t1), statistics.median(later))
    print(f"{policy:<16} tok/s {' '.join(f'{x:6.1f}' for x in tps)} median {med[policy][0]:6.1f} | "
          f"TTFT p50 turn 1 {med[policy][1]:7.1f} ms, turns 2-4 {med[policy][2]:7.1f} ms" + (f"  FAILED {bad}" if bad else ""))
a, b = med["prefix-affinity"], med["round-robin"]
print(f"  prefix-affinity / round-robin: throughput {a[0] / b[0]:.2f}x, TTFT p50 of turns 2-4 {a[2] / b[2]:.2f}x")
PY
