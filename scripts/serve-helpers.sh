# Shell helpers of the integration scripts that start `autoglm serve` (source it; bash).
# free_port: a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# wait_ready URL PID LOG: until URL answers 2xx (at most 300 s); fails with the log if PID exits first.
wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "server exited:"; cat "$3"; return 1; }
    sleep 0.5
  done
  echo "not ready after 300 s: $1"; tail -20 "$3"; return 1
}
# serve_inputs BIN: sets MODEL (the gemma3 test model) and THREADS; exits with the fix when the
# binary or the model is missing.
serve_inputs() {
  MODEL="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf"
  THREADS="${AUTOGLM_THREADS:-2}"
  [ -x "$1" ] || { echo "no binary at $1: run 'swift build -c release --product autoglm' first" >&2; exit 1; }
  [ -f "$MODEL" ] || { echo "model $MODEL missing: run scripts/fetch-models.sh" >&2; exit 1; }
}
