#!/usr/bin/env bash
# A real Kubernetes v1.20 control plane on loopback for the `autoglm deploy apply|status|rollback|delete`
# integration tests (Tests/DeployTests/KubeIntegrationTests.swift). Wraps scripts/k8s-testbed/ (the
# control-plane build/start script and the fake kubelet, kept in this repository).
#
#   bash scripts/k8s-testbed.sh build   # once per machine (~8+ min, cached in $K8S_TESTBED_DIR)
#   export AUTOGLM_TEST_KUBECONFIG="$(bash scripts/k8s-testbed.sh start)"   # prints only the kubeconfig path
#   swift test -c release --filter KubeIntegration
#   bash scripts/k8s-testbed.sh stop
#
# start = etcd + kube-apiserver + controller-manager + scheduler + a fake kubelet (pods become Ready,
# or never Ready when an image tag starts with :bad / :broken / :fail). Everything listens on 127.0.0.1.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${K8S_TESTBED_SHARED:-$REPO/scripts/k8s-testbed}"
export K8S_TESTBED_DIR="${K8S_TESTBED_DIR:-/var/cache/k8s-testbed}"
ROOT="$K8S_TESTBED_DIR"
RUN="$ROOT/run"
BIN="$ROOT/bin"

log() { echo "[k8s-testbed $(date +%T)] $*" >&2; }

need_shared() {
  [ -f "$SHARED/k8s-testbed.sh" ] || { log "missing $SHARED/k8s-testbed.sh (scripts/k8s-testbed/ in this repository)"; exit 1; }
}

built() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do [ -x "$BIN/$c" ] || return 1; done
  command -v etcd >/dev/null && command -v curl >/dev/null && command -v bc >/dev/null
}

python_deps() {
  python3 -c 'import kubernetes' 2>/dev/null && return 0
  log "installing the Python kubernetes client (for the fake kubelet)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >&2
  fi
  python3 -m pip install --quiet --disable-pip-version-check kubernetes >&2 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kubernetes >&2
}

build() {
  need_shared
  python_deps
  if built; then log "already built in $ROOT"; return 0; fi
  log "building the control plane (once; cached in $ROOT)"
  # The testbed build installs Debian packages and fetches the kubernetes source package.
  apt-get update -qq >&2 || true
  bash "$SHARED/k8s-testbed.sh" build >&2
  built || { log "build finished but binaries are missing in $BIN"; exit 1; }
}

api_ok() {
  curl -fsS --max-time 2 --cacert "$RUN/pki/ca.crt" \
    -H "Authorization: Bearer ${K8S_TESTBED_TOKEN:-testbed-admin-token}" \
    "https://127.0.0.1:${API_PORT:-16443}/readyz" >/dev/null 2>&1
}

start() {
  need_shared
  built || build
  python_deps
  # A previous run that was not stopped would hold the ports.
  if [ -f "$RUN/kube-apiserver.pid" ] || [ -f "$RUN/fake-kubelet.pid" ]; then stop; fi
  bash "$SHARED/k8s-testbed.sh" start >&2 </dev/null
  local kc="$RUN/kubeconfig"
  KUBECONFIG="$kc" nohup python3 "$SHARED/fake-kubelet.py" </dev/null >"$RUN/fake-kubelet.log" 2>&1 &
  echo $! >"$RUN/fake-kubelet.pid"
  # Ready when the API answers and the fake node is Ready (so pods get scheduled).
  local i
  for i in $(seq 1 150); do
    if api_ok && "$BIN/kubectl" --kubeconfig "$kc" get node fake-node-1 \
         -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; then
      log "API and fake kubelet ready"
      echo "$kc"
      return 0
    fi
    if ! kill -0 "$(cat "$RUN/fake-kubelet.pid")" 2>/dev/null; then
      log "the fake kubelet exited:"; tail -n 20 "$RUN/fake-kubelet.log" >&2; exit 1
    fi
    sleep 0.2
  done
  log "timeout waiting for the API server and the fake node"; tail -n 20 "$RUN/kube-apiserver.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$RUN/fake-kubelet.pid" ]; then
    kill "$(cat "$RUN/fake-kubelet.pid")" 2>/dev/null || true
    rm -f "$RUN/fake-kubelet.pid"
  fi
  [ -f "$SHARED/k8s-testbed.sh" ] && bash "$SHARED/k8s-testbed.sh" stop >&2 || true
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 build|start|stop" >&2; exit 2 ;;
esac
