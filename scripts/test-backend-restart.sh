#!/usr/bin/env bash
# Kills the llama-server that `autoglm serve --config` (backend llamacpp) runs, under load from
# 8 client threads, and checks what the front door does (tests/integration/test_backend_restart.py):
# /readyz 503 at once, the backend restarted, every request answered cleanly, none hanging.
# Usage: scripts/test-backend-restart.sh [path/to/autoglm]   (default: .build/release/autoglm)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/autoglm}"
MODEL="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf"
LLAMA="${AUTOGLM_LLAMA_SERVER:-$HOME/.cache/autoglm/peers/llama-server/bin/llama-server}"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "model $MODEL missing: run scripts/fetch-models.sh" >&2; exit 1; }
[ -x "$LLAMA" ] || { echo "llama-server missing at $LLAMA: run bench/build-llama-server.sh" >&2; exit 1; }
WORK="$(mktemp -d -t autoglm-restart.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
cat >"$WORK/spec.yaml" <<YAML
apiVersion: autoglm/v1
kind: Deployment
name: restart-test
model:
  ref: $MODEL
backend:
  type: llamacpp
  threads: ${AUTOGLM_THREADS:-2}
  maxSeqs: 4
  contextLength: 256
YAML
AUTOGLM_LLAMA_SERVER="$LLAMA" "$BIN" serve --config "$WORK/spec.yaml" --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
  --served-model-name gemma3-test --api-key test-key --max-queue 64 >"$WORK/serve.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { echo "serve exited:"; cat "$WORK/serve.log"; exit 1; }
  sleep 0.5
done
status=0
AUTOGLM_BASE_URL="http://127.0.0.1:$PORT" AUTOGLM_SERVE_PID="$PID" python3 tests/integration/test_backend_restart.py || status=$?
kill -TERM "$PID"; wait "$PID" || { echo "FAIL: serve exited non-zero after SIGTERM"; status=1; }
trap - EXIT
[ "$status" = 0 ] || { echo "--- serve log"; grep -v '"/readyz"' "$WORK/serve.log" | tail -40; }
rm -rf "$WORK"
exit "$status"
