#!/usr/bin/env python3
"""Measures how far llama.cpp moves from its own gemma3 goldens when only the order of its float
arithmetic changes: the same file, settings and roundings as the goldens (llama-cpp-python 0.3.36,
CPU, 2 threads, n_ctx 2048, flash attention off, F16 KV cache) except that the prompt is evaluated
one token at a time (n_batch = n_ubatch = 1), which swaps llama.cpp's batched matrix kernels for
its one-row kernels and so changes summation order only. Gemma 3 270M amplifies such differences
through its 8-bit activation quantization; this is the yardstick for how close any other engine
can be expected to come. For each golden prompt it records the first-step top-5 logit deviations
and, for a greedy run that feeds back its own argmax, the first step where it departs from the
golden ids and the golden's top-2 gap there.
Writes Tests/ModelsTests/Fixtures/gemma3-order-spread.json. Run with the llama-cpp-python venv:
  ~/.cache/autoglm/peers/llama-venv/bin/python scripts/measure-gemma-order-spread.py MODEL.gguf"""
import json, os, sys
import numpy as np
import llama_cpp as L

here = os.path.join(os.path.dirname(__file__), "..", "Tests", "ModelsTests", "Fixtures")
refs = json.load(open(os.path.join(here, "gemma3-greedy.json")))
llm = L.Llama(model_path=sys.argv[1], n_ctx=2048, n_batch=1, n_ubatch=1, n_threads=2, flash_attn=False,
              verbose=False)


def last_logits():
    return np.ctypeslib.as_array(L.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).copy()


out = []
for e in refs:
    llm.reset()
    llm.eval(e["prompt_ids"])
    logits = last_logits()
    spread = [abs(float(logits[int(i)]) - v) for i, v in e["top5_first_step"]]
    departed = None
    for step, want in enumerate(e["greedy_ids"]):
        tok = int(np.argmax(logits))
        if tok != want:
            departed = dict(step=step, got=tok, golden=want, golden_gap=e["top2_gaps"][step])
            break
        if step + 1 < len(e["greedy_ids"]):
            llm.eval([tok])
            logits = last_logits()
    out.append(dict(name=e["name"], spread=spread, departed=departed))
    print(e["name"], "max spread %.3f" % max(spread), "departed", departed, file=sys.stderr)
json.dump(dict(generator="scripts/measure-gemma-order-spread.py", llama_cpp_python="0.3.36",
               settings="as the goldens, but n_batch = n_ubatch = 1", entries=out),
          open(os.path.join(here, "gemma3-order-spread.json"), "w"), indent=1)
