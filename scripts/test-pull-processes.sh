#!/usr/bin/env bash
# Integration test for `autoglm pull` across processes, against scripts/slow_file_server.py
# (its first full response is throttled):
#  1. two processes pull one ref at once: both succeed, the server sees one download, one blob;
#  2. a pull killed mid-download, then run again: it resumes with Range + If-Range (the ETag of the
#     bytes it kept) and verifies the sha256.
# The sha256 oracle is coreutils sha256sum. Usage: scripts/test-pull-processes.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/autoglm}"
WORK="$(mktemp -d -t autoglm-pullproc.XXXXXX)"
SRV_PID=""
cleanup() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A valid GGUF: general.architecture=llama and one F32 tensor of 32768 values (128 KiB).
python3 - "$WORK/m.gguf" <<'PY'
import struct, sys
def s(x): return struct.pack('<Q', len(x)) + x
b = b'GGUF' + struct.pack('<IQQ', 3, 1, 1)
b += s(b'general.architecture') + struct.pack('<I', 8) + s(b'llama')
b += s(b'tok_embd.weight') + struct.pack('<I', 1) + struct.pack('<Q', 32768) + struct.pack('<I', 0) + struct.pack('<Q', 0)
b += b'\0' * ((32 - len(b) % 32) % 32)
b += b''.join(struct.pack('<f', float(i % 977)) for i in range(32768))
open(sys.argv[1], 'wb').write(b)
PY
SHA="$(sha256sum "$WORK/m.gguf" | cut -d' ' -f1)"
SIZE="$(stat -c %s "$WORK/m.gguf")"

# Each server writes its own log: reusing one file raced (the check below could read the previous
# server's port before the new child truncated the file, and the pull then met a closed port).
start_server() {
  SRV_LOG="$WORK/srv-$1.log"
  python3 scripts/slow_file_server.py "$WORK/m.gguf" > "$SRV_LOG" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 100); do [ -s "$SRV_LOG" ] && break; sleep 0.1; done
  PORT="$(head -1 "$SRV_LOG")"
  case "$PORT" in ''|*[!0-9]*) fail "the file server did not start: $(cat "$SRV_LOG")" ;; esac
  REF="http://127.0.0.1:$PORT/m.gguf#sha256=$SHA"
}
stop_server() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""; }

# 1. Two processes at once.
start_server concurrent
H1="$WORK/home1"
AUTOGLM_HOME="$H1" "$BIN" pull "$REF" --json > "$WORK/a.json" 2> "$WORK/a.err" & A=$!
AUTOGLM_HOME="$H1" "$BIN" pull "$REF" --json > "$WORK/b.json" 2> "$WORK/b.err" & B=$!
wait "$A" || fail "first concurrent pull failed: $(cat "$WORK/a.err")"
wait "$B" || fail "second concurrent pull failed: $(cat "$WORK/b.err")"
for f in a b; do
  grep -q "\"digest\" : \"$SHA\"" "$WORK/$f.json" || fail "pull $f reported another digest: $(cat "$WORK/$f.json")"
done
GETS="$(grep -c '^GET' "$SRV_LOG" || true)"
[ "$GETS" = 1 ] || fail "expected one download, the server saw $GETS requests"
BLOBS="$(ls "$H1/blobs" | grep -c '^sha256-' || true)"
[ "$BLOBS" = 1 ] || fail "expected one blob, found $BLOBS"
[ -f "$H1/blobs/sha256-$SHA" ] || fail "blob sha256-$SHA missing"
echo "ok: two concurrent pulls, one download ($GETS GET), both succeeded"
stop_server

# 2. Kill a pull mid-download, then pull again.
start_server resume
H2="$WORK/home2"
AUTOGLM_HOME="$H2" "$BIN" pull "$REF" --json > "$WORK/k.json" 2> "$WORK/k.err" & K=$!
PARTIAL=0
for _ in $(seq 500); do
  P="$(ls "$H2"/blobs/.tmp-*.partial 2>/dev/null | head -1 || true)"
  if [ -n "$P" ]; then PARTIAL="$(stat -c %s "$P")"; [ "$PARTIAL" -gt 0 ] && break; fi
  kill -0 "$K" 2>/dev/null || break
  sleep 0.02
done
if ! kill -9 "$K" 2>/dev/null; then
  wait "$K" && rc=0 || rc=$?
  fail "the pull ended (exit $rc) before it could be killed; its stderr: $(cat "$WORK/k.err"); the server's log: $(cat "$SRV_LOG")"
fi
wait "$K" 2>/dev/null || true
[ "$PARTIAL" -gt 0 ] || fail "the pull wrote no partial data before it was killed"
ls "$H2/blobs" | grep -q '^sha256-' && fail "the killed pull left a blob"
AUTOGLM_HOME="$H2" "$BIN" pull "$REF" --json > "$WORK/c.json" 2> "$WORK/c.err" || fail "pull after kill failed: $(cat "$WORK/c.err")"
grep -q "\"digest\" : \"$SHA\"" "$WORK/c.json" || fail "resumed pull reported another digest"
RESUMED="$(grep '^GET range=bytes=' "$SRV_LOG" | head -1 || true)"
RANGE="$(echo "$RESUMED" | sed 's/^GET range=bytes=//; s/-.*//')"
[ -n "$RANGE" ] && [ "$RANGE" -gt 0 ] && [ "$RANGE" -lt "$SIZE" ] || fail "the second pull did not resume with Range: $(cat "$SRV_LOG")"
case "$RESUMED" in *'if-range="'*) ;; *) fail "the resumed request carried no If-Range validator: $RESUMED" ;; esac
echo "ok: killed pull resumed at byte $RANGE of $SIZE with If-Range and verified sha256 $SHA"
stop_server
