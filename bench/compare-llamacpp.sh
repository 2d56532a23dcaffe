#!/usr/bin/env bash
# Side-by-side benchmark: autoglm's native engine vs llama.cpp (llama-cpp-python built from
# the PyPI sdist, cached outside the repo) on the same GGUF, same thread count, same prompt and
# decode lengths. Runs alternate A/B; prints medians and our/llama.cpp ratios.
#   bench/compare-llamacpp.sh [MODEL.gguf] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
MODEL="${1:-$MODEL}"
RUNS="${2:-5}"
THREADS="${THREADS:-2}"
PT="${PROMPT_TOKENS:-128}"
GT="${GEN_TOKENS:-128}"
PEERS="${AUTOGLM_PEERS:-$HOME/.cache/autoglm/peers}"
VENV="$PEERS/llama-venv"

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python 0.3.36 from source into $VENV (once, ~15 min) ..."
  mkdir -p "$PEERS"
  python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    "$VENV/bin/pip" install --quiet --no-cache-dir llama-cpp-python==0.3.36 numpy
fi
"$VENV/bin/python" -c "import numpy" 2>/dev/null || "$VENV/bin/pip" install --quiet numpy
swift build -c release --product autoglm >/dev/null
BIN=.build/release/autoglm

echo "model $MODEL  threads $THREADS  prompt $PT  gen $GT  runs $RUNS"
echo "load average before: $(loadavg)"
OURS=(); PEER=()
for i in $(seq 1 "$RUNS"); do
  OURS+=("$("$BIN" bench --model "$MODEL" --threads "$THREADS" --prompt-tokens "$PT" --gen-tokens "$GT" --repeats 1 --json)")
  PEER+=("$("$VENV/bin/python" bench/llamacpp_bench.py --model "$MODEL" --threads "$THREADS" --prompt-tokens "$PT" --gen-tokens "$GT")")
  echo "run $i done"
done
echo "load average after: $(loadavg)"
python3 - "$(printf '%s\n' "${OURS[@]}")" "$(printf '%s\n' "${PEER[@]}")" <<'PY'
import json, statistics, sys
ours = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
peer = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
def med(rows, k): return statistics.median(r[k] for r in rows)
print(f"{'metric':<16}{'autoglm':>12}{'llama.cpp':>12}{'ratio':>8}")
for k, name in [("prefill_tok_s", "prefill tok/s"), ("decode_tok_s", "decode tok/s"), ("peak_rss_mb", "peak RSS MiB")]:
    a, b = med(ours, k), med(peer, k)
    print(f"{name:<16}{a:>12.1f}{b:>12.1f}{a / b:>8.2f}")
print("per-run decode autoglm:", [round(r["decode_tok_s"], 1) for r in ours])
print("per-run decode llama.cpp:", [round(r["decode_tok_s"], 1) for r in peer])
PY
