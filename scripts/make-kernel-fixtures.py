#!/usr/bin/env python3
"""Makes the dequantization fixtures for Tests/KernelsTests.

For every weight type the kernels support, writes random blocks (sane fp16 scales,
random quants) and the values the `gguf` PyPI package's reference dequantizer
(`gguf.quants.dequantize`) computes for them:

    Tests/KernelsTests/Fixtures/<TYPE>.blocks   raw GGUF block bytes
    Tests/KernelsTests/Fixtures/<TYPE>.f32      little-endian float32 values
    Tests/KernelsTests/Fixtures/manifest.json   {type: {ggml, elements, blocks_sha256}}

Setup (nothing is installed into the repository):
    python3 -m pip install --target ~/.cache/autoglm/pydeps gguf numpy
    PYTHONPATH=~/.cache/autoglm/pydeps python3 scripts/make-kernel-fixtures.py
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.expanduser("~/.cache/autoglm/pydeps"))
import numpy as np  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "KernelsTests", "Fixtures")
ELEMENTS = 2048
rng = np.random.default_rng(20261201)


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def scales(n, lo=1e-4, hi=2e-2, signed=True):
    v = rng.uniform(lo, hi, size=n)
    if signed:
        v *= rng.choice([-1.0, 1.0], size=n)
    return v


def f16_with_specials():
    """Random halves, starting with subnormals, signed zeros and the largest finite values."""
    v = np.asarray(rng.uniform(-2, 2, size=ELEMENTS), dtype=np.float16).view(np.uint16).copy()
    v[:8] = [0x0001, 0x03FF, 0x8001, 0x0000, 0x8000, 0x3C00, 0x7BFF, 0xFBFF]
    return v.view(np.uint8)


def blocks(qtype, block_size, type_size, scale_offsets):
    """Random bytes with sane fp16 scales at the given byte offsets of each block."""
    n = ELEMENTS // block_size
    raw = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off, signed in scale_offsets:
        raw[:, off:off + 2] = f16_bytes(scales(n, signed=signed))
    return raw


def make():
    cases = {
        "F32": (T.F32, rng.uniform(-2, 2, size=ELEMENTS).astype(np.float32).view(np.uint8)),
        "F16": (T.F16, f16_with_specials()),
        # BF16: random float32 truncated to its top 16 bits.
        "BF16": (T.BF16, (rng.uniform(-2, 2, size=ELEMENTS).astype(np.float32).view(np.uint32) >> 16)
                 .astype(np.uint16).view(np.uint8)),
        "Q8_0": (T.Q8_0, blocks(T.Q8_0, 32, 34, [(0, True)])),
        "Q4_0": (T.Q4_0, blocks(T.Q4_0, 32, 18, [(0, True)])),
        "Q5_0": (T.Q5_0, blocks(T.Q5_0, 32, 22, [(0, True)])),
        "Q4_K": (T.Q4_K, blocks(T.Q4_K, 256, 144, [(0, False), (2, False)])),
        "Q5_K": (T.Q5_K, blocks(T.Q5_K, 256, 176, [(0, False), (2, False)])),
        "Q6_K": (T.Q6_K, blocks(T.Q6_K, 256, 210, [(208, True)])),
    }
    os.makedirs(OUT, exist_ok=True)
    manifest = {}
    for name, (qtype, data) in cases.items():
        data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        values = np.asarray(dequantize(data, qtype), dtype="<f4").reshape(-1)
        assert values.size == ELEMENTS, (name, values.size)
        assert np.all(np.isfinite(values)), name
        with open(os.path.join(OUT, f"{name}.blocks"), "wb") as f:
            f.write(data.tobytes())
        with open(os.path.join(OUT, f"{name}.f32"), "wb") as f:
            f.write(values.tobytes())
        manifest[name] = {"ggml": int(qtype), "elements": ELEMENTS,
                          "blocks_sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    make()
