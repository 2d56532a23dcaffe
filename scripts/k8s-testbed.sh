#!/usr/bin/env bash
# A real Kubernetes v1.20 control plane on loopback for the `autoglm deploy apply|status|rollback|delete`
# integration tests (Tests/DeployTests/KubeIntegrationTests.swift). Wraps scripts/k8s-testbed/ (the
# control-plane build/start script and the testbed kubelet, kept in this repository).
#
#   bash scripts/k8s-testbed.sh build   # once per machine (~8+ min, cached in $K8S_TESTBED_DIR)
#   export AUTOGLM_BIN="$(swift build -c release --show-bin-path)/autoglm"   # what pods of the autoglm image run
#   export AUTOGLM_TEST_KUBECONFIG="$(bash scripts/k8s-testbed.sh start)"   # prints only the kubeconfig path
#   swift build -c release --build-tests && swift test -c release --skip-build --filter KubeIntegration
#   bash scripts/k8s-testbed.sh stop
#
# start = etcd + kube-apiserver + controller-manager + scheduler + scripts/k8s-testbed/kubelet.py, a
# kubelet stand-in whose pods really run as local processes (root needed): one bridge ($KUBELET_BRIDGE,
# default agl0, on $KUBELET_POD_CIDR, default 10.88.0.0/24), a network namespace per pod, containers of
# the autoglm image run $AUTOGLM_BIN (and $AUTOGLM_LLAMA_SERVER for llama-server); both are read when
# a container starts, so the binary may be built after `start`. Images tagged :bad / :broken / :fail
# (and any image that is not autoglm's) fail with ErrImagePull. The control plane listens on
# 127.0.0.1; pods are reached through the bridge. Its logs: $K8S_TESTBED_DIR/run/kubelet.log and
# $K8S_TESTBED_DIR/run/kubelet/logs/NAMESPACE_POD_UID/CONTAINER.log.
# A second instance beside the default one: K8S_TESTBED_DIR, API_PORT, ETCD_PORT, ETCD_PEER_PORT,
# KCM_PORT, SCHED_PORT, KUBELET_BRIDGE and KUBELET_POD_CIDR all different.
# Also a custom-metrics adapter behind the aggregation layer (scripts/k8s-testbed/metrics-adapter.py,
# for the HPA), listening on this machine's first non-loopback IPv4, $ADAPTER_PORT (default 16445):
# a second instance needs its own ADAPTER_PORT too.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${K8S_TESTBED_SHARED:-$REPO/scripts/k8s-testbed}"
export K8S_TESTBED_DIR="${K8S_TESTBED_DIR:-/var/cache/k8s-testbed}"
ROOT="$K8S_TESTBED_DIR"
RUN="$ROOT/run"
BIN="$ROOT/bin"
NODE="${KUBELET_NODE_NAME:-testbed-node-1}"

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
  log "installing the Python kubernetes client (for the testbed kubelet)"
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

KUBELET_PID="$RUN/kubelet.pid"

start() {
  need_shared
  built || build
  python_deps
  # A previous run that was not stopped would hold the ports (and the bridge).
  if [ -f "$RUN/kube-apiserver.pid" ] || [ -f "$KUBELET_PID" ] || [ -f "$RUN/metrics-adapter.pid" ]; then stop; fi
  bash "$SHARED/k8s-testbed.sh" start >&2 </dev/null
  local kc="$RUN/kubeconfig"
  rm -rf "$RUN/kubelet/logs"
  mkdir -p "$RUN/kubelet"
  # AUTOGLM_BIN / AUTOGLM_LLAMA_SERVER pass through the environment (read at each container start).
  KUBECONFIG="$kc" KUBELET_RUN_DIR="$RUN/kubelet" KUBELET_NODE_NAME="$NODE" \
    nohup python3 "$SHARED/kubelet.py" </dev/null >"$RUN/kubelet.log" 2>&1 &
  echo $! >"$KUBELET_PID"
  start_metrics_adapter "$kc"
  # Ready when the API answers and the node is Ready (so pods get scheduled).
  local i
  for i in $(seq 1 150); do
    if api_ok && "$BIN/kubectl" --kubeconfig "$kc" get node "$NODE" \
         -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; then
      log "API and kubelet ready (node $NODE, pods on bridge ${KUBELET_BRIDGE:-agl0} ${KUBELET_POD_CIDR:-10.88.0.0/24})"
      echo "$kc"
      return 0
    fi
    if ! kill -0 "$(cat "$KUBELET_PID")" 2>/dev/null; then
      log "the kubelet exited:"; tail -n 20 "$RUN/kubelet.log" >&2; exit 1
    fi
    sleep 0.2
  done
  log "timeout waiting for the API server and the node"; tail -n 20 "$RUN/kube-apiserver.log" >&2 || true
  exit 1
}

