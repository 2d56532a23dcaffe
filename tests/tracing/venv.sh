# tests/tracing/venv.sh — sourced by scripts/test-tracing.sh and bench/tracing-overhead.sh: sets
# OTLP_PY to a Python with the pinned opentelemetry-proto (a venv under ~/.cache/autoglm, made
# once; never in the repo) and defines start_collector PORT OUT.jsonl LOG (sets COLLECTOR_PID).
# shellcheck shell=bash
OTLP_VENV="${AUTOGLM_OTLP_VENV:-$HOME/.cache/autoglm/venv-otlp}"
if [ ! -x "$OTLP_VENV/bin/python" ] || ! "$OTLP_VENV/bin/python" -c "import opentelemetry.proto" 2>/dev/null; then
  python3 -m venv "$OTLP_VENV"
  "$OTLP_VENV/bin/pip" install --quiet --disable-pip-version-check "opentelemetry-proto==1.45.2"
fi
OTLP_PY="$OTLP_VENV/bin/python"

start_collector() {  # PORT OUT LOG: the test collector, up once it says "listening"
  bg_start "$3" "$OTLP_PY" tests/tracing/otlp_collector.py "$1" "$2"
  COLLECTOR_PID=$BG_PID
  for _ in $(seq 1 50); do grep -q listening "$3" && return 0; sleep 0.1; done
  echo "the OTLP test collector did not start: $(cat "$3")" >&2; return 1
}
