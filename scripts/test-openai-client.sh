#!/usr/bin/env bash
# Integration test: the official `openai` Python client (tests/integration/test_openai.py) against
# `autoglm serve` in front of each backend, on free 127.0.0.1 ports, with the gemma3 test model:
#   native    the built-in engine (`serve --model`)
#   llamacpp  `serve --config` with backend.type llamacpp: autoglm launches llama-server
#   openai    `serve --config` with backend.type openai: a llama-server we start is the upstream,
#             reached with its own key (backend.apiKey), while clients use autoglm's key
#   fleet     `autoglm up`: 2 native replicas behind the gateway (least-outstanding); after its
#             SIGTERM drain, a second fleet is killed with SIGKILL and must leave no replica behind
# Each run ends with SIGTERM, which must drain and exit 0. The client is installed into a venv
# under ~/.cache/autoglm, never into the repo.
# Usage: scripts/test-openai-client.sh [path/to/autoglm]   (default: .build/release/autoglm)
#        BACKENDS="native llamacpp openai fleet" (default: all four; llamacpp/openai need
#        $AUTOGLM_LLAMA_SERVER or bench/build-llama-server.sh's build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/autoglm}"
. scripts/serve-helpers.sh   # MODEL, THREADS, free_port, wait_ready
serve_inputs "$BIN"
BACKENDS="${BACKENDS:-native llamacpp openai fleet}"
LLAMA="${AUTOGLM_LLAMA_SERVER:-$HOME/.cache/autoglm/peers/llama-server/bin/llama-server}"

VENV="${AUTOGLM_PYDEPS:-$HOME/.cache/autoglm/venv-openai}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<3"
fi

WORK="$(mktemp -d -t autoglm-oai.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

overall=0
for backend in $BACKENDS; do
  echo "=== backend: $backend"
  PORT="$(free_port)"
  LOG="$WORK/serve-$backend.log"
  case "$backend" in
    native)
      "$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name gemma3-test \
        --max-seqs 4 --max-batched-tokens 128 --kv-cache-mb 128 --ctx 512 --threads "$THREADS" \
        --api-key test-key --log-format json >"$LOG" 2>&1 &
      ;;
    llamacpp)
      [ -x "$LLAMA" ] || { echo "llama-server missing at $LLAMA: run bench/build-llama-server.sh" >&2; exit 1; }
      cat >"$WORK/llamacpp.yaml" <<YAML
apiVersion: autoglm/v1
kind: Deployment
name: gemma3-llamacpp
model:
  ref: $MODEL
backend:
  type: llamacpp
  executable: $LLAMA
  threads: $THREADS
  maxSeqs: 4
  contextLength: 512
YAML
      "$BIN" serve --config "$WORK/llamacpp.yaml" --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
        --served-model-name gemma3-test --api-key test-key --log-format json >"$LOG" 2>&1 &
      ;;
    openai)
      [ -x "$LLAMA" ] || { echo "llama-server missing at $LLAMA: run bench/build-llama-server.sh" >&2; exit 1; }
      UPORT="$(free_port)"
      "$LLAMA" -m "$MODEL" --host 127.0.0.1 --port "$UPORT" --alias gemma3-test -t "$THREADS" -np 4 -c 2048 \
        --api-key upstream-key --metrics --no-webui >"$WORK/upstream.log" 2>&1 &
      UPID=$!
      PIDS+=("$UPID")
      cat >"$WORK/openai.yaml" <<YAML
apiVersion: autoglm/v1
kind: Deployment
name: gemma3-upstream
model:
  ref: gemma3-test
backend:
  type: openai
  url: http://127.0.0.1:$UPORT/v1
  apiKey:
    env: UPSTREAM_KEY
YAML
      wait_ready "http://127.0.0.1:$UPORT/health" "$UPID" "$WORK/upstream.log"
      # A key the upstream refuses: one error line and exit 1 at start, not a server that 502s.
      set +e
      UPSTREAM_KEY=wrong-key "$BIN" serve --config "$WORK/openai.yaml" --host 127.0.0.1 --port "$PORT" >"$WORK/badkey.log" 2>&1
      rc=$?
      set -e
      if [ "$rc" = 1 ] && grep -q "refused autoglm's key (HTTP 401)" "$WORK/badkey.log"; then
        echo "ok   a refused upstream key stops serve at start: $(grep '^error:' "$WORK/badkey.log")"
      else
        echo "FAIL a refused upstream key: exit $rc: $(cat "$WORK/badkey.log")"; overall=1
      fi
      UPSTREAM_KEY=upstream-key "$BIN" serve --config "$WORK/openai.yaml" --host 127.0.0.1 --port "$PORT" \
        --served-model-name gemma3-test --api-key test-key --log-format json >"$LOG" 2>&1 &
      ;;
    fleet)
      cat >"$WORK/fleet.yaml" <<YAML
apiVersion: autoglm/v1
name: gemma3-fleet
model:
  ref: $MODEL
