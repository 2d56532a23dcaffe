#!/usr/bin/env bash
# A/B of two autoglm binaries on `autoglm bench` (prefill and decode tok/s), alternating A and B
# each round on an otherwise idle machine; prints per-run figures, medians and B/A ratios.
# Use it to check that a change keeps the single-stream numbers (e.g. A = a build of the previous
# commit, B = this one).
# Usage: bench/ab-bench.sh A_BIN B_BIN [MODEL...]   Env: ROUNDS (5), THREADS (2), PROMPT (128), GEN (128).
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ $# -ge 2 ] || { echo "usage: bench/ab-bench.sh A_BIN B_BIN [MODEL...]" >&2; exit 2; }
A="$1"; B="$2"; shift 2
[ -x "$A" ] && [ -x "$B" ] || { echo "both binaries must be executable: $A $B" >&2; exit 1; }
MODELS=("$@"); [ ${#MODELS[@]} -gt 0 ] || MODELS=("$MODEL")
ROUNDS="${ROUNDS:-5}"; THREADS="${THREADS:-2}"; PROMPT="${PROMPT:-128}"; GEN="${GEN:-128}"
RES="$(mktemp -d -t ab-bench.XXXXXX)"
echo "A $A"; echo "B $B"; echo "load average before: $(loadavg)"
for m in "${MODELS[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    for side in A B; do
      bin="$A"; [ "$side" = B ] && bin="$B"
      "$bin" bench --model "$m" --threads "$THREADS" --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --repeats 1 --json \
        >"$RES/$(basename "$m")-$side-$r.json"
    done
  done
  python3 - "$RES" "$(basename "$m")" "$ROUNDS" <<'PY'
import json, statistics, sys
res, m, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = {s: [json.load(open(f"{res}/{m}-{s}-{r}.json")) for r in range(1, rounds + 1)] for s in "AB"}
print(m)
for key, name in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
    a = [x[key] for x in runs["A"]]; b = [x[key] for x in runs["B"]]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"  {name:7s} A {ma:7.1f}  B {mb:7.1f}  B/A {mb / ma:5.3f}   runs A {', '.join(f'{v:.1f}' for v in a)}; B {', '.join(f'{v:.1f}' for v in b)}")
PY
done
echo "load average after: $(loadavg)"
