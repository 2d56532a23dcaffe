#!/usr/bin/env bash
# bench/optimize-vs-grid.sh — not in CI. Measures, on this machine with gemma3-270m:
#  (a) the default `autoglm serve` configuration vs the one `autoglm optimize` picks for a workload
#      and SLO: optimize runs TRIALS trials, then the default and the tuned configuration are
#      measured again side by side, alternating, ROUNDS times each (medians), with the same
#      `autoglm loadtest` workload: the objective of each, the SLO percentile, and the ratio.
#  (b) an exhaustive grid of the discretised space (`optimize --strategy grid --grid-levels LEVELS`)
#      vs Bayesian search of exactly the same discretised space with a quarter of the grid's
#      trials (`--grid-levels LEVELS --max-trials N/4`): the best objective of each and their ratio.
# Usage: bash bench/optimize-vs-grid.sh [TRIALS]
# Env (a): OBJECTIVE (goodput), SLO_KIND (ttft|tpot|e2e; ttft), SLO_MS (1500), CONC (16), REQS (48),
#          PROMPT (128), OUT (64), ROUNDS (3), KNOBS_A (searched knobs; default: all)
# Env (b): B_ROUNDS (3), B_CONC (4), B_REQS (16), B_PROMPT (64), B_OUT (32), B_SLO_MS (20000, e2e), LEVELS (3),
#          KNOBS_B (threads,maxSeqs,maxBatchedTokens,kvCacheMB)
# PART=a|b|ab (ab)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TRIALS=${1:-12}
OBJECTIVE=${OBJECTIVE:-goodput}
SLO_KIND=${SLO_KIND:-ttft}
SLO_MS=${SLO_MS:-1500}
CONC=${CONC:-16}
REQS=${REQS:-48}
PROMPT=${PROMPT:-128}
OUT=${OUT:-64}
ROUNDS=${ROUNDS:-3}
KNOBS_A=${KNOBS_A:-}
B_CONC=${B_CONC:-4}
B_REQS=${B_REQS:-16}
B_PROMPT=${B_PROMPT:-64}
B_OUT=${B_OUT:-32}
B_SLO_MS=${B_SLO_MS:-20000}
LEVELS=${LEVELS:-3}
KNOBS_B=${KNOBS_B:-threads,maxSeqs,maxBatchedTokens,kvCacheMB}
PART=${PART:-ab}
BIN=$AUTOGLM
[ -x "$BIN" ] || swift build -c release --product autoglm
WORK=$(mktemp -d)
export AUTOGLM_HOME=$WORK/home
at_exit 'rm -rf "$WORK"'
echo "load average before: $(loadavg)"

ntrials() { python3 -c "import json; print(len(json.load(open('$1/report.json'))['trials']))"; }

# The best configuration of an optimize report as "REPLICAS serve-flags…" (0 when nothing was feasible).
serve_flags() {
  python3 - "$1" <<'PY'
import json, sys
b = json.load(open(sys.argv[1])).get("best")
if not b: print("0"); sys.exit()
c = b["config"]
flags = {"threads": "--threads", "maxSeqs": "--max-seqs", "maxBatchedTokens": "--max-batched-tokens",
         "kvCacheMB": "--kv-cache-mb", "kvCacheType": "--kv-type", "batchWaitMs": "--batch-wait-ms"}
print(c.get("replicas", "1"), " ".join(f"{flags[k]} {v}" for k, v in sorted(c.items()) if k in flags))
PY
}

# Starts one `autoglm serve` per replica with the given flags; prints the base URLs.
start_servers() {
  local replicas=$1; shift
  local urls=()
  for _ in $(seq 1 "$replicas"); do
    local port; port=$(port)
    "$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$port" "$@" >>"$WORK/serve.log" 2>&1 &
    BENCH_PIDS+=($!)
    urls+=("http://127.0.0.1:$port")
  done
  for u in "${urls[@]}"; do wait_ready "$u/readyz" || true; done
  STARTED_URLS=("${urls[@]}")
}
stop_servers() { stop_all; }

# One measured loadtest of the (a) workload; writes JSON to $1.
measure() {
  local out=$1; shift
  local args=()
  for u in "${STARTED_URLS[@]}"; do args+=(--url "$u"); done
  "$BIN" loadtest "${args[@]}" --concurrency "$CONC" --requests "$REQS" --prompt-tokens "$PROMPT" --max-tokens "$OUT" \
    --warmup 2 --slo "$SLO_KIND=$SLO_MS" --json >"$out"
}

