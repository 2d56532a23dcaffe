#!/usr/bin/env bash
# Request tracing's cost on the native server: c=8 closed-loop throughput (`autoglm loadtest`)
# against three `autoglm serve` processes of the same model, run one at a time in alternating
# order per round (idle servers sleep), medians over the rounds:
#   off    no --otlp-endpoint (no tracer bootstrapped)
#   on     --otlp-endpoint to a live collector (tests/tracing/otlp_collector.py), ratio 1.0
#   down   --otlp-endpoint to a closed port (every export fails; spans dropped and counted)
# Prints numbers only (no assertions). Target: on ≥ 98% of off.
# Usage: bench/tracing-overhead.sh   (ROUNDS=9 C=8 REQS_PER_C=8 PROMPT=64 OUTTOK=32)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
need_autoglm; need_model
ROUNDS="${ROUNDS:-9}" C="${C:-8}" REQS_PER_C="${REQS_PER_C:-8}" PROMPT="${PROMPT:-64}" OUTTOK="${OUTTOK:-32}"
THREADS="${AUTOGLM_THREADS:-2}"
. tests/tracing/venv.sh
RES="$(mktemp -d -t autoglm-trace-bench.XXXXXX)"
at_exit rm -rf "$RES"
echo "load average before: $(loadavg)"

CPORT="$(port)"; DEAD="$(port)"
start_collector "$CPORT" "$RES/spans.jsonl" "$RES/collector.log"
declare -A PORTS SPID
# CPU time (user + system, clock ticks) a server process has used so far: per output token it is a
# steadier measure of tracing's cost than throughput, which other work on the box moves by ±15 %.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for v in off on down; do
  PORTS[$v]="$(port)"
  extra=()
  [ "$v" = on ] && extra=(--otlp-endpoint "http://127.0.0.1:$CPORT" --trace-sample-ratio 1.0)
  [ "$v" = down ] && extra=(--otlp-endpoint "http://127.0.0.1:$DEAD" --trace-sample-ratio 1.0)
  bg_start "$RES/serve-$v.log" "$AUTOGLM" serve --model "$MODEL" --host 127.0.0.1 --port "${PORTS[$v]}" \
    --max-seqs 8 --threads "$THREADS" "${extra[@]}"
  SPID[$v]="$BG_PID"
done
for v in off on down; do wait_ready "http://127.0.0.1:${PORTS[$v]}/readyz"; done

for round in $(seq 1 "$ROUNDS"); do
  order="off on down"; [ $((round % 2)) = 0 ] && order="down on off"
  for v in $order; do
    before="$(cpu_ticks "${SPID[$v]}")"
    "$AUTOGLM" loadtest --url "http://127.0.0.1:${PORTS[$v]}" --concurrency "$C" --requests $((C * REQS_PER_C)) \
      --prompt-tokens "$PROMPT" --max-tokens "$OUTTOK" --warmup "$C" --seed "$round" --json >"$RES/$v-r$round.json"
    echo $(( $(cpu_ticks "${SPID[$v]}") - before )) >"$RES/$v-r$round.ticks"
    echo "round $round $v: $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["outputTokensPerSecond"], 1))' "$RES/$v-r$round.json") tok/s (load $(loadavg))"
  done
done
echo "load average after: $(loadavg)"
dropped="$(curl -fsS "http://127.0.0.1:${PORTS[down]}/metrics" | awk '/^autoglm:trace_spans_dropped_total/ {print $2}' | head -1)"
exported="$(wc -l <"$RES/spans.jsonl" 2>/dev/null || echo 0)"

python3 - "$RES" "$ROUNDS" "$dropped" "$exported" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
res, rounds, dropped, exported, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
med = {}
for v in ("off", "on", "down"):
    rs = [json.load(open(f"{res}/{v}-r{r}.json")) for r in range(1, rounds + 1)]
    tps = [r["outputTokensPerSecond"] for r in rs]
    bad = sum(r["failed"] for r in rs)
    med[v] = statistics.median(tps)
    print(f"{v:>5}  tok/s per round {' '.join(f'{x:6.1f}' for x in tps)}  median {med[v]:6.1f}" + (f"  FAILED {bad}" if bad else ""))
# Each round runs the three back to back: the ratio within a round cancels the drift between
# rounds (other work on the box), so the median of the per-round ratios is the steadier figure.
def ratios(v):
    return [json.load(open(f"{res}/{v}-r{r}.json"))["outputTokensPerSecond"] / json.load(open(f"{res}/off-r{r}.json"))["outputTokensPerSecond"]
            for r in range(1, rounds + 1)]
on_r, down_r = ratios("on"), ratios("down")
print(f"per-round on/off   {' '.join(f'{x * 100:6.1f}' for x in on_r)}")
print(f"per-round down/off {' '.join(f'{x * 100:6.1f}' for x in down_r)}")
print(f"tracing on / off:             {med['on'] / med['off'] * 100:.1f}% of medians, {statistics.median(on_r) * 100:.1f}% median of per-round ratios")
print(f"tracing on, collector down:   {med['down'] / med['off'] * 100:.1f}% of medians, {statistics.median(down_r) * 100:.1f}% median of per-round ratios  (spans dropped and counted: {dropped})")
print(f"spans the live collector got: {exported}")
# The server's CPU time per output token (warmup included in both: same requests for every variant).
cpu = {}
for v in ("off", "on", "down"):
    per = []
    for r in range(1, rounds + 1):
        toks = json.load(open(f"{res}/{v}-r{r}.json"))["outputTokens"]
        ticks = int(open(f"{res}/{v}-r{r}.ticks").read())
        per.append(ticks / hz / max(toks, 1) * 1000)
    cpu[v] = statistics.median(per)
    print(f"{v:>5}  server CPU ms per output token {' '.join(f'{x:6.2f}' for x in per)}  median {cpu[v]:6.2f}")
print(f"server CPU per token, on / off: {cpu['on'] / cpu['off'] * 100:.1f}%   down / off: {cpu['down'] / cpu['off'] * 100:.1f}%")
PY
