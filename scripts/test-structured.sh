#!/usr/bin/env bash
# Integration test of structured outputs and tool calling (issue 18): tests/integration/test_structured.py
# (pytest) drives a real `autoglm serve` with real clients — the official `openai` client, LangChain's
# ChatOpenAI and the openai-agents SDK — using response_format (json_schema, json_object), vLLM's
# guided_json/guided_regex/guided_choice, tools/tool_choice/parallel_tool_calls, streamed
# delta.tool_calls, role:tool round trips, the Responses API (client.responses.create/stream/parse,
# previous_response_id) and the 400s for bad input.
# The server runs the instruction-tuned Qwen2.5-Coder-0.5B-Instruct test model on a free 127.0.0.1 port;
# the run ends with SIGTERM, which must drain and exit 0. The clients are installed at pinned versions
# into a venv under ~/.cache/autoglm (never into the repo); the venv is rebuilt when the pins change.
# Usage: scripts/test-structured.sh [path/to/autoglm] [pytest args…]   (default binary: .build/release/autoglm)
#        AUTOGLM_THREADS (default 2), AUTOGLM_STRUCTURED_VENV (default ~/.cache/autoglm/venv-structured),
#        AUTOGLM_MODELS (default ~/.cache/autoglm/models). Exit status non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/autoglm}"
[ $# -gt 0 ] && shift
MODELS="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
MODEL="$MODELS/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
THREADS="${AUTOGLM_THREADS:-2}"
[ -x "$BIN" ] || { echo "no binary at $BIN: run 'swift build -c release --product autoglm' first" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "model $MODEL missing: run scripts/fetch-models.sh" >&2; exit 1; }

# Pinned clients (current PyPI releases when written; langchain-core is the version langchain-openai
# resolves to on Python 3.11 — the newest needs Python >= 3.14 through langchain-protocol).
REQS=(openai==3.63.0 pydantic==2.14.4 jsonschema==4.26.0 pytest==9.2.0
      langchain-openai==1.8.1 langchain-core==1.8.3 openai-agents==0.25.0)
VENV="${AUTOGLM_STRUCTURED_VENV:-$HOME/.cache/autoglm/venv-structured}"
STAMP="$VENV/.autoglm-pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${REQS[*]}" ]; then
  t0=$(date +%s)
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}"
  echo "${REQS[*]}" >"$STAMP"
  echo "installed the pinned clients into $VENV in $(( $(date +%s) - t0 )) s"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
WORK="$(mktemp -d -t autoglm-structured.XXXXXX)"
PID=""
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

PORT="$(free_port)"
LOG="$WORK/serve.log"
"$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name qwen-test \
  --max-seqs 4 --max-batched-tokens 256 --kv-cache-mb 192 --ctx 2048 --threads "$THREADS" \
  --api-key test-key --log-format json >"$LOG" 2>&1 &
PID=$!

ready=""
for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then echo "FAIL: server not ready (exited or 300 s passed):"; tail -30 "$LOG"; exit 1; fi

status=0
t0=$(date +%s)
AUTOGLM_BASE_URL="http://127.0.0.1:$PORT/v1" AUTOGLM_API_KEY=test-key AUTOGLM_MODEL=qwen-test \
  "$VENV/bin/python" -m pytest tests/integration/test_structured.py -p no:cacheprovider -q -rfE \
  --junitxml="$WORK/junit.xml" "$@" || status=$?
elapsed=$(( $(date +%s) - t0 ))

# Graceful drain on SIGTERM: exit status 0.
kill -TERM "$PID"
if wait "$PID"; then echo "ok: SIGTERM drained, exit 0"; else echo "FAIL: serve exited $? after SIGTERM"; status=1; fi
PID=""

python3 - "$WORK/junit.xml" "$elapsed" <<'PY' || true
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print(f"summary: no junit report ({e})"); sys.exit()
s = root if root.tag == "testsuite" else root.find("testsuite")
n, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(f"summary: structured outputs: {n - f - e - sk} passed, {f + e} failed, {sk} skipped in {sys.argv[2]} s")
PY
[ "$status" = 0 ] || { echo "--- server log (last 30 lines)"; tail -30 "$LOG"; }
exit "$status"
