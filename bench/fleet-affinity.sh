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
AUTOGLM="${AUTOGLM:-.build/release/autoglm}"
MODEL="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf"
ROUNDS="${ROUNDS:-3}"; S="${S:-1000}"
[ -x "$AUTOGLM" ] || { echo "no $AUTOGLM: swift build -c release --product autoglm" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "no $MODEL: bash scripts/fetch-models.sh" >&2; exit 1; }
LLAMA_SERVER="${LLAMA_SERVER:-$(bash bench/build-llama-server.sh)}"
RES="$(mktemp -d -t fleet-affinity.XXXXXX)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { for _ in $(seq 1 900); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "not ready: $1" >&2; return 1; }
UP_PID=""
cleanup() { [ -n "$UP_PID" ] && { kill "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; }; }
trap cleanup EXIT
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
  "$AUTOGLM" up "$RES/spec.yaml" --replicas 2 --policy "$1" --host 127.0.0.1 --port "$p" --max-queue 256 \
    --watch-interval 0 >"$RES/$1-r$2.log" 2>&1 &
  UP_PID=$!
  wait_ready "http://127.0.0.1:$p/readyz"
  for _ in $(seq 1 600); do
    n=$(curl -fsS "http://127.0.0.1:$p/fleet/status" | python3 -c 'import json,sys; print(sum(r["state"]=="ready" for r in json.load(sys.stdin)["replicas"]))')
    [ "$n" = 2 ] && break; sleep 0.2
  done
  "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --conversations 8 --turns 4 --system-tokens "$S" --user-tokens 32 \
    --max-tokens 32 --seed "$2" --json >"$RES/$1-r$2.json"
  kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=""
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="prefix-affinity round-robin"; else order="round-robin prefix-affinity"; fi
  for policy in $order; do run "$policy" "$round"; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

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
