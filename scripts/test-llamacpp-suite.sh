#!/usr/bin/env bash
# Runs llama.cpp's own server tests against `autoglm serve`: unit/test_chat_completion.py (which holds
# llama.cpp's response_format / json_schema tests) and unit/test_tool_call.py, from the llama.cpp
# sources in the llama-cpp-python 0.3.36 sdist that bench/build-llama-server.sh caches under
# ~/.cache/autoglm/peers/llama-server/src (downloaded here, without building, when absent).
# Nothing of llama.cpp is copied into the repo: pytest runs in their tests folder with their conftest.py
# switched off (--noconftest) and tests/llamacpp-suite/autoglm_llamacpp_plugin.py loaded instead, which
# makes their ServerProcess launch `autoglm serve` with the local Qwen2.5-Coder-0.5B (or gemma3) model.
# Slow tests run only for their Qwen2.5-Coder-3B rows (on the local Qwen2.5-Coder-0.5B); the rest of the slow set
# needs 1.5B–8B models from Hugging Face.
# Output: junit xml and a markdown table of every test that does not pass, with a reason category
# (tests/llamacpp-suite/report.py), written to $OUT (default /tmp/autoglm-llamacpp-suite).
# Many tests fail today (features not built yet, llama.cpp-only fields, content asserted for the
# 260K-parameter model they use): the script exits 0 when the suite ran and the report was made,
# 1 when it could not run; STRICT=1 makes any failing test an exit 1.
# Usage: scripts/test-llamacpp-suite.sh [path/to/autoglm] [pytest args…]   (default .build/release/autoglm)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
BIN="$(realpath "${1:-.build/release/autoglm}")"
[ $# -gt 0 ] && shift
MODELS="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
QWEN="$MODELS/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GEMMA="$MODELS/gemma3-270m-q4_k_m.gguf"
OUT="${OUT:-/tmp/autoglm-llamacpp-suite}"
[ -x "$BIN" ] || { echo "no binary at $BIN: run 'swift build -c release --product autoglm' first" >&2; exit 1; }
[ -f "$QWEN" ] && [ -f "$GEMMA" ] || { echo "models missing in $MODELS: run scripts/fetch-models.sh" >&2; exit 1; }

# llama.cpp's sources: the same sdist and place as bench/build-llama-server.sh.
PEER="${AUTOGLM_PEERS:-$HOME/.cache/autoglm/peers}/llama-server"
SRC="$PEER/src"
TESTS="$SRC/vendor/llama.cpp/tools/server/tests"
if [ ! -f "$TESTS/utils.py" ]; then
  VERSION=0.3.36
  mkdir -p "$PEER/dl"
  python3 -m pip download -q --disable-pip-version-check "llama-cpp-python==$VERSION" --no-binary :all: --no-deps \
    --no-build-isolation -d "$PEER/dl" >&2
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xzf "$PEER/dl/llama_cpp_python-$VERSION.tar.gz" -C "$SRC" --strip-components=1
fi

# Their test dependencies (tools/server/tests/requirements.txt), pinned; only what the two files import.
REQS=(pytest==8.3.5 requests==2.32.5 wget==3.2 openai==2.14.0)
VENV="${AUTOGLM_LLAMACPP_SUITE_VENV:-$HOME/.cache/autoglm/venv-llamacpp-suite}"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.autoglm-pins" 2>/dev/null)" != "${REQS[*]}" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}"
  echo "${REQS[*]}" >"$VENV/.autoglm-pins"
fi

rm -rf "$OUT" && mkdir -p "$OUT/logs"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
status=0
(
  cd "$TESTS"
  PORT="$PORT" PYTHONPATH="$TESTS:$REPO/tests/llamacpp-suite" AUTOGLM_BIN="$BIN" AUTOGLM_QWEN_MODEL="$QWEN" \
  AUTOGLM_GEMMA_MODEL="$GEMMA" AUTOGLM_SUITE_LOGS="$OUT/logs" AUTOGLM_THREADS="${AUTOGLM_THREADS:-2}" \
    "$VENV/bin/python" -m pytest --noconftest -p autoglm_llamacpp_plugin -p no:cacheprovider \
      -m "not slow or autoglm_local_model" -q -rN --tb=line -o junit_logging=no \
      --junitxml="$OUT/junit.xml" unit/test_tool_call.py unit/test_chat_completion.py "$@"
) >"$OUT/pytest.log" 2>&1 || status=$?
tail -3 "$OUT/pytest.log"
[ -f "$OUT/junit.xml" ] || { echo "the suite did not run (pytest exit $status):"; tail -40 "$OUT/pytest.log"; exit 1; }
"$VENV/bin/python" "$REPO/tests/llamacpp-suite/report.py" "$OUT/junit.xml" >"$OUT/report.md"
cat "$OUT/report.md"
echo "junit: $OUT/junit.xml  table: $OUT/report.md  server logs: $OUT/logs"
# pytest: 0 all passed, 1 some tests failed (expected today); anything else (usage error, no tests
# collected, internal error) means the suite itself did not run properly.
case "$status" in 0) exit 0 ;; 1) [ "${STRICT:-0}" = 1 ] && exit 1; exit 0 ;; *) echo "pytest exit $status" >&2; exit 1 ;; esac
