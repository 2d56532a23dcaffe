#!/usr/bin/env bash
# bench/optimize-vs-grid.sh — not in CI. Measures, on this machine with gemma3-270m:
#  (a) the default `autoglm serve` configuration vs the one `autoglm optimize` picks, on the same
#      workload (closed loop, fixed prompt/output lengths) and the same latency SLO.
#  (b) an exhaustive grid of the discretised space (`optimize --strategy grid --grid-levels LEVELS`)
#      vs Bayesian search of exactly the same discretised space with a quarter of the grid's
#      trials (`--grid-levels LEVELS --max-trials N/4`): the best objective of each and their ratio.
# Usage: bash bench/optimize-vs-grid.sh [TRIALS]   (env: SLO_MS, CONC, REQS, PROMPT, OUT, LEVELS, PART=a|b|ab)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-12}
SLO_MS=${SLO_MS:-20000}
CONC=${CONC:-4}
REQS=${REQS:-16}
PROMPT=${PROMPT:-64}
OUT=${OUT:-32}
LEVELS=${LEVELS:-3}
PART=${PART:-ab}
BIN=.build/release/autoglm
MODEL=${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf
[ -x "$BIN" ] || swift build -c release --product autoglm
WORK=$(mktemp -d)
export AUTOGLM_HOME=$WORK/home

best() { python3 -c "import json; r=json.load(open('$1/report.json')); b=r.get('best'); print(b['objective'] if b else 'nan')"; }
ntrials() { python3 -c "import json; print(len(json.load(open('$1/report.json'))['trials']))"; }
run_b() {
  echo "== (b) exhaustive grid, $LEVELS levels per integer knob"
  "$BIN" optimize --model "$MODEL" --objective throughput --max-latency-ms "$SLO_MS" --concurrency "$CONC" \
    --requests "$REQS" --prompt-tokens "$PROMPT" --max-tokens "$OUT" --strategy grid --grid-levels "$LEVELS" \
    --max-trials 100000 --report "$WORK/grid" 2>&1 | grep -E "^grid:|^best:" || true
  local n; n=$(ntrials "$WORK/grid")
  local quarter=$(( n / 4 ))
  echo "== (b) Bayesian search of the same discretised space, $quarter trials (a quarter of $n)"
  "$BIN" optimize --model "$MODEL" --objective throughput --max-latency-ms "$SLO_MS" --concurrency "$CONC" \
    --requests "$REQS" --prompt-tokens "$PROMPT" --max-tokens "$OUT" --grid-levels "$LEVELS" \
    --max-trials "$quarter" --seed 1 --report "$WORK/bayes" 2>&1 | grep -E "^best:" || true
  python3 - "$WORK/grid/report.json" "$WORK/bayes/report.json" <<'PY'
import json, sys
g, b = (json.load(open(p)) for p in sys.argv[1:3])
gb, bb = g.get("best"), b.get("best")
print(f"grid:  {len(g['trials'])} trials, best {gb['objective']:.1f} tok/s with {gb['config']}" if gb else f"grid: {len(g['trials'])} trials, nothing feasible")
print(f"bayes: {len(b['trials'])} trials, best {bb['objective']:.1f} tok/s with {bb['config']}" if bb else f"bayes: {len(b['trials'])} trials, nothing feasible")
if gb and bb:
    # the first bayes trial whose objective is within 5% of the grid's best
    hit = next((t["index"] + 1 for t in b["trials"] if t["status"] == "ok" and t["objective"] >= 0.95 * gb["objective"]), None)
    print(f"bayes/grid best = {bb['objective'] / gb['objective']:.3f}; trials used {len(b['trials'])}/{len(g['trials'])} = "
          f"{len(b['trials']) / len(g['trials']):.2f}; first trial within 5% of the grid best: {hit}")
PY
}
if [ "$PART" = b ]; then run_b; exit 0; fi

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
[ "$PART" = a ] || run_b
