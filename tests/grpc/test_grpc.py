"""The gRPC API of `autoglm serve` through the real Python grpcio client (stubs generated from
the repo's proto/ at test time), with the HTTP API of the same process as the oracle.

Usage: test_grpc.py MODE  (env: AUTOGLM_GRPC=host:port, AUTOGLM_HTTP=http://host:port,
AUTOGLM_API_KEY, AUTOGLM_MODEL, AUTOGLM_STUBS=dir with the generated modules, AUTOGLM_PID for drain)
  main   streaming, cancellation frees KV, auth, errors, gRPC == HTTP (greedy), Tokenize, Models,
         health SERVING, reflection
  queue  RESOURCE_EXHAUSTED (with retry info) past the queue
  drain  SIGTERM with a stream in flight: health NOT_SERVING, new work UNAVAILABLE, the stream ends
"""
import json
import os
import signal
import sys
import threading
import time
import urllib.request

import grpc  # noqa: E402

STUBS = os.environ["AUTOGLM_STUBS"]
sys.path.append(STUBS)
# proto/grpc/... generates modules under a `grpc` package: the grpcio package's path takes them in.
grpc.__path__.append(os.path.join(STUBS, "grpc"))
from autoglm.v1 import autoglm_pb2 as pb, autoglm_pb2_grpc as pbg  # noqa: E402
from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc.reflection.v1 import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

