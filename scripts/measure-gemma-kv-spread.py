#!/usr/bin/env python3
"""Measures how much llama.cpp's own first-step logits move on the gemma3 golden prompts when
only its KV-cache precision changes (F16, the default the golden file used, vs F32). Gemma 3 270M
amplifies rounding differences; this spread is the yardstick GoldenForwardTests uses for it.
Writes Tests/ModelsTests/Fixtures/gemma3-kv-spread.json. Run with the llama-cpp-python venv:
  ~/.cache/autoglm/peers/llama-venv/bin/python scripts/measure-gemma-kv-spread.py MODEL.gguf"""
import json, os, sys
import numpy as np
import llama_cpp as L

here = os.path.join(os.path.dirname(__file__), "..", "Tests", "ModelsTests", "Fixtures")
refs = json.load(open(os.path.join(here, "gemma3-greedy.json")))
llm = L.Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=2, verbose=False, type_k=0, type_v=0, flash_attn=False)
out = []
for e in refs:
    llm.reset()
    llm.eval(e["prompt_ids"])
    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
    f32 = {int(i): float(logits[int(i)]) for i, _ in e["top5_first_step"]}
    out.append(dict(name=e["name"], top5_first_step_f32_kv=[[i, f32[int(i)]] for i, _ in e["top5_first_step"]],
                    spread=[abs(f32[int(i)] - v) for i, v in e["top5_first_step"]]))
json.dump(dict(generator="scripts/measure-gemma-kv-spread.py", llama_cpp_python="0.3.36", entries=out),
          open(os.path.join(here, "gemma3-kv-spread.json"), "w"), indent=1)
