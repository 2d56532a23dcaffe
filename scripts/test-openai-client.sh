#!/usr/bin/env bash
# Integration test: starts the built `autoglm serve` on a free 127.0.0.1 port with the gemma3 test
# model, waits for /readyz, and runs tests/integration/test_openai.py with the official `openai`
# Python client (installed into a venv under ~/.cache/autoglm, never into the repo).
# Usage: scripts/test-openai-client.sh [path/to/autoglm]   (default: .build/release/autoglm)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/autoglm}"
MODELS="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
MODEL="$MODELS/gemma3-270m-q4_k_m.gguf"
[ -x "$BIN" ] || { echo "no binary at $BIN: run 'swift build -c release --product autoglm' first" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "model $MODEL missing: run scripts/fetch-models.sh" >&2; exit 1; }

VENV="${AUTOGLM_PYDEPS:-$HOME/.cache/autoglm/venv-openai}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<3"
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
LOG="$(mktemp -t autoglm-serve.XXXXXX.log)"
"$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name gemma3-test \
  --max-seqs 4 --max-batched-tokens 128 --kv-cache-mb 128 --ctx 512 --threads "${AUTOGLM_THREADS:-2}" \
  --api-key test-key --log-format json >"$LOG" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { echo "server exited:"; cat "$LOG"; exit 1; }
  sleep 0.5
done

status=0
AUTOGLM_BASE_URL="http://127.0.0.1:$PORT/v1" AUTOGLM_API_KEY=test-key AUTOGLM_MODEL=gemma3-test \
  "$VENV/bin/python" tests/integration/test_openai.py || status=$?

# Graceful drain on SIGTERM: exit status 0.
kill -TERM "$PID"
if wait "$PID"; then echo "ok: SIGTERM drained, exit 0"; else echo "FAIL: serve exited $? after SIGTERM"; status=1; fi
trap - EXIT
[ "$status" = 0 ] || { echo "--- server log"; tail -50 "$LOG"; }
exit "$status"
