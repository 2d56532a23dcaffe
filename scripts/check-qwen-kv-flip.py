#!/usr/bin/env python3
"""Shows that llama.cpp itself, with an F32 instead of F16 KV cache, takes the other branch at
step 31 of the qwen2 chinese_raw golden continuation (reference gap 0.084), as we do.
Run with the llama-cpp-python venv from the repo root."""
import json, numpy as np
import llama_cpp as L
d=json.load(open('Tests/ModelsTests/Fixtures/qwen2-greedy.json'))
e=[x for x in d if x['name']=='chinese_raw'][0]
llm=L.Llama(model_path='/root/.cache/autoglm/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf',n_ctx=512,n_threads=2,verbose=False,type_k=0,type_v=0,flash_attn=False)
llm.reset(); llm.eval(e['prompt_ids']); out=[]
for i in range(32):
    lg=np.ctypeslib.as_array(L.llama_get_logits_ith(llm._ctx.ctx,-1),shape=(llm.n_vocab(),))
    t=int(np.argmax(lg)); out.append(t); llm.eval([t])
print('f32kv', out[-3:], 'ref', e['greedy_ids'][-3:], 'same' if out==e['greedy_ids'] else 'differs at %d'%next(i for i in range(32) if out[i]!=e['greedy_ids'][i]))
