#!/usr/bin/env bash
# Integration test of request tracing (OpenTelemetry over OTLP/HTTP): a small collector
# (tests/tracing/otlp_collector.py, the pinned opentelemetry-proto in a venv under ~/.cache/autoglm)
# receives the spans of `autoglm up` (gateway + 1 native replica) started with --otlp-endpoint.
#  1. One chat request carrying a caller-made `traceparent`: exactly one trace, the caller's trace
#     id, nested caller → gateway server span → forward (client) → replica server span →
#     queue / prefill / decode, with the model and token counts on the request spans.
#  2. The collector stopped (its port closed): requests still answer 200 and
#     autoglm:trace_spans_dropped_total on the gateway's /metrics rises above 0.
# Usage: scripts/test-tracing.sh   (binary: $AUTOGLM_BIN, default .build/release/autoglm; model: scripts/fetch-models.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOGLM="${AUTOGLM_BIN:-.build/release/autoglm}"
. bench/lib.sh
need_autoglm; need_model
. tests/tracing/venv.sh
WORK="$(mktemp -d -t autoglm-trace.XXXXXX)"
[ -n "${KEEP_WORK:-}" ] || at_exit rm -rf "$WORK"
fail() { echo "FAIL: $*"; echo "--- fleet log (tail)"; tail -30 "$WORK/up.log" 2>/dev/null || true; exit 1; }

CPORT="$(port)"
SPANS="$WORK/spans.jsonl"
start_collector "$CPORT" "$SPANS" "$WORK/collector.log" || fail "no collector"

PORT="$(port)"
cat >"$WORK/fleet.yaml" <<YAML
apiVersion: autoglm/v1
name: gemma3-trace
model:
  ref: $MODEL
backend:
  type: native
  threads: 1
  maxSeqs: 4
  maxBatchedTokens: 16
  kvCacheMB: 64
  contextLength: 512
replicas: 1
YAML
# Short batch delay and export timeout: spans arrive within a second, a failed export gives up fast.
bg_start "$WORK/up.log" env OTEL_BSP_SCHEDULE_DELAY=200 OTEL_BSP_EXPORT_TIMEOUT=2000 \
  "$AUTOGLM" up "$WORK/fleet.yaml" --host 127.0.0.1 --port "$PORT" --served-model-name gemma3-test \
  --watch-interval 0 --otlp-endpoint "http://127.0.0.1:$CPORT" --trace-sample-ratio 1.0
UP=$BG_PID
wait_ready "http://127.0.0.1:$PORT/readyz" 1500 || fail "the fleet is not ready after 300 s"

TRACE_ID="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
CALLER_SPAN="$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
# (The prompt is longer than maxBatchedTokens, so the prefill takes several chunks.)
code="$(curl -s -o "$WORK/answer.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -H "traceparent: 00-$TRACE_ID-$CALLER_SPAN-01" -H "tracestate: caller=test" \
  -d '{"model":"gemma3-test","messages":[{"role":"user","content":"Write one short sentence about the sea, the wind and the ships that sail between the islands."}],"max_tokens":8}' \
  "http://127.0.0.1:$PORT/v1/chat/completions")"
[ "$code" = 200 ] || fail "the traced request answered HTTP $code: $(cat "$WORK/answer.json")"
grep -q "\"trace_id\":\"$TRACE_ID\"\|trace_id=$TRACE_ID" "$WORK/up.log" || fail "the request's log line does not carry trace_id $TRACE_ID"

# Wait for the replica's decode span and the gateway's server span, then check the tree.
for _ in $(seq 1 100); do
  if grep -q "\"name\": \"decode\"" "$SPANS" 2>/dev/null && grep -q "\"service\": \"autoglm-up\"" "$SPANS" 2>/dev/null; then break; fi
  sleep 0.2
