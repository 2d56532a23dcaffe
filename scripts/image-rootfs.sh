#!/usr/bin/env bash
# The runtime stage of the Containerfile (`autoglm deploy containerfile`) built without a container
# engine: a Debian bookworm minbase root filesystem (what debian:bookworm-slim is) made by mmdebstrap
# from the Debian archive, then the runtime stage's own RUN line executed in it with chroot, then
# its COPY lines with the binaries given here. The RUN result is cached as a tarball under
# $AUTOGLM_CACHE/rootfs-v1/, named by the hash of the stage's FROM and RUN text, so a change to the
# runtime packages makes a new one.
#
#   bash scripts/image-rootfs.sh DIR BINARY [LLAMA_SERVER]   # writes the image's root filesystem into DIR
#
# COPY --from=build /out/autoglm: the image's build stage links the Swift runtime statically
# (--static-swift-stdlib). This machine's release binary links it dynamically, so the Swift
# runtime libraries it resolves under the toolchain are copied in at the same paths — they stand
# in for the part of the static binary they are; every other library must come from the stage's packages.
# Needs root (chroot, mounts) and mmdebstrap (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:?usage: image-rootfs.sh DIR BINARY [LLAMA_SERVER]}"
BIN="$(realpath "${2:?usage: image-rootfs.sh DIR BINARY [LLAMA_SERVER]}")"
LLAMA="${3:-}"
[ "$(id -u)" = 0 ] || { echo "image-rootfs.sh needs root (chroot and bind mounts)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
log() { echo "[image-rootfs $(date +%T)] $*" >&2; }

CF="$(mktemp -d -t autoglm-cf.XXXXXX)"
trap 'rm -rf "$CF"' EXIT
"$BIN" deploy containerfile -o "$CF" >/dev/null
# The runtime stage as JSON: base image, RUN commands, COPY pairs, ENV, USER (the Containerfile's own text).
python3 - "$CF/Containerfile" >"$CF/stage.json" <<'PY'
import json, re, shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stage, out = None, {"run": [], "copy": [], "env": {}, "user": "0:0"}
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"): continue
    word, _, rest = line.partition(" ")
    if word == "FROM":
        stage = rest.split(" AS ")[-1].strip()
        if stage == "runtime": out["from"] = rest.split(" AS ")[0].strip()
        continue
    if stage != "runtime": continue
    if word == "RUN": out["run"].append(rest.strip())
    elif word == "COPY":
        parts = shlex.split(rest)
        src_stage = next((p.split("=", 1)[1] for p in parts if p.startswith("--from=")), None)
        files = [p for p in parts if not p.startswith("--")]
        out["copy"].append({"from": src_stage, "src": files[0], "dst": files[1]})
    elif word == "ENV":
        k, _, v = rest.partition("=")
        out["env"][k.strip()] = v.strip()
    elif word == "USER": out["user"] = rest.strip()
    elif word in ("ENTRYPOINT", "CMD"): out[word.lower()] = json.loads(rest)
assert out.get("from") == "debian:bookworm-slim", out.get("from")
assert out["run"] and out["copy"], out
print(json.dumps(out))
PY
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$CF/stage.json" "$1"; }

CACHE="${AUTOGLM_CACHE:-$HOME/.cache/autoglm}/rootfs-v1"
KEY="$(field 'd["from"] + "\n" + "\n".join(d["run"])' | sha256sum | cut -c1-16)"
TAR="$CACHE/runtime-$KEY.tar"
mkdir -p "$CACHE"

# The Debian archive (override with AUTOGLM_DEBIAN_MIRROR, e.g. a local mirror).
MIRROR="${AUTOGLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

with_mounts() {  # ROOT CMD... : run CMD with /proc, /dev and resolv.conf of the host inside ROOT (private mount namespace)
  local root=$1; shift
  unshare -m --propagation private sh -c '
    r=$1; shift
    mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
    exec "$@"' sh "$root" "$@"
}

if [ ! -f "$TAR" ]; then
  log "building the runtime stage (once; cached as $TAR)"
  B="$(mktemp -d -t autoglm-rootfs.XXXXXX)"
  mmdebstrap --quiet --variant=minbase --mode=root bookworm "$B" "$MIRROR" >&2
  touch "$B/etc/resolv.conf"
  while IFS= read -r cmd; do
    log "RUN $cmd"
    with_mounts "$B" chroot "$B" /bin/sh -c "$cmd" >&2
  done < <(field '"\n".join(d["run"])')
  : >"$B/etc/resolv.conf"
  tar -C "$B" -cf "$TAR.part" . && mv "$TAR.part" "$TAR"
  rm -rf "$B"
fi

rm -rf "$DIR" && mkdir -p "$DIR"
tar -C "$DIR" -xf "$TAR"
# COPY lines: the build stage's outputs are the binaries given here.
while IFS=$'\t' read -r src dst; do
  case "$src" in
    /out/autoglm) install -D -m 0755 "$BIN" "$DIR$dst"
      # The Swift runtime (static in the image's build): the libraries ldd resolves under the toolchain.
      ldd "$BIN" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
        case "$lib" in /lib/*|/usr/lib/*) ;; *) install -D -m 0644 "$lib" "$DIR$lib" ;; esac
      done ;;
    /out/llama-server) if [ -n "$LLAMA" ]; then install -D -m 0755 "$LLAMA" "$DIR$dst"; fi ;;
    *) echo "unknown COPY source $src in the runtime stage" >&2; exit 1 ;;
  esac
done < <(field '"\n".join(c["src"] + "\t" + c["dst"] for c in d["copy"])')
cp "$CF/stage.json" "$DIR/.autoglm-stage.json"
log "runtime stage ready in $DIR"
