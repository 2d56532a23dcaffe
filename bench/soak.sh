#!/usr/bin/env bash
# Overload soak of `autoglm serve` (not in CI): measures the sustainable request rate with a
# closed-loop run at concurrency MAX_SEQS, then drives an open-loop run at FACTOR × that rate for
# DURATION seconds, sampling the server's RSS every 10 s. Prints the RSS series, the responses by
# kind (429 = the bounded queue shedding load), and a verdict: RSS flat (last ≤ first sample after
# warm-up + 5%), overflow answered with 429, zero 5xx.
# Env: DURATION (600), FACTOR (2), PROMPT (64), OUT (64), THREADS (2), MAX_SEQS (8), MAX_QUEUE (64).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION="${DURATION:-600}"; FACTOR="${FACTOR:-2}"; PROMPT="${PROMPT:-64}"; OUTTOK="${OUT:-64}"
THREADS="${THREADS:-2}"; MAX_SEQS="${MAX_SEQS:-8}"; MAX_QUEUE="${MAX_QUEUE:-64}"
need_autoglm
RES="$(mktemp -d -t soak.XXXXXX)"
PORT="$(port)"
bg_start "$RES/serve.log" "$AUTOGLM" serve --model "$MODEL" --threads "$THREADS" --max-seqs "$MAX_SEQS" \
  --max-queue "$MAX_QUEUE" --kv-cache-mb 512 --ctx 512 --port "$PORT"
PID=$BG_PID
wait_ready "http://127.0.0.1:$PORT/readyz" || true
URL="http://127.0.0.1:$PORT"
"$AUTOGLM" loadtest --url "$URL" --concurrency "$MAX_SEQS" --requests $((MAX_SEQS * 4)) --prompt-tokens "$PROMPT" \
  --max-tokens "$OUTTOK" --warmup "$MAX_SEQS" --seed 1 --json >"$RES/sustainable.json"
RATE="$(python3 -c "import json; print(round(json.load(open('$RES/sustainable.json'))['requestsPerSecond'] * $FACTOR, 2))")"
N="$(python3 -c "print(int($RATE * $DURATION))")"
echo "sustainable $(python3 -c "import json; print(round(json.load(open('$RES/sustainable.json'))['requestsPerSecond'], 2))") req/s; open loop at $RATE req/s for ${DURATION}s ($N requests)"
"$AUTOGLM" loadtest --url "$URL" --rate "$RATE" --requests "$N" --prompt-tokens "$PROMPT" --max-tokens "$OUTTOK" \
  --seed 2 --json >"$RES/soak.json" &
LT=$!
BENCH_PIDS+=("$LT")   # stopped by lib.sh's exit trap if this script is interrupted
: >"$RES/rss.txt"
while kill -0 "$LT" 2>/dev/null; do echo "$(date +%s) $(rss_kib "$PID")" >>"$RES/rss.txt"; sleep 10; done
wait "$LT"
curl -fsS "$URL/metrics" >"$RES/metrics.txt" || true
python3 - "$RES" <<'PY'
import json, os, sys
res = sys.argv[1]
r = json.load(open(os.path.join(res, "soak.json")))
rss = [int(l.split()[1]) / 1024 for l in open(os.path.join(res, "rss.txt")) if len(l.split()) == 2]
errs = r["errors"]
fivexx = errs.get("http_5xx", 0)
shed = errs.get("http_429", 0)
print("RSS MiB every 10 s:", " ".join(f"{x:.0f}" for x in rss))
warm = rss[min(3, len(rss) - 1)] if rss else 0
flat = bool(rss) and rss[-1] <= warm * 1.05
print(f"completed {r['completed']}, failed {r['failed']} {errs}, output {r['outputTokensPerSecond']:.1f} tok/s, "
      f"TTFT p50 {r['ttft']['p50']:.0f} ms")
print(f"RSS first-after-warm-up {warm:.0f} MiB, max {max(rss) if rss else 0:.0f}, last {rss[-1] if rss else 0:.0f}: "
      f"{'flat' if flat else 'GREW'}; 429s {shed}; 5xx {fivexx}")
print("verdict:", "PASS" if flat and shed > 0 and fivexx == 0 else "FAIL")
PY
grep -E '^autoglm:(request_failure_total|num_requests_running|kv_cache_usage_ratio)' "$RES/metrics.txt" || true
echo "raw results: $RES"
