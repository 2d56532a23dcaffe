#!/usr/bin/env python3
"""Builds the tiny random-weight reference models and llama.cpp's logits for them.

For each architecture (llama, qwen3, glm4, chatglm) this writes, with the `gguf` package's
writer and the tensor names / metadata keys llama.cpp's converter uses:
  Tests/ModelsTests/Fixtures/reference/ARCH-f32.gguf   every matrix in F32
  Tests/ModelsTests/Fixtures/reference/ARCH-q.gguf     attention in Q8_0, MLP in Q4_0
then runs llama.cpp (llama-cpp-python 0.3.36, CPU) over fixed token ids with every position's
logits kept, flash attention off and an F32 KV cache (both set explicitly below), and stores them as ARCH-*.logits (float32, little endian, positions ×
vocabulary), plus reference.json describing it all. The Swift tests compare against these.

reference.json also records each model's sha256: the logits belong to those exact bytes.

Run with a Python that has llama-cpp-python and the pinned gguf/numpy of
scripts/fixture-requirements.txt, e.g. the venv that bench/compare-llamacpp.sh builds:
  ~/.cache/autoglm/peers/llama-venv/bin/pip install -r scripts/fixture-requirements.txt
  ~/.cache/autoglm/peers/llama-venv/bin/python scripts/make-reference-models.py

The .gguf files are not in git. `--gguf-only` writes just them (no llama_cpp needed, the
*.logits and reference.json are left alone) and installs each only if its sha256 is the one
reference.json records (scripts/fixture_digests.py); scripts/make-test-fixtures.sh runs it:
  ~/.cache/autoglm/fixtures-venv/bin/python scripts/make-reference-models.py --gguf-only
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ModelsTests", "Fixtures", "reference")
POSITIONS = 48
D, FF, HEADS, KV_HEADS, LAYERS = 64, 32, 4, 2, 2
SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<eos>"]


def byte_tokens():
    """The 256 byte-level BPE symbols (GPT-2's printable mapping of bytes)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def vocabulary():
    toks = byte_tokens()
    merges = ["Ġ t", "h e", "Ġt he", "i n"]
    for m in merges:
        toks.append(m.replace(" ", ""))
    types = [1] * len(toks)
    for s in SPECIALS:
        toks.append(s)
        types.append(3)
    return toks, types, merges


def add_tokenizer(w, pre):
    toks, types, merges = vocabulary()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(toks.index("<|endoftext|>"))
    w.add_eos_token_id(toks.index("<eos>"))
    w.add_add_bos_token(False)
    return len(toks)


def spec(arch):
    """Per-architecture shape facts and naming, as llama.cpp's converter writes them."""
    head = D // HEADS
    s = dict(head=head, rot=head, qkv_bias=False, qk_norm=False, fused_qkv=False, fused_up=False,
             post_norms=False, tied=False, pre="default", base=10000.0)
    if arch == "llama":
        s.update(tied=True, pre="llama-bpe", base=500000.0, freq_factors=True)
    elif arch == "qwen3":
        s.update(head=24, rot=24, qk_norm=True, pre="qwen2", base=1000000.0)
    elif arch == "glm4":
        s.update(rot=head // 2, qkv_bias=True, fused_up=True, post_norms=True, pre="glm4")
    elif arch == "chatglm":
        s.update(rot=head // 2, qkv_bias=True, fused_qkv=True, fused_up=True, pre="chatglm-bpe")
    return s


def model_path(arch, quantized):
    return os.path.join(OUT, f"{arch}-{'q' if quantized else 'f32'}.gguf")


def build(arch, quantized, rng, path):
    """Writes the model to `path`; returns its vocabulary size. Draws from `rng`, so the
    models must be built in main()'s order for their weights to be the recorded ones."""
    s = spec(arch)
    head, kv = s["head"], KV_HEADS * s["head"]
    qdim = HEADS * head
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-{arch}-reference")
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(s["base"])
    w.add_rope_dimension_count(s["rot"])
    if arch == "qwen3":
        w.add_key_length(head)
        w.add_value_length(head)
    vocab = add_tokenizer(w, s["pre"])

    def mat(rows, cols, std=0.25):
        return (rng.standard_normal((rows, cols)) * std / np.sqrt(cols / 16)).astype(np.float32)

    def vec(n, base=1.0, std=0.2):
        return (base + rng.standard_normal(n) * std).astype(np.float32)

    def add(name, arr, qtype):
        if quantized and arr.ndim == 2 and qtype is not None:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, arr)

    add("token_embd.weight", mat(vocab, D, 1.0), Q.Q8_0)
    if s.get("freq_factors"):
        w.add_tensor("rope_freqs.weight", np.array([1, 1, 1, 2, 4, 8, 8, 8][: s["rot"] // 2], dtype=np.float32))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", vec(D))
        if s["fused_qkv"]:
            add(p + "attn_qkv.weight", mat(qdim + 2 * kv, D), Q.Q8_0)
            w.add_tensor(p + "attn_qkv.bias", vec(qdim + 2 * kv, 0.0, 0.3))
        else:
            add(p + "attn_q.weight", mat(qdim, D), Q.Q8_0)
            add(p + "attn_k.weight", mat(kv, D), Q.Q8_0)
            add(p + "attn_v.weight", mat(kv, D), Q.Q8_0)
            if s["qkv_bias"]:
                w.add_tensor(p + "attn_q.bias", vec(qdim, 0.0, 0.3))
                w.add_tensor(p + "attn_k.bias", vec(kv, 0.0, 0.3))
                w.add_tensor(p + "attn_v.bias", vec(kv, 0.0, 0.3))
        if s["qk_norm"]:
            w.add_tensor(p + "attn_q_norm.weight", vec(head))
            w.add_tensor(p + "attn_k_norm.weight", vec(head))
        add(p + "attn_output.weight", mat(D, qdim), Q.Q8_0)
        if s["post_norms"]:
            w.add_tensor(p + "post_attention_norm.weight", vec(D))
        w.add_tensor(p + "ffn_norm.weight", vec(D))
        if s["fused_up"]:
            add(p + "ffn_up.weight", mat(2 * FF, D), Q.Q4_0)
        else:
            add(p + "ffn_gate.weight", mat(FF, D), Q.Q4_0)
            add(p + "ffn_up.weight", mat(FF, D), Q.Q4_0)
        add(p + "ffn_down.weight", mat(D, FF), Q.Q4_0)
        if s["post_norms"]:
            w.add_tensor(p + "post_ffw_norm.weight", vec(D))
    w.add_tensor("output_norm.weight", vec(D))
    if not s["tied"]:
        add("output.weight", mat(vocab, D), Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return vocab


def llama_logits(path, ids):
    from llama_cpp import Llama
    # flash_attn=False: llama.cpp's non-flash attention path (llama-cpp-python's default, so also
    # what the real-model goldens used). type 0 = GGML_TYPE_F32 for the K and V caches, so the
    # attention runs in F32 and the quantized variants differ from F32 only by the weights and
    # the 8-bit activation quantization of the matrix products.
    llm = Llama(model_path=path, n_ctx=128, n_batch=128, n_ubatch=128, logits_all=True, n_threads=2,
                flash_attn=False, type_k=0, type_v=0, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


ARCHITECTURES = ["llama", "qwen3", "glm4", "chatglm"]


def write_gguf_only():
    """Rewrites every model (the shared rng needs all of them built in order) and installs
    each whose bytes are the ones reference.json's logits were made for."""
    import fixture_digests
    rng = np.random.default_rng(20261201)
    for arch in ARCHITECTURES:
        for quantized in [False, True]:
            path = model_path(arch, quantized)
            tmp = path + ".tmp"
            build(arch, quantized, rng, tmp)
            fixture_digests.install(tmp, path)
            print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes (sha256 as in reference.json)")


def main():
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["--gguf-only"]:
        write_gguf_only()
        return
    if sys.argv[1:]:
        sys.exit("usage: make-reference-models.py [--gguf-only]")
    rng = np.random.default_rng(20261201)
    entries = []
    for arch in ARCHITECTURES:
        for quantized in [False, True]:
            path = model_path(arch, quantized)
            vocab = build(arch, quantized, rng, path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            ids = [int(x) for x in np.random.default_rng(len(entries) + 7).integers(0, vocab, POSITIONS)]
            logits = llama_logits(path, ids)
            assert logits.shape == (POSITIONS, vocab), logits.shape
            base = os.path.basename(path)[:-5]
            logits.astype("<f4").tofile(os.path.join(OUT, base + ".logits"))
            entries.append(dict(architecture=arch, model=base + ".gguf", logits=base + ".logits",
                                quantized=quantized, ids=ids, vocabulary=vocab,
                                # The logits are llama.cpp's for exactly these model bytes.
                                sha256=digest,
                                # Quantized: the bar. Activations are quantized to 8 bits
                                # (Q8_0 blocks, F16 scale) as llama.cpp does, so the two engines
                                # see the same int8 values; the rest is float summation order.
                                tolerance=1e-2 if quantized else 1e-4))
            print(f"{base}: vocab {vocab}, {POSITIONS} positions, |logits| mean {np.abs(logits).mean():.3f}",
                  file=sys.stderr)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(dict(generator="scripts/make-reference-models.py", oracle="llama.cpp via llama-cpp-python",
                       models=entries), f, indent=1)


if __name__ == "__main__":
    main()
