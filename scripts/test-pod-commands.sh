#!/usr/bin/env bash
# The pod that `autoglm deploy render` describes, run with the real binary: the init container's
# `autoglm pull ...` and the main container's `autoglm serve --config ...` are taken from the
# rendered manifests (parsed with PyYAML, which kubernetes-validate brings in .ci/run) with their env;
# only paths move (/models and /etc/autoglm to temp dirs holding the volume and the ConfigMap's
# files) and the Secret's value is filled in as the kubelet would. Checks: pull succeeds, serve
# becomes ready on /readyz, rejects a request without the key, answers one /v1/chat/completions,
# and exits 0 on SIGTERM; serve fetched nothing (it used the init container's pull) and wrote
# nothing to $HOME. Run twice: backend native, and backend llamacpp (the main container's
# `serve --config` launches the image's llama-server, which here is the one
# bench/build-llama-server.sh built: $AUTOGLM_LLAMA_SERVER stands in for /usr/local/bin/llama-server).
# With IMAGE_ROOTFS=1 the same two containers run inside the Containerfile's runtime stage instead
# (scripts/image-rootfs.sh: Debian bookworm minbase + the stage's RUN line, cached), as uid 10001 with
# chroot, the image's ENV, /models and /etc/autoglm at their real paths, the model file bind-mounted
# read-only at /seed: this proves the image's packages carry every library the binaries need.
# Usage: scripts/test-pod-commands.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(realpath "${1:-.build/release/autoglm}")"
MODEL="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/gemma3-270m-q4_k_m.gguf"
[ -f "$MODEL" ] || { echo "FAIL: $MODEL is missing: run scripts/fetch-models.sh"; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL: python3 cannot import yaml (PyYAML; .ci/run installs it with kubernetes-validate)"; exit 1; }
LLAMA="${AUTOGLM_LLAMA_SERVER:-$HOME/.cache/autoglm/peers/llama-server/bin/llama-server}"
[ -x "$LLAMA" ] || { echo "FAIL: llama-server missing at $LLAMA: run bench/build-llama-server.sh"; exit 1; }
WORK=""
SRV_PID=""
cleanup() { if [ -n "$SRV_PID" ]; then kill -9 "$SRV_PID" 2>/dev/null || true; fi; if [ -n "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$WORK/serve.log" ] && tail -20 "$WORK/serve.log"; exit 1; }

run_pod() {  # BACKEND_FLOW_MAPPING
WORK="$(mktemp -d -t autoglm-pod.XXXXXX)"
REF="$MODEL"
ROOT=""   # the image's root filesystem (IMAGE_ROOTFS=1)
if [ "${IMAGE_ROOTFS:-0}" = 1 ]; then
  ROOT="$WORK/rootfs"
  bash scripts/image-rootfs.sh "$ROOT" "$BIN" "$LLAMA" || fail "could not build the image's runtime stage"
  mkdir -p "$ROOT/seed"
  REF="/seed/$(basename "$MODEL")"
  ls -A "$ROOT/home/autoglm" > "$WORK/home-before"
fi
echo "=== pod with backend: $1${ROOT:+ (inside the image runtime stage)}"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
SECRET="k-$RANDOM$RANDOM"
mkdir -p "$WORK/models" "$WORK/etc" "$WORK/home"
cat > "$WORK/autoglm.yaml" <<EOF
apiVersion: autoglm/v1
name: podsh
model:
  ref: $REF
  version: "1.2.0"
backend: $1
server:
  port: $PORT
  drainTimeoutSeconds: 5
  apiKeys:
    - secretRef: {name: podsh-keys, key: token}
EOF
"$BIN" deploy render "$WORK/autoglm.yaml" -o "$WORK/manifests" 2> "$WORK/render.err" || fail "render: $(cat "$WORK/render.err")"

# Rendered manifests -> two shell-quoted command lines with their env (paths moved).
python3 - "$WORK" "$SECRET" "$LLAMA" "$ROOT" "$(dirname "$MODEL")" <<'PY' || fail "could not read the rendered manifests"
import glob, json, shlex, sys, yaml
work, secret, llama, root, seed = sys.argv[1:6]
docs = [d for f in sorted(glob.glob(work + "/manifests/*.yaml")) for d in yaml.safe_load_all(open(f)) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
cm = next(d for d in docs if d["kind"] == "ConfigMap")
pod = dep["spec"]["template"]["spec"]
def move(s):
    if root: return s   # in the image every path is where the pod spec says
    for a, b in (("/models", work + "/models"), ("/etc/autoglm", work + "/etc"), ("/usr/local/bin/llama-server", llama)):
        if s == a or s.startswith(a + "/"): return b + s[len(a):]
    return s
assert any(m["mountPath"] == "/etc/autoglm" for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")
# The config volume is the content-named ConfigMap that was rendered (podsh-config-<hash>).
assert [v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config"] == [cm["metadata"]["name"]], cm["metadata"]["name"]
assert cm["metadata"]["name"].startswith("podsh-config-") and cm.get("immutable") is True
for name, text in cm["data"].items():
    open((root + "/etc/autoglm/" if root else work + "/etc/") + name, "w").write(text)
for label, c in (("pull", pod["initContainers"][0]), ("serve", pod["containers"][0])):
    env = {"PATH": "/usr/bin:/bin", "HOME": work + "/home"}
    if root:   # a container's environment: the image's ENV, then the pod's
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/home/autoglm"}
        env.update(json.load(open(root + "/.autoglm-stage.json"))["env"])
    for e in c.get("env", []):
        if "value" in e: env[e["name"]] = move(e["value"])
        elif e.get("valueFrom", {}).get("secretKeyRef") == {"name": "podsh-keys", "key": "token"}: env[e["name"]] = secret
    cmd = [move(a) for a in c["command"]]
    assert cmd[0] == "autoglm", cmd
    exe = '"$BIN"' if not root else "autoglm"
    line = "env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + exe + " " + " ".join(map(shlex.quote, cmd[1:]))
    if root:   # as the image's USER in a private mount namespace: /proc, /dev, the model read-only at /seed
        mounts = 'r=$1; m=$2; u=$3; shift 3; mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount --bind "$m" "$r/seed" && mount -o remount,bind,ro "$r/seed" && exec chroot --userspec="$u" "$r" "$@"'
        user = json.load(open(root + "/.autoglm-stage.json"))["user"]
        line = "unshare -m --propagation private sh -c " + " ".join(map(shlex.quote, [mounts, "sh", root, seed, user])) + " " + line
    open(f"{work}/{label}.cmd", "w").write(line + "\n")
PY
echo "init container: $(cat "$WORK/pull.cmd")"
echo "main container: $(cat "$WORK/serve.cmd")"

# 1. The init container.
eval "$(cat "$WORK/pull.cmd")" > "$WORK/pull.log" 2>&1 || fail "pull: $(cat "$WORK/pull.log")"
[ -f "${ROOT:-$WORK}/models/registry.sqlite" ] || fail "pull did not create the registry in the models dir"
echo "ok: init container: $(grep -o 'registered [^ ]*' "$WORK/pull.log")"

# 2. The main container.
eval "$(cat "$WORK/serve.cmd") > \"\$WORK/serve.log\" 2>&1 &"
SRV_PID=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1 && break
  kill -0 "$SRV_PID" 2>/dev/null || fail "serve exited before it was ready"
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null || fail "serve never became ready"
BODY='{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":4,"temperature":0}'
CODE="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/v1/chat/completions")"
[ "$CODE" = 401 ] || fail "a request without the Secret's key got $CODE, not 401"
curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $SECRET" -d "$BODY" \
  "http://127.0.0.1:$PORT/v1/chat/completions" > "$WORK/answer.json" || fail "chat completion failed"
python3 - "$WORK/answer.json" <<'PY' || fail "bad chat completion: $(cat "$WORK/answer.json")"
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a["choices"][0]["message"]["content"], str)
assert 1 <= a["usage"]["completion_tokens"] <= 4
PY
echo "ok: ready on /readyz, 401 without the key, one chat completion with it"

# 3. SIGTERM: drain and exit 0.
kill -TERM "$SRV_PID"
RC=0; wait "$SRV_PID" || RC=$?
SRV_PID=""
[ "$RC" = 0 ] || fail "serve exited $RC on SIGTERM"
grep -q '^pulled ' "$WORK/serve.log" && fail "serve pulled the model again instead of using the init container's"
if [ -n "$ROOT" ]; then
  [ "$(ls -A "$ROOT/home/autoglm")" = "$(cat "$WORK/home-before")" ] || fail "something was written to \$HOME: $(ls -A "$ROOT/home/autoglm")"
else
  [ -z "$(ls -A "$WORK/home")" ] || fail "something was written to \$HOME: $(ls -A "$WORK/home")"
fi
echo "ok: SIGTERM drained and exited 0; serve used the pulled model; nothing written to \$HOME"
if pgrep -f "llama-server.*$WORK" >/dev/null 2>&1; then fail "llama-server still runs after serve exited"; fi
rm -rf "$WORK"; WORK=""
}

run_pod "{threads: 2, maxSeqs: 2, kvCacheMB: 32, contextLength: 256, batchWaitMs: 5}"
run_pod "{type: llamacpp, threads: 2, maxSeqs: 2, contextLength: 256}"
exit 0