# The custom-metrics adapter (scripts/k8s-testbed/metrics-adapter.py) behind the aggregation layer:
# it listens on this machine's first non-loopback IPv4 (an Endpoints address may not be loopback),
# on $ADAPTER_PORT; a selector-less Service + Endpoints point at it and the APIService
# v1beta1.custom.metrics.k8s.io registers it (the API server routes to the endpoint:
# --enable-aggregator-routing). The HPA controller reads Pods metrics through it.
start_metrics_adapter() {
  local kc=$1 d="$RUN/pki" ip port="${ADAPTER_PORT:-16445}"
  ip="$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -v '^127\.' | head -n1 || true)"
  [ -n "$ip" ] || { log "no non-loopback IPv4 address for the metrics adapter"; exit 1; }
  if [ ! -f "$d/adapter.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=autoglm-test-metrics-adapter" \
      -addext "subjectAltName=IP:$ip" -keyout "$d/adapter.key" -out "$d/adapter.crt" 2>/dev/null
  fi
  nohup python3 "$SHARED/metrics-adapter.py" --listen "$ip:$port" --kubeconfig "$kc" \
    --cert "$d/adapter.crt" --key "$d/adapter.key" --client-ca "$d/front-proxy-ca.crt" \
    </dev/null >"$RUN/metrics-adapter.log" 2>&1 &
  echo $! >"$RUN/metrics-adapter.pid"
  "$BIN/kubectl" --kubeconfig "$kc" apply -f - >&2 <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: custom-metrics}
---
apiVersion: v1
kind: Service
metadata: {name: metrics-adapter, namespace: custom-metrics}
spec:
  ports: [{name: https, port: 443, targetPort: $port}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-adapter, namespace: custom-metrics}
subsets:
- addresses: [{ip: "$ip"}]
  ports: [{name: https, port: $port}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.custom.metrics.k8s.io}
spec:
  group: custom.metrics.k8s.io
  version: v1beta1
  service: {name: metrics-adapter, namespace: custom-metrics, port: 443}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
  local i
  for i in $(seq 1 150); do
    if "$BIN/kubectl" --kubeconfig "$kc" get apiservice v1beta1.custom.metrics.k8s.io \
         -o 'jsonpath={.status.conditions[?(@.type=="Available")].status}' 2>/dev/null | grep -q True; then
      log "custom metrics adapter available on $ip:$port"; return 0
    fi
    sleep 0.2
  done
  log "the custom metrics APIService did not become Available:"
  "$BIN/kubectl" --kubeconfig "$kc" get apiservice v1beta1.custom.metrics.k8s.io -o yaml >&2 || true
  tail -n 20 "$RUN/metrics-adapter.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$RUN/metrics-adapter.pid" ]; then
    kill "$(cat "$RUN/metrics-adapter.pid")" 2>/dev/null || true
    rm -f "$RUN/metrics-adapter.pid"
  fi
  # The kubelet first: it kills every pod process and removes the netns, veths and the bridge.
  if [ -f "$KUBELET_PID" ]; then
    local pid i
    pid="$(cat "$KUBELET_PID")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "the kubelet did not stop within 30 s: SIGKILL, then its cleanup"
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$KUBELET_PID"
    # Whatever a killed (or crashed) kubelet left: pod processes, netns, bridge, mount-point stubs.
    KUBELET_RUN_DIR="$RUN/kubelet" python3 "$SHARED/kubelet.py" --cleanup >&2 || true
  fi
  [ -f "$SHARED/k8s-testbed.sh" ] && bash "$SHARED/k8s-testbed.sh" stop >&2 || true
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 build|start|stop" >&2; exit 2 ;;
esac