run_a() {
  echo "== (a) autoglm optimize: objective $OBJECTIVE, $SLO_KIND p95 ≤ $SLO_MS ms, C=$CONC, $REQS requests of $PROMPT+$OUT tokens, $TRIALS trials"
  local knobs=()
  [ -n "$KNOBS_A" ] && knobs=(--knobs "$KNOBS_A")
  local sloflag="--max-$SLO_KIND-ms"
  [ "$SLO_KIND" = e2e ] && sloflag="--max-latency-ms"
  "$BIN" optimize --model "$MODEL" --objective "$OBJECTIVE" "$sloflag" "$SLO_MS" --concurrency "$CONC" \
    --requests "$REQS" --prompt-tokens "$PROMPT" --max-tokens "$OUT" --max-trials "$TRIALS" --seed 1 "${knobs[@]}" \
    --report "$WORK/report" 2>&1 | grep -E "^best:|^no configuration" || true
  # The tuned configuration as serve flags (and its replica count).
  read -r REPLICAS TUNED < <(serve_flags "$WORK/report/report.json")
  if [ "$REPLICAS" = 0 ]; then echo "optimize found nothing that meets the SLO"; return; fi
  echo "tuned: $REPLICAS replica(s) × serve $TUNED"
  for r in $(seq 1 "$ROUNDS"); do
    start_servers 1; measure "$WORK/default-$r.json"; stop_servers
    # shellcheck disable=SC2086
    start_servers "$REPLICAS" $TUNED; measure "$WORK/tuned-$r.json"; stop_servers
    echo "round $r done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
  python3 - "$WORK" "$ROUNDS" "$OBJECTIVE" "$SLO_KIND" "$SLO_MS" <<'PY'
import json, statistics, sys
work, rounds, objective, kind, slo = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
def value(r):
    return r["outputTokensPerSecond"] if objective == "throughput" else (r.get("goodput") or 0.0)
unit = "tok/s" if objective == "throughput" else "req/s"
rows = {}
for name in ("default", "tuned"):
    rs = [json.load(open(f"{work}/{name}-{i}.json")) for i in range(1, rounds + 1)]
    vals = [value(r) for r in rs]
    p95 = [r[kind]["p95"] for r in rs]
    tput = [r["outputTokensPerSecond"] for r in rs]
    rows[name] = statistics.median(vals)
    print(f"{name:8s} {objective} median {statistics.median(vals):.2f} {unit} (per round {', '.join(f'{v:.2f}' for v in vals)}); "
          f"{kind} p95 median {statistics.median(p95):.0f} ms (SLO {slo:.0f}); output {statistics.median(tput):.1f} tok/s")
if rows["default"] > 0:
    print(f"tuned/default {objective} = {rows['tuned'] / rows['default']:.2f}x")
else:
    print(f"default {objective} is 0 (no request met the SLO); tuned {rows['tuned']:.2f} {unit}")
PY
}

run_b() {
  local common=(--model "$MODEL" --objective throughput --max-latency-ms "$B_SLO_MS" --concurrency "$B_CONC"
    --requests "$B_REQS" --prompt-tokens "$B_PROMPT" --max-tokens "$B_OUT" --grid-levels "$LEVELS" --knobs "$KNOBS_B")
  echo "== (b) exhaustive grid, $LEVELS levels per integer knob, knobs $KNOBS_B"
  "$BIN" optimize "${common[@]}" --strategy grid --max-trials 100000 --report "$WORK/grid" 2>&1 | grep -E "grid:|^best:" || true
  local n; n=$(ntrials "$WORK/grid")
  local quarter=$(( n / 4 ))
  echo "== (b) Bayesian search of the same discretised space, $quarter trials (a quarter of $n)"
  "$BIN" optimize "${common[@]}" --max-trials "$quarter" --seed 1 --report "$WORK/bayes" 2>&1 | grep -E "^best:" || true
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
  # Each study's best is the maximum of noisy measurements (the grid's of 4x more), so the two
  # winners are measured again side by side, alternating, B_ROUNDS times each: medians.
  local gr gf br bf
  read -r gr gf < <(serve_flags "$WORK/grid/report.json")
  read -r br bf < <(serve_flags "$WORK/bayes/report.json")
  if [ "$gr" = 0 ] || [ "$br" = 0 ]; then return; fi
  for r in $(seq 1 "${B_ROUNDS:-3}"); do
    # shellcheck disable=SC2086
    start_servers "$gr" $gf; measure_b "$WORK/gridbest-$r.json"; stop_servers
    # shellcheck disable=SC2086
    start_servers "$br" $bf; measure_b "$WORK/bayesbest-$r.json"; stop_servers
  done
  python3 - "$WORK" "${B_ROUNDS:-3}" <<'PY'
import json, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
med = {}
for name in ("gridbest", "bayesbest"):
    v = [json.load(open(f"{work}/{name}-{i}.json"))["outputTokensPerSecond"] for i in range(1, n + 1)]
    med[name] = statistics.median(v)
    print(f"re-measured {name}: median {med[name]:.1f} tok/s (per round {', '.join(f'{x:.1f}' for x in v)})")
print(f"re-measured bayes/grid = {med['bayesbest'] / med['gridbest']:.3f}")
PY
}

# One measured loadtest of the (b) workload; writes JSON to $1.
measure_b() {
  local args=()
  for u in "${STARTED_URLS[@]}"; do args+=(--url "$u"); done
  "$BIN" loadtest "${args[@]}" --concurrency "$B_CONC" --requests "$B_REQS" --prompt-tokens "$B_PROMPT" \
    --max-tokens "$B_OUT" --warmup 2 --json >"$1"
}

case "$PART" in
  a) run_a ;;
  b) run_b ;;
  *) run_a; run_b ;;
esac
echo "load average after: $(loadavg)"
