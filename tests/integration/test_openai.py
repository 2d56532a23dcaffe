"""Integration test of `autoglm serve` with the official openai Python client.

Run through scripts/test-openai-client.sh (it starts the server and sets the env vars).
Token counts are small: the test must also pass with the slow reference kernels.
"""
import concurrent.futures
import json
import os
import sys
import urllib.request

import openai

BASE = os.environ["AUTOGLM_BASE_URL"]
KEY = os.environ.get("AUTOGLM_API_KEY", "none")
MODEL = os.environ.get("AUTOGLM_MODEL", "gemma3-test")
BACKEND = os.environ.get("AUTOGLM_BACKEND", "native")
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=600)
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(name)


def test_completion():
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0)
    check("completion object", r.object == "text_completion", r)
    check("completion text", isinstance(r.choices[0].text, str) and r.choices[0].finish_reason in ("stop", "length"), r)
    check("completion usage", r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
    return r.choices[0].text


def test_completion_stream(expected):
    chunks = list(client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4,
                                            temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    check("stream text equals non-stream", text == expected, (text, expected))
    check("stream include_usage", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, chunks[-1])
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check("stream finish_reason", len(finals) == 1, finals)


def test_chat():
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4, temperature=0)
    check("chat object", r.object == "chat.completion" and r.choices[0].message.role == "assistant", r)
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}],
                                                 max_tokens=4, temperature=0, stream=True))
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    check("chat stream equals non-stream", text == (r.choices[0].message.content or ""), (text, r.choices[0].message.content))


def test_stop(full):
    if len(full) < 3:
        check("stop (skipped: short text)", True)
        return
    stop = full[1:3]
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0, stop=[stop])
    check("stop string cut", r.choices[0].text == full[: full.index(stop)] and r.choices[0].finish_reason == "stop",
          (r.choices[0].text, stop, full))


def test_n_logprobs_seed():
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=3, temperature=1.0, seed=7, n=2, logprobs=2)
    check("n choices", sorted(c.index for c in r.choices) == [0, 1], r.choices)
    lp = r.choices[0].logprobs
    check("logprobs", lp is not None and len(lp.tokens) == len(lp.token_logprobs) and all(v <= 0 for v in lp.token_logprobs), lp)
    r2 = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=3, temperature=1.0, seed=7, n=2)
    check("seed reproducible", [c.text for c in r.choices] == [c.text for c in r2.choices], (r.choices, r2.choices))
    c = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       temperature=0, logprobs=True, top_logprobs=2)
    check("chat logprobs", c.choices[0].logprobs is not None and len(c.choices[0].logprobs.content) >= 1, c.choices[0])


def test_concurrent_equals_alone():
    prompts = ["1, 2, 3,", "The sky is", "Hello, my name is"]
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=4, temperature=0).choices[0].text for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as ex:
        together = list(ex.map(lambda p: client.completions.create(model=MODEL, prompt=p, max_tokens=4, temperature=0).choices[0].text, prompts))
    check("concurrent greedy equals alone", together == alone, (together, alone))


def test_errors():
    try:
        client.completions.create(model=MODEL, prompt="hi", max_tokens=-5)
        check("400 on negative max_tokens", False, "no error")
    except openai.BadRequestError as e:
        check("400 on negative max_tokens", e.status_code == 400)
    bad = openai.OpenAI(base_url=BASE, api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        check("401 on wrong key", False, "no error")
    except openai.AuthenticationError:
        check("401 on wrong key", True)


def test_prefix_cache():
    """A conversation sent again reuses its prompt's KV: usage.prompt_tokens_details.cached_tokens
    (the OpenAI field) counts it. Three identical requests, so behind a 2-replica fleet at least
    two land on the same replica whatever the balancing."""
    system = ("You are a careful assistant. Answer briefly and exactly. The context below lists facts about the "
              "solar system and the planets in order from the sun, with their moons, masses and orbits.")
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Which planet is third?"}]
    usages = [client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=2, temperature=0).usage for _ in range(3)]
    cached = [(u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None) for u in usages]
    check("prefix cache: a repeated prompt is served from the cache", any((c or 0) > 0 for c in cached[1:]), cached)
    check("prefix cache: cached_tokens within prompt_tokens", all(c is None or 0 <= c <= u.prompt_tokens for c, u in zip(cached, usages)),
          (cached, [u.prompt_tokens for u in usages]))
    if BACKEND == "native":
        m = metrics()
        q, h = gauge(m, "autoglm:prefix_cache_queries_total"), gauge(m, "autoglm:prefix_cache_hits_total")
        check("prefix cache metrics", q is not None and h is not None and 0 < h <= q, (q, h))


def metrics():
    with urllib.request.urlopen(BASE.rsplit("/v1", 1)[0] + "/metrics") as f:
        return f.read().decode()


def gauge(m, name):
    line = [l for l in m.splitlines() if l.startswith(name + "{") or l.startswith(name + " ")]
    return float(line[0].split()[-1]) if line else None


def test_no_leaked_kv():
    """Once every request has finished, nothing is left running or holding KV blocks. A backend
    that does not report KV usage (llama.cpp: its slots keep their prompt cache by design) is
    checked on its running and waiting counts instead."""
    import time
    for _ in range(50):
        m = metrics()
        kv = gauge(m, "autoglm:kv_cache_usage_ratio")
        idle = [gauge(m, "autoglm:num_requests_running"), gauge(m, "autoglm:num_requests_waiting")]
        if (kv == 0.0 if kv is not None else idle == [0.0, 0.0]):
            break
        time.sleep(0.1)
    if kv is not None:
        check("no leaked KV blocks", kv == 0.0, kv)
    else:
        check("nothing left running (backend reports no KV usage)", idle == [0.0, 0.0], idle)
    check("success counter", 'autoglm:request_success_total{model_name="gemma3-test",finish_reason="length"}' in m or "request_success_total" in m)


if __name__ == "__main__":
    models = client.models.list()
    check("models list", any(m.id == MODEL for m in models.data), models)
    full = test_completion()
    test_completion_stream(full)
    test_chat()
    test_stop(full)
    test_n_logprobs_seed()
    test_concurrent_equals_alone()
    test_errors()
    test_prefix_cache()
    test_no_leaked_kv()
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)
