#!/usr/bin/env python3
"""Measure llama.cpp (through llama-cpp-python) prefill and decode speed on a GGUF, the same
way `autoglm bench` measures ours: a prompt of N tokens evaluated in one batch, then N greedy
decode steps one token at a time. Prints one JSON object."""
import argparse, ctypes, json, resource, statistics, time

import numpy as np
import llama_cpp

TEXT = "The quick brown fox jumps over the lazy dog while the committee reviews the annual budget in detail. "

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    llm = llama_cpp.Llama(model_path=a.model, n_threads=a.threads, n_threads_batch=a.threads,
                          n_ctx=a.prompt_tokens + a.gen_tokens + 16, n_batch=512, verbose=False)
    ids = llm.tokenize((TEXT * (a.prompt_tokens // 8 + 2)).encode(), add_bos=True)[: a.prompt_tokens]
    n_vocab = llm.n_vocab()
    def last_logits():
        p = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(p, shape=(n_vocab,))
    # warm-up
    llm.reset(); llm.eval(ids[:8]); llm.eval([int(np.argmax(last_logits()))])
    pf, dc = [], []
    for _ in range(a.repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        tok = int(np.argmax(last_logits()))
        t1 = time.perf_counter()
        for _ in range(a.gen_tokens - 1):
            llm.eval([tok])
            tok = int(np.argmax(last_logits()))
        t2 = time.perf_counter()
        pf.append(len(ids) / (t1 - t0))
        dc.append((a.gen_tokens - 1) / (t2 - t1))
    print(json.dumps({
        "engine": "llama.cpp " + llama_cpp.__version__, "threads": a.threads, "prompt_tokens": len(ids),
        "gen_tokens": a.gen_tokens, "prefill_tok_s": statistics.median(pf), "decode_tok_s": statistics.median(dc),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))

if __name__ == "__main__":
    main()
