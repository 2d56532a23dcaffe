#!/usr/bin/env bash
# bench/optimize-vs-grid.sh — not in CI. Measures, on this machine with gemma3-270m:
#  (a) the default `autoglm serve` configuration vs the one `autoglm optimize` picks, on the same
#      workload (closed loop, fixed prompt/output lengths) and the same latency SLO.
#  (b) the exhaustive-grid comparison of the issue is NOT implemented yet (optimize has no grid mode).
# Usage: bash bench/optimize-vs-grid.sh [TRIALS]   (env: SLO_MS, CONC, REQS, PROMPT, OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-12}
SLO_MS=${SLO_MS:-20000}
CONC=${CONC:-4}
REQS=${REQS:-16}
PROMPT=${PROMPT:-64}
OUT=${OUT:-32}
BIN=.build/release/autoglm
MODEL=${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf
[ -x "$BIN" ] || swift build -c release --product autoglm
WORK=$(mktemp -d)
export AUTOGLM_HOME=$WORK/home

echo "== (a) default configuration (autoglm serve defaults)"
PORT=$((20000 + RANDOM % 20000))
"$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
"$BIN" loadtest --url "http://127.0.0.1:$PORT" --concurrency "$CONC" --requests "$REQS" \
  --prompt-tokens "$PROMPT" --max-tokens "$OUT" --warmup 1 --slo "e2e=$SLO_MS" --json >"$WORK/default.json"
kill $PID; wait $PID 2>/dev/null || true
python3 -c "import json,sys; r=json.load(open('$WORK/default.json')); print('default: %.1f tok/s, e2e p99 %.0f ms, goodput %s' % (r['outputTokensPerSecond'], r['e2e']['p99'], r.get('goodput')))"

echo "== (a) autoglm optimize, $TRIALS trials"
"$BIN" optimize --model "$MODEL" --objective throughput --max-latency-ms "$SLO_MS" --concurrency "$CONC" \
  --requests "$REQS" --prompt-tokens "$PROMPT" --max-tokens "$OUT" --max-trials "$TRIALS" --seed 1 \
  --report "$WORK/report" | tail -1
python3 -c "import json; r=json.load(open('$WORK/report/report.json')); b=r.get('best'); print('tuned: %s' % ('%.1f tok/s with %s' % (b['objective'], b['config']) if b else r['summary']))"
echo "(b) grid comparison: not implemented"
