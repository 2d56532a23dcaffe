# bench/lib.sh — helpers the bench scripts share. Sourced, never run:
#   cd "$(dirname "$0")/.." && . bench/lib.sh      (paths below are relative to the repo root)
# Sourcing it sets AUTOGLM (default .build/release/autoglm, unless set) and MODEL (gemma3-270m
# Q4_K_M under $AUTOGLM_MODELS, default ~/.cache/autoglm/models), and installs an
# EXIT/INT/TERM trap that stops every process started with bg_start and runs the at_exit hooks.
# shellcheck shell=bash

AUTOGLM="${AUTOGLM:-.build/release/autoglm}"
MODEL="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf"

# need_autoglm / need_model [PATH]: exit with a hint when the binary or the model is missing.
need_autoglm() { [ -x "$AUTOGLM" ] || { echo "no $AUTOGLM: swift build -c release --product autoglm" >&2; exit 1; }; }
need_model() { local m="${1:-$MODEL}"; [ -f "$m" ] || { echo "no $m: bash scripts/fetch-models.sh" >&2; exit 1; }; }

# llama_server_path: $LLAMA_SERVER if set, else the cached build (built on first use; slow).
llama_server_path() { if [ -n "${LLAMA_SERVER:-}" ]; then echo "$LLAMA_SERVER"; else bash bench/build-llama-server.sh; fi; }

# port: a free TCP port on 127.0.0.1 (the kernel's pick; nothing hard-coded).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_ready URL [TRIES]: polls URL every 0.2 s until it answers 2xx (default 600 tries = 2 min).
wait_ready() {
  local url="$1" tries="${2:-600}"
  for _ in $(seq 1 "$tries"); do curl -fsS "$url" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "not ready: $url" >&2; return 1
}

# wait_replicas BASE_URL N: an `autoglm up` gateway is ready with its first replica; this waits
# (up to 2 min) until N replicas report ready in /fleet/status.
wait_replicas() {
  local n
  for _ in $(seq 1 600); do
    n=$(curl -fsS "$1/fleet/status" | python3 -c 'import json,sys; print(sum(r["state"]=="ready" for r in json.load(sys.stdin)["replicas"]))')
    [ "$n" = "$2" ] && return 0; sleep 0.2
  done
  return 0
}

# loadavg: the 1, 5 and 15 minute load averages.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# rss_kib PID [FIELD]: a /proc/PID/status field in KiB (default VmRSS; VmHWM is the peak).
rss_kib() { awk -v f="${2:-VmRSS}:" '$1 == f {print $2}' "/proc/$1/status"; }

# Background processes: bg_start LOG CMD... starts CMD with stdout+stderr to LOG, records it and
# sets BG_PID; stop_pid PID stops one (SIGTERM, then waits); stop_all stops every one still
# recorded. at_exit CMD... adds a hook the exit trap runs after stop_all.
BENCH_PIDS=()
BENCH_EXIT_HOOKS=()
bg_start() {
  local log="$1"; shift
  "$@" >"$log" 2>&1 &
  BG_PID=$!
  BENCH_PIDS+=("$BG_PID")
}
stop_pid() {
  local p="$1" q keep=()
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in ${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}; do [ "$q" = "$p" ] || keep+=("$q"); done
  BENCH_PIDS=(${keep[@]+"${keep[@]}"})
}
stop_all() {
  local p
  for p in ${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
  BENCH_PIDS=()
}
at_exit() { BENCH_EXIT_HOOKS+=("$*"); }
bench_cleanup() {
  local h
  stop_all
  for h in ${BENCH_EXIT_HOOKS[@]+"${BENCH_EXIT_HOOKS[@]}"}; do eval "$h" || true; done
}
trap bench_cleanup EXIT
trap 'bench_cleanup; trap - EXIT; exit 130' INT TERM
