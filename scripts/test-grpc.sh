#!/usr/bin/env bash
# Integration test of the gRPC API (--grpc-port) with the real Python grpcio client
# (tests/grpc/test_grpc.py; stubs generated from proto/ at test time into a temp dir) against
# `autoglm serve` with the gemma3 test model, the HTTP API of the same process as the oracle:
#   main   streaming, cancel frees the KV, auth, errors, gRPC == HTTP greedy, Tokenize, Models,
#          health, reflection
#   queue  --max-seqs 1 --max-queue 1: RESOURCE_EXHAUSTED with retry info past the queue
#   drain  SIGTERM with a stream in flight: health NOT_SERVING, new work UNAVAILABLE, exit 0
# Also checks that the committed generated Swift code is current for proto/ (no plugin build).
# Usage: scripts/test-grpc.sh [path/to/autoglm]   (default: $AUTOGLM_BIN or .build/release/autoglm)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen-protos.sh --check
BIN="${1:-${AUTOGLM_BIN:-.build/release/autoglm}}"
. scripts/serve-helpers.sh   # MODEL, THREADS, free_port, wait_ready
serve_inputs "$BIN"

VENV="${AUTOGLM_GRPC_VENV:-$HOME/.cache/autoglm/venv-grpc}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check grpcio==1.85.1 grpcio-tools==1.85.1
fi

WORK="$(mktemp -d -t autoglm-grpc.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/stubs"
"$VENV/bin/python" -m grpc_tools.protoc --proto_path=proto --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" \
  autoglm/v1/autoglm.proto grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto


overall=0
run_mode() {  # MODE EXTRA-SERVE-FLAGS...
  local mode="$1"; shift
  echo "=== gRPC: $mode"
  local port grpc_port log pid status=0
  port="$(free_port)"; grpc_port="$(free_port)"; log="$WORK/serve-$mode.log"
  "$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$port" --grpc-port "$grpc_port" --served-model-name gemma3-test \
    --max-batched-tokens 128 --kv-cache-mb 128 --ctx 512 --threads "$THREADS" --api-key test-key --log-format json \
    "$@" >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_ready "http://127.0.0.1:$port/readyz" "$pid" "$log" || status=1
  if [ "$status" = 0 ]; then
    AUTOGLM_GRPC="127.0.0.1:$grpc_port" AUTOGLM_HTTP="http://127.0.0.1:$port" AUTOGLM_API_KEY=test-key \
      AUTOGLM_MODEL=gemma3-test AUTOGLM_STUBS="$WORK/stubs" AUTOGLM_PID="$pid" \
      "$VENV/bin/python" tests/grpc/test_grpc.py "$mode" || status=1
  fi
  [ "$mode" = drain ] || kill -TERM "$pid" 2>/dev/null || true
  if wait "$pid"; then echo "ok   $mode: serve drained on SIGTERM, exit 0"; else echo "FAIL $mode: serve exited $?"; status=1; fi
  [ "$status" = 0 ] || { echo "--- $mode server log"; tail -40 "$log"; overall=1; }
}
run_mode main --max-seqs 4
run_mode queue --max-seqs 1 --max-queue 1
run_mode drain --max-seqs 4 --drain-timeout 300   # (a slow machine must not cut the stream)
exit "$overall"
