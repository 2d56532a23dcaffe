#!/usr/bin/env bash
# Decode and prefill speed of `autoglm bench` (the serving path: the continuous-batching scheduler
# of `serve`) against llama.cpp's own `llama-bench` (tg128 / pp128), on the same GGUF, 2 threads,
# run alternately in one script, ROUNDS rounds; prints each run, the medians and the ratios.
# llama-bench is built from the same llama.cpp tree as the test peer llama-server
# (bench/build-llama-server.sh, cached under ~/.cache/autoglm/peers; the extra target takes
# seconds once the tree is built). Numbers only, no assertions; run it on a quiet machine.
# Usage: bench/compare-llama-bench.sh [MODEL...]   (ROUNDS=5 THREADS=2 AUTOGLM=.build/release/autoglm)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${ROUNDS:-5}"; THREADS="${THREADS:-2}"
MODELS_DIR="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
[ $# -gt 0 ] || set -- "$MODELS_DIR/gemma3-270m-q4_k_m.gguf" "$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
need_autoglm
for m in "$@"; do need_model "$m"; done

SERVER="$(bash bench/build-llama-server.sh)"
ROOT="$(dirname "$(dirname "$SERVER")")"
LB="$ROOT/build/bin/llama-bench"
if [ ! -x "$LB" ]; then
  echo "building llama-bench in $ROOT/build ..." >&2
  PATH="$ROOT/venv/bin:$PATH" cmake --build "$ROOT/build" --target llama-bench -j "${JOBS:-2}" >&2
fi
RES="$(mktemp -d -t autoglm-llama-bench.XXXXXX)"
at_exit rm -rf "$RES"

echo "threads $THREADS; $ROUNDS alternating rounds; autoglm: 128-token prompt, 128 decoded; llama-bench: pp128, tg128 (its own 5 repetitions averaged)"
echo "load average before: $(loadavg)"
for m in "$@"; do
  name="$(basename "$m" .gguf)"
  for r in $(seq 1 "$ROUNDS"); do
    ours() { "$AUTOGLM" bench --model "$m" --threads "$THREADS" --prompt-tokens 128 --gen-tokens 128 --repeats 1 --json >"$RES/$name-ours-$r.json"; }
    theirs() { "$LB" -m "$m" -t "$THREADS" -p 128 -n 128 -r 5 -o json >"$RES/$name-llama-$r.json" 2>/dev/null; }
    if [ $((r % 2)) = 1 ]; then ours; theirs; else theirs; ours; fi
  done
done
echo "load average after: $(loadavg)"

python3 - "$RES" "$ROUNDS" "$@" <<'PY'
import json, os, statistics, sys
res, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for m in models:
    name = os.path.basename(m)[:-len(".gguf")]
    ours = [json.load(open(f"{res}/{name}-ours-{r}.json")) for r in range(1, rounds + 1)]
    od = [o["decode_tok_s"] for o in ours]
    op = [o["prefill_tok_s"] for o in ours]
    ld, lp = [], []
    for r in range(1, rounds + 1):
        for t in json.load(open(f"{res}/{name}-llama-{r}.json")):
            (ld if t["n_gen"] > 0 else lp).append(t["avg_ts"])
    md, mp, mld, mlp = (statistics.median(x) for x in (od, op, ld, lp))
    print(f"{name}")
    print(f"  decode  tok/s  autoglm {' '.join(f'{x:6.1f}' for x in od)}  median {md:6.1f}")
    print(f"                 llama-bench tg128 {' '.join(f'{x:6.1f}' for x in ld)}  median {mld:6.1f}   ratio {md / mld:.2f}x")
    print(f"  prefill tok/s  autoglm {' '.join(f'{x:7.1f}' for x in op)}  median {mp:7.1f}")
    print(f"                 llama-bench pp128 {' '.join(f'{x:7.1f}' for x in lp)}  median {mlp:7.1f}   ratio {mp / mlp:.2f}x")
PY
