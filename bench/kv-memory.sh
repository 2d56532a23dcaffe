#!/usr/bin/env bash
# Does the KV budget bound the server's memory? For each BUDGET (MiB) in BUDGETS, starts
# `autoglm serve MODEL --kv-cache-mb BUDGET --max-seqs MAX_SEQS` (gemma3-270m Q4_K_M), lets it load
# and sit idle, takes its VmRSS as the baseline (the model's resident pages + the fixed overhead),
# then runs `autoglm loadtest --concurrency CONC --requests CONC --prompt-tokens PROMPT
# --max-tokens OUT` (token-id prompts, ignore_eos) while sampling VmRSS and VmHWM from
# /proc/PID/status every SAMPLE_MS ms. Prints per budget: baseline, peak (max of the sampled
# VmRSS and, when it rose during the run, VmHWM), peak − baseline, and whether peak − baseline ≤ BUDGET +
# FIXED_OVERHEAD_MB; then the server's /metrics lines that start with `autoglm:kv`.
# FIXED_OVERHEAD_MB is what a run adds on top of the baseline besides the KV cache (scratch
# buffers of a batch, allocator slack, HTTP). Measured: 2026-12-07, gemma3-270m, 2 threads, one
# request (CONC=1 OUT=4) of PROMPT=16 tokens (next to no KV) adds 23.4-23.6 MiB over the baseline
# (3 runs), one of PROMPT=512 (a full 512-token prefill chunk; at most 18 MiB of KV) 49.5 MiB;
# the default 64 MiB leaves some headroom over that.
# Not part of CI. Env: BUDGETS ("64 512"), MAX_SEQS (32), CONC (32), PROMPT (1500), OUT (16),
#   THREADS (2), IDLE_S (3: idle seconds before the baseline), SAMPLE_MS (100), FIXED_OVERHEAD_MB (64),
#   AUTOGLM (.build/release/autoglm).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUDGETS="${BUDGETS:-64 512}"; MAX_SEQS="${MAX_SEQS:-32}"; CONC="${CONC:-32}"
PROMPT="${PROMPT:-1500}"; OUTTOK="${OUT:-16}"; THREADS="${THREADS:-2}"
IDLE_S="${IDLE_S:-3}"; SAMPLE_MS="${SAMPLE_MS:-100}"; FIXED_OVERHEAD_MB="${FIXED_OVERHEAD_MB:-64}"
need_autoglm; need_model
RES="$(mktemp -d -t kv-memory.XXXXXX)"

echo "model $MODEL; $CONC concurrent requests of $PROMPT prompt + $OUTTOK output tokens; max-seqs $MAX_SEQS;" \
  "threads $THREADS; fixed overhead allowance $FIXED_OVERHEAD_MB MiB"
echo "load average before: $(loadavg)"
for budget in $BUDGETS; do
  p="$(port)"
  bg_start "$RES/serve-$budget.log" "$AUTOGLM" serve --model "$MODEL" --threads "$THREADS" --kv-cache-mb "$budget" \
    --max-seqs "$MAX_SEQS" --max-queue $((CONC * 2)) --host 127.0.0.1 --port "$p"
  server=$BG_PID
  wait_ready "http://127.0.0.1:$p/readyz" || { echo "server did not come up; see $RES/serve-$budget.log" >&2; exit 1; }
  sleep "$IDLE_S"
  base="$(rss_kib "$server")"; hwm0="$(rss_kib "$server" VmHWM)"
  # One sampler process (not a fork per sample): "VmRSS VmHWM" in KiB every SAMPLE_MS ms until
  # the server exits or the sampler is stopped.
  bg_start "$RES/rss-$budget.txt" python3 -u -c '
import sys, time
pid, dt = sys.argv[1], float(sys.argv[2]) / 1000
while True:
    try:
        f = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    except OSError:
        break
    print(f["VmRSS"].split()[0], f["VmHWM"].split()[0])
    time.sleep(dt)
' "$server" "$SAMPLE_MS"
  sampler=$BG_PID
  "$AUTOGLM" loadtest --url "http://127.0.0.1:$p" --concurrency "$CONC" --requests "$CONC" --prompt-tokens "$PROMPT" \
    --max-tokens "$OUTTOK" --seed 1 --json >"$RES/load-$budget.json" || echo "loadtest failed (budget $budget)" >&2
  sleep 0.3
  hwm="$(rss_kib "$server" VmHWM)"; after="$(rss_kib "$server")"
  stop_pid "$sampler"
  curl -fsS "http://127.0.0.1:$p/metrics" >"$RES/metrics-$budget.txt" || true
  stop_pid "$server"
  python3 - "$RES" "$budget" "$base" "$hwm0" "$hwm" "$after" "$FIXED_OVERHEAD_MB" <<'PY'
import json, os, sys
res, budget, base, hwm0, hwm, after, fixed = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7]), int(sys.argv[7])
samples = [tuple(map(int, l.split())) for l in open(os.path.join(res, f"rss-{budget}.txt"))
           if len(l.split()) == 2 and all(w.isdigit() for w in l.split())]
peak_sampled = max((s[0] for s in samples), default=0)
# VmHWM counts only when it rose during the run (a peak while loading the model is not the run's).
peak = max(peak_sampled, hwm if hwm > hwm0 else 0)
mib = lambda k: k / 1024
diff = mib(peak) - mib(base)
try:
    r = json.load(open(os.path.join(res, f"load-{budget}.json")))
    run = f"{r['completed']} completed, {r['failed']} failed, {r['outputTokensPerSecond']:.1f} tok/s, TTFT p50 {r['ttft']['p50']:.0f} ms"
except (OSError, ValueError, KeyError):
    run = "no loadtest report"
print(f"budget {budget:>5} MiB: {run}; {len(samples)} samples")
print(f"  baseline RSS {mib(base):7.1f} MiB (VmHWM at load {mib(hwm0):.1f}); peak RSS {mib(peak):7.1f} MiB "
      f"(sampled {mib(peak_sampled):.1f}, VmHWM {mib(hwm):.1f}); after the run {mib(after):.1f}")
ok = diff <= budget + fixed
print(f"  peak − baseline {diff:7.1f} MiB {'<=' if ok else '>'} budget + fixed overhead {budget + fixed} MiB: "
      f"{'WITHIN' if ok else 'EXCEEDS'} ({diff / budget:.2f}× the budget)")
PY
  if grep -q '^autoglm:kv' "$RES/metrics-$budget.txt" 2>/dev/null; then grep '^autoglm:kv' "$RES/metrics-$budget.txt" | sed 's/^/  /'
  else echo "  (no autoglm:kv* lines in /metrics)"; fi
  grep -o 'kv_blocks=[^ ]*' "$RES/serve-$budget.log" | head -1 | sed 's/^/  serve: /' || true
done
echo "load average after: $(loadavg)"
echo "raw results: $RES"