backend:
  type: native
  threads: 1
  maxSeqs: 4
  maxBatchedTokens: 128
  kvCacheMB: 128
  contextLength: 512
replicas: 2
gateway:
  policy: least-outstanding
YAML
      "$BIN" up "$WORK/fleet.yaml" --host 127.0.0.1 --port "$PORT" --served-model-name gemma3-test \
        --api-key test-key --log-format json >"$LOG" 2>&1 &
      ;;
    *) echo "unknown backend $backend (native, llamacpp, openai, fleet)" >&2; exit 2 ;;
  esac
  PID=$!
  PIDS+=("$PID")
  status=0
  wait_ready "http://127.0.0.1:$PORT/readyz" "$PID" "$LOG" || status=$?
  if [ "$status" = 0 ]; then
    AUTOGLM_BASE_URL="http://127.0.0.1:$PORT/v1" AUTOGLM_API_KEY=test-key AUTOGLM_MODEL=gemma3-test AUTOGLM_BACKEND="$backend" \
      "$VENV/bin/python" tests/integration/test_openai.py || status=$?
  fi
  if [ "$status" = 0 ] && [ "$backend" = fleet ]; then
    # A changed spec is rolled out one replica at a time while requests keep succeeding.
    before="$(curl -fsS -H 'Authorization: Bearer test-key' "http://127.0.0.1:$PORT/fleet/status")"
    sed -i 's/maxSeqs: 4/maxSeqs: 3/' "$WORK/fleet.yaml"
    rolled=""
    for i in $(seq 1 240); do
      code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer test-key' -H 'Content-Type: application/json' \
        -d '{"model":"gemma3-test","prompt":"Hello","max_tokens":2}' "http://127.0.0.1:$PORT/v1/completions")"
      [ "$code" = 200 ] || { echo "FAIL: fleet: a request during the rolling update answered HTTP $code"; status=1; break; }
      now="$(curl -fsS -H 'Authorization: Bearer test-key' "http://127.0.0.1:$PORT/fleet/status")"
      if python3 - "$before" "$now" <<'PY'
import json, sys
b, n = json.loads(sys.argv[1]), json.loads(sys.argv[2])
old = {r["version"] for r in b["replicas"]}
ready = [r for r in n["replicas"] if r["state"] == "ready"]
sys.exit(0 if len(n["replicas"]) == 2 and len(ready) == 2 and not ({r["version"] for r in ready} & old) else 1)
PY
      then rolled=yes; break; fi
      sleep 0.5
    done
    if [ -n "$rolled" ]; then echo "ok: fleet: spec change rolled out to both replicas, every request 200 ($i checks)"
    else echo "FAIL: fleet: the spec change was not rolled out: $now"; status=1; fi
  fi
  # Graceful drain on SIGTERM: exit status 0 (and, for llamacpp, the child stopped with it).
  kill -TERM "$PID"
  if wait "$PID"; then echo "ok: $backend: SIGTERM drained, exit 0"; else echo "FAIL: $backend: serve exited $? after SIGTERM"; status=1; fi
  if [ "$backend" = llamacpp ] && pgrep -f "llama-server.*--alias gemma3-test.*--port" >/dev/null 2>&1 \
     && pgrep -P "$PID" >/dev/null 2>&1; then
    echo "FAIL: llama-server still running after serve exited"; status=1
  fi
  if [ "$backend" = fleet ]; then
    if pgrep -f "serve --model .*--served-model-name gemma3-test" >/dev/null 2>&1; then
      echo "FAIL: fleet replicas still running after up exited"; status=1
    fi
    # SIGKILL leaves the replicas nothing to clean up with: they must die with it (setpriv --pdeathsig).
    "$BIN" up "$WORK/fleet.yaml" --host 127.0.0.1 --port "$PORT" --served-model-name gemma3-test >"$WORK/fleet-kill.log" 2>&1 &
    KPID=$!
    PIDS+=("$KPID")
    wait_ready "http://127.0.0.1:$PORT/readyz" "$KPID" "$WORK/fleet-kill.log" || status=1
    n="$(pgrep -f "serve --model .*--served-model-name gemma3-test" | wc -l)"
    kill -KILL "$KPID"; wait "$KPID" 2>/dev/null || true
    for _ in $(seq 1 50); do pgrep -f "serve --model .*--served-model-name gemma3-test" >/dev/null 2>&1 || break; sleep 0.1; done
    if pgrep -f "serve --model .*--served-model-name gemma3-test" >/dev/null 2>&1; then
      echo "FAIL: replicas outlived a SIGKILLed up: $(pgrep -af "serve --model .*--served-model-name gemma3-test")"; status=1
    else
      echo "ok: fleet: $n replicas died with their SIGKILLed up"
    fi
  fi
  [ "$status" = 0 ] || { echo "--- $backend server log"; tail -50 "$LOG"; overall=1; }
done
exit "$overall"