TARGET = os.environ["AUTOGLM_GRPC"]
HTTP = os.environ["AUTOGLM_HTTP"]
KEY = os.environ.get("AUTOGLM_API_KEY", "")
MODEL = os.environ["AUTOGLM_MODEL"]
AUTH = [("authorization", f"Bearer {KEY}")]
COUNTING = "Count from 1 to 200: 1, 2, 3, 4,"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def http(path, body=None):
    req = urllib.request.Request(HTTP + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read().decode()
    return data if path == "/metrics" else json.loads(data)


def metric(name):
    for line in http("/metrics").splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def code_of(fn):
    try:
        fn()
        return None, None
    except grpc.RpcError as e:
        return e.code(), e


def params(**kw):
    return pb.GenerationParams(**kw)


def main(channel):
    api = pbg.AutoGLMStub(channel)
    health = health_pb2_grpc.HealthStub(channel)

    # (e, ready half) health answers without a key, SERVING when ready.
    st = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    check(st == health_pb2.HealthCheckResponse.SERVING, f"health SERVING when ready (got {st})")
    st = health.Check(health_pb2.HealthCheckRequest(service="autoglm.v1.AutoGLM"), timeout=10).status
    check(st == health_pb2.HealthCheckResponse.SERVING, "health of autoglm.v1.AutoGLM SERVING")
    c, _ = code_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND, f"health of an unknown service: NOT_FOUND (got {c})")
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    first = next(watch)
    check(first.status == health_pb2.HealthCheckResponse.SERVING, "health Watch sends SERVING first")
    watch.cancel()

    # (c) auth: the HTTP key(s), in `authorization` metadata.
    c, _ = code_of(lambda: api.Models(pb.ModelsRequest(), timeout=10))
    check(c == grpc.StatusCode.UNAUTHENTICATED, f"no token: UNAUTHENTICATED (got {c})")
    c, _ = code_of(lambda: list(api.Generate(pb.GenerateRequest(prompt="Hi", params=params(max_tokens=2)),
                                             metadata=[("authorization", "Bearer wrong")], timeout=10)))
    check(c == grpc.StatusCode.UNAUTHENTICATED, f"wrong token on a stream: UNAUTHENTICATED (got {c})")

    # Models == /v1/models
    models = api.Models(pb.ModelsRequest(), metadata=AUTH, timeout=10)
    want = [(m["id"], m["max_model_len"]) for m in http("/v1/models")["data"]]
    check([(m.id, m.max_model_len) for m in models.models] == want, f"Models equals /v1/models ({want})")

    # (a) a streamed generation: several messages, the last with finish reason and usage.
    msgs = list(api.Generate(pb.GenerateRequest(prompt=COUNTING, params=params(max_tokens=12, temperature=0)),
                             metadata=AUTH, timeout=120))
    check(len(msgs) >= 3, f"Generate streamed {len(msgs)} messages")
    last = msgs[-1]
    check(last.finish_reason in ("stop", "length") and last.usage.completion_tokens > 0,
          f"last message: finish_reason={last.finish_reason!r}, usage={last.usage.prompt_tokens}/{last.usage.completion_tokens}")
    check(all(m.finish_reason == "" for m in msgs[:-1]), "only the last message has a finish reason")

    # (f) gRPC == HTTP for the same greedy request (text, token count, finish reason).
    for prompt in ["The capital of France is", COUNTING]:
        g = list(api.Generate(pb.GenerateRequest(prompt=prompt, params=params(max_tokens=16, temperature=0)),
                              metadata=AUTH, timeout=120))
        h = http("/v1/completions", {"model": MODEL, "prompt": prompt, "max_tokens": 16, "temperature": 0})
        gtext = "".join(m.text for m in g)
        gids = [i for m in g for i in m.token_ids]
        check(gtext == h["choices"][0]["text"], f"greedy text over gRPC == HTTP: {gtext!r}")
        check(len(gids) == h["usage"]["completion_tokens"] == g[-1].usage.completion_tokens,
              f"token count over gRPC ({len(gids)} ids) == HTTP usage ({h['usage']['completion_tokens']})")
        check(g[-1].usage.prompt_tokens == h["usage"]["prompt_tokens"], "prompt tokens over gRPC == HTTP")
        check(g[-1].finish_reason == h["choices"][0]["finish_reason"], f"finish reason == HTTP ({g[-1].finish_reason})")
        # The ids themselves: fed back to HTTP as a prompt with echo, they spell the same text.
        e = http("/v1/completions", {"model": MODEL, "prompt": gids, "max_tokens": 0, "echo": True})
        check(e["choices"][0]["text"] == gtext, "the streamed token ids decode (over HTTP) to the streamed text")
    # Chat == /v1/chat/completions (the model's chat template on both).
    messages = [{"role": "user", "content": "Say hello in French."}]
    g = list(api.Chat(pb.ChatRequest(messages=[pb.ChatMessage(**m) for m in messages],
                                     params=params(max_tokens=12, temperature=0)), metadata=AUTH, timeout=120))
    h = http("/v1/chat/completions", {"model": MODEL, "messages": messages, "max_tokens": 12, "temperature": 0})
    check("".join(m.text for m in g) == h["choices"][0]["message"]["content"],
          f"greedy Chat == /v1/chat/completions: {''.join(m.text for m in g)!r}")
    check(g[-1].usage.prompt_tokens == h["usage"]["prompt_tokens"], "Chat prompt tokens == HTTP (same template)")

    # (g) Tokenize: HTTP has no tokenize route; the oracle is HTTP's own prompt handling: its
    # prompt token count for the text, and its decoding of the ids (echo) back to the text.
    for text in ["Hello, world!", "Bonjour à tous — 1234 🙂"]:
        ids = list(api.Tokenize(pb.TokenizeRequest(text=text, add_special=True), metadata=AUTH, timeout=10).token_ids)
        bare = list(api.Tokenize(pb.TokenizeRequest(text=text), metadata=AUTH, timeout=10).token_ids)
        h = http("/v1/completions", {"model": MODEL, "prompt": text, "max_tokens": 0})
        check(len(ids) == h["usage"]["prompt_tokens"], f"Tokenize({text!r}): {len(ids)} ids == HTTP prompt_tokens")
        e = http("/v1/completions", {"model": MODEL, "prompt": ids, "max_tokens": 0, "echo": True})
        check(e["choices"][0]["text"] == text, "Tokenize ids decode (over HTTP) to the text")
        check(ids[1:] == bare and len(ids) == len(bare) + 1, "add_special adds one BOS in front")

    # Errors: the HTTP validation, as gRPC codes.
    c, e = code_of(lambda: list(api.Generate(pb.GenerateRequest(prompt="Hi", params=params(temperature=5)),
                                             metadata=AUTH, timeout=10)))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, f"temperature 5: INVALID_ARGUMENT ({e and e.details()})")
    c, e = code_of(lambda: list(api.Chat(pb.ChatRequest(messages=[pb.ChatMessage(role="robot", content="x")]),
                                         metadata=AUTH, timeout=10)))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, f"role robot: INVALID_ARGUMENT ({e and e.details()})")
    c, e = code_of(lambda: list(api.Generate(pb.GenerateRequest(prompt="Hi", params=params(model="nope")),
                                             metadata=AUTH, timeout=10)))
    check(c == grpc.StatusCode.NOT_FOUND, f"unknown model: NOT_FOUND ({e and e.details()})")

    # (b) cancelling mid-stream cancels the sequence and frees its KV.
    call = api.Generate(pb.GenerateRequest(prompt=COUNTING, params=params(max_tokens=200, temperature=0)),
                        metadata=AUTH, timeout=300)
    got = [next(call) for _ in range(3)]
    kv_during = metric("autoglm:kv_cache_usage_ratio")
    check(kv_during is not None and kv_during > 0, f"KV in use while streaming: {kv_during}")
    call.cancel()
    kv = running = None
    for _ in range(300):
        kv, running = metric("autoglm:kv_cache_usage_ratio"), metric("autoglm:num_requests_running")
        if kv == 0 and running == 0:
            break
        time.sleep(0.1)
    check(kv == 0 and running == 0, f"after cancel ({len(got)} messages read): KV usage {kv}, running {running}")
    text = http("/metrics")
    check(any(l.startswith("autoglm:request_failure_total{") and 'reason="cancelled"' in l and not l.endswith(" 0")
              for l in text.splitlines()), "the cancel counts in request_failure_total{reason=cancelled} (HTTP's series)")

    # (h) reflection (v1): the services, and a file by symbol that describes the API.
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="autoglm.v1.AutoGLM")]
    answers = list(refl.ServerReflectionInfo(iter(reqs), timeout=10))
    names = sorted(s.name for s in answers[0].list_services_response.service)
    check(names == ["autoglm.v1.AutoGLM", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"],
          f"reflection lists the services: {names}")
    fd = descriptor_pb2.FileDescriptorProto.FromString(answers[1].file_descriptor_response.file_descriptor_proto[0])
    methods = [m.name for s in fd.service for m in s.method]
    check(fd.name == "autoglm/v1/autoglm.proto" and methods == ["Generate", "Chat", "Tokenize", "Models"],
          f"reflection: file of autoglm.v1.AutoGLM is {fd.name} with {methods}")


def queue(channel):
    """Server started with --max-seqs 1 --max-queue 1: 6 concurrent streams, some refused."""
    api = pbg.AutoGLMStub(channel)
    results = [None] * 6

    def run(i):
        try:
            results[i] = ("ok", len(list(api.Generate(
                pb.GenerateRequest(prompt=COUNTING, params=params(max_tokens=40, temperature=0)), metadata=AUTH, timeout=300))))
        except grpc.RpcError as e:
            results[i] = (e.code(), dict(e.trailing_metadata() or ()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in results if r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = [r for r in results if r[0] == "ok"]
    check(len(refused) >= 1 and len(served) >= 1, f"past the queue: {len(refused)} RESOURCE_EXHAUSTED, {len(served)} served")
    if refused:
        md = refused[0][1]
        check(md.get("retry-after") == "1", f"RESOURCE_EXHAUSTED carries retry-after: {md.get('retry-after')}")
        details = md.get("grpc-status-details-bin", b"")
        check(b"type.googleapis.com/google.rpc.RetryInfo" in details, "and google.rpc.RetryInfo in grpc-status-details-bin")
    text = http("/metrics")
    check(any('reason="queue_full"' in l and l.startswith("autoglm:request_failure_total{") for l in text.splitlines()),
          "refusals count in request_failure_total{reason=queue_full}")


def drain(channel):
    """SIGTERM with a stream in flight: NOT_SERVING and UNAVAILABLE while it finishes."""
    api = pbg.AutoGLMStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    call = api.Generate(pb.GenerateRequest(prompt=COUNTING, params=params(max_tokens=40, temperature=0)),
                        metadata=AUTH, timeout=300)
    msgs = [next(call)]
    os.kill(int(os.environ["AUTOGLM_PID"]), signal.SIGTERM)
    st = None
    for _ in range(100):
        st = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        if st == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        time.sleep(0.05)
    check(st == health_pb2.HealthCheckResponse.NOT_SERVING, f"health NOT_SERVING while draining (got {st})")
    c, e = code_of(lambda: list(api.Generate(pb.GenerateRequest(prompt="Hi", params=params(max_tokens=2)),
                                             metadata=AUTH, timeout=10)))
    check(c == grpc.StatusCode.UNAVAILABLE, f"a new stream while draining: UNAVAILABLE ({e and e.details()})")
    msgs += list(call)
    check(msgs[-1].finish_reason in ("stop", "length"), f"the in-flight stream finished: {len(msgs)} messages, {msgs[-1].finish_reason!r}")


if __name__ == "__main__":
    mode = sys.argv[1]
    with grpc.insecure_channel(TARGET) as ch:
        grpc.channel_ready_future(ch).result(timeout=60)
        {"main": main, "queue": queue, "drain": drain}[mode](ch)
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
