#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (the peer for bench/compare-serving.sh) from the llama.cpp
# sources vendored in the llama-cpp-python sdist, into ~/.cache/autoglm/peers/llama-server.
# CPU-only Release build, no libcurl; cmake and ninja come from PyPI in a private venv.
# Prints the binary's path. Slow on 2 cores (tens of minutes): run it once, early.
set -euo pipefail
PEERS="${AUTOGLM_PEERS:-$HOME/.cache/autoglm/peers}"
OUT="$PEERS/llama-server"
BIN="$OUT/bin/llama-server"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
VERSION=0.3.36
mkdir -p "$OUT"
VENV="$OUT/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q cmake ninja scikit-build-core >&2
SRC="$OUT/src"
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
  DL="$OUT/dl"
  mkdir -p "$DL"
  # The sdist only (--no-build-isolation: its metadata step uses this venv's scikit-build-core
  # instead of building cmake from source for an isolated build environment).
  "$VENV/bin/pip" download -q "llama-cpp-python==$VERSION" --no-binary :all: --no-deps --no-build-isolation -d "$DL" >&2
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xzf "$DL"/llama_cpp_python-"$VERSION".tar.gz -C "$SRC" --strip-components=1
fi
export PATH="$VENV/bin:$PATH"
cmake -S "$SRC/vendor/llama.cpp" -B "$OUT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$OUT/build" --target llama-server -j "${JOBS:-2}" >&2
mkdir -p "$OUT/bin"
cp "$OUT/build/bin/llama-server" "$BIN"
echo "$BIN"
