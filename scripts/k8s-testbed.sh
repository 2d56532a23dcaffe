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
# or never Ready when an image tag starts with :bad / :broken / :fail) + a custom-metrics adapter
# behind the aggregation layer (scripts/k8s-testbed/metrics-adapter.py, for the HPA). Everything
# listens on 127.0.0.1 except the adapter (this machine's first non-loopback IPv4, $ADAPTER_PORT).
# Ports: API_PORT ETCD_PORT ETCD_PEER_PORT KCM_PORT SCHED_PORT ADAPTER_PORT (env, passed through),
# so several test beds (each its own K8S_TESTBED_DIR) can run side by side.
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
  if [ -f "$RUN/kube-apiserver.pid" ] || [ -f "$RUN/fake-kubelet.pid" ] || [ -f "$RUN/metrics-adapter.pid" ]; then stop; fi
  bash "$SHARED/k8s-testbed.sh" start >&2 </dev/null
  local kc="$RUN/kubeconfig"
  KUBECONFIG="$kc" nohup python3 "$SHARED/fake-kubelet.py" </dev/null >"$RUN/fake-kubelet.log" 2>&1 &
  echo $! >"$RUN/fake-kubelet.pid"
  start_metrics_adapter "$kc"
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