done
sleep 1
"$OTLP_PY" - "$SPANS" "$TRACE_ID" "$CALLER_SPAN" <<'PY' || fail "the trace is not what it should be (spans: $SPANS)"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
trace, caller = sys.argv[2], sys.argv[3]
SERVER, CLIENT = 2, 3
chat = [s for s in spans if s["name"] == "POST /v1/chat/completions"]
traces = {s["trace_id"] for s in chat}
assert traces == {trace}, f"chat spans in traces {traces}, want only the caller's {trace}: {chat}"
mine = [s for s in spans if s["trace_id"] == trace]
def one(pred, what):
    found = [s for s in mine if pred(s)]
    assert len(found) == 1, f"{len(found)} spans for {what}: {found}"
    return found[0]
gw = one(lambda s: s["service"] == "autoglm-up" and s["kind"] == SERVER, "the gateway's server span")
assert gw["parent_span_id"] == caller, f"gateway span's parent {gw['parent_span_id']}, want the caller's {caller}"
fwd = one(lambda s: s["service"] == "autoglm-up" and s["kind"] == CLIENT, "the gateway's forward span")
assert fwd["parent_span_id"] == gw["span_id"], "forward is not a child of the gateway's span"
rep = one(lambda s: s["service"] == "autoglm-serve" and s["kind"] == SERVER, "the replica's server span")
assert rep["parent_span_id"] == fwd["span_id"], "the replica's span is not a child of the gateway's forward span"
for s in (gw, rep):
    a = s["attributes"]
    assert a.get("gen_ai.request.model") == "gemma3-test", f"{s['service']}: model attribute {a}"
    assert a.get("http.response.status_code") == 200, f"{s['service']}: status attribute {a}"
    assert a.get("gen_ai.usage.input_tokens", 0) > 16, f"{s['service']}: prompt tokens {a}"
    assert 1 <= a.get("gen_ai.usage.output_tokens", 0) <= 8, f"{s['service']}: completion tokens {a}"
children = [s for s in mine if s["parent_span_id"] == rep["span_id"]]
names = sorted(s["name"] for s in children)
assert names.count("queue") == 1 and names.count("decode") == 1, f"replica children {names}"
prefill = [s for s in children if s["name"] == "prefill"]
assert len(prefill) >= 2, f"{len(prefill)} prefill chunk spans, want ≥ 2 (prompt > maxBatchedTokens)"
assert sum(s["attributes"]["autoglm.prefill.tokens"] for s in prefill) == rep["attributes"]["gen_ai.usage.input_tokens"], "prefill chunks do not add up to the prompt"
decode = next(s for s in children if s["name"] == "decode")
assert decode["attributes"]["autoglm.completion_tokens"] == rep["attributes"]["gen_ai.usage.output_tokens"], "decode token count"
queue = next(s for s in children if s["name"] == "queue")
assert queue["end_ns"] <= prefill[0]["start_ns"] + 1000 and prefill[-1]["end_ns"] <= decode["end_ns"], "phase order"
for s in children:
    assert rep["start_ns"] <= s["start_ns"] <= s["end_ns"] <= rep["end_ns"], f"{s['name']} outside the request span"
print(f"ok: one trace {trace}: caller → gateway → forward → replica → {names}")
PY

# 2. The collector goes away: requests still succeed, the drop counter rises.
stop_pid "$COLLECTOR_PID"
for i in 1 2 3; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"gemma3-test","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}' \
    "http://127.0.0.1:$PORT/v1/chat/completions")"
  [ "$code" = 200 ] || fail "with the collector down, request $i answered HTTP $code"
done
dropped=0
for _ in $(seq 1 60); do
  dropped="$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^autoglm:trace_spans_dropped_total/ {print $2}' | head -1)"
  [ -n "$dropped" ] && awk "BEGIN{exit !($dropped > 0)}" && break
  sleep 0.5
done
[ -n "$dropped" ] && awk "BEGIN{exit !($dropped > 0)}" || fail "autoglm:trace_spans_dropped_total is '$dropped' with the collector down, want > 0"
echo "ok: collector down: requests answered 200, autoglm:trace_spans_dropped_total = $dropped"
kill -TERM "$UP"; wait "$UP" || fail "autoglm up did not drain and exit 0 on SIGTERM"
BENCH_PIDS=()
echo "PASS: tracing"
