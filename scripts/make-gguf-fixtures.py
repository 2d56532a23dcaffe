#!/usr/bin/env python3
"""Writes the GGUF reader/writer cross-check fixtures with the reference `gguf` package.

    python3 -m pip install --target ~/.cache/autoglm/pydeps gguf numpy
    PYTHONPATH=~/.cache/autoglm/pydeps python3 scripts/make-gguf-fixtures.py

Outputs (committed; the Swift tests read them):
    Tests/GGUFTests/Fixtures/all-types.gguf   every metadata value type, nested arrays,
                                              alignment 64, tensors of several ggml types
    Tests/GGUFTests/Fixtures/all-types.json   what the file holds, in a canonical text form
                                              the Swift test reproduces from its parse

Canonical value text: "<type>:<payload>" with integers in decimal, floats as the hex bit
pattern, bools as true/false, strings as hex UTF-8, arrays as
"array<elem>[item,item,...]" (items canonical, recursively).

    PYTHONPATH=~/.cache/autoglm/pydeps python3 scripts/make-gguf-fixtures.py --verify F.gguf [F.json]

reads F.gguf with gguf.GGUFReader and prints its canonical dump (and compares it with
F.json when given): used to check files written by the Swift GGUFWriter.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as T

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "GGUFTests", "Fixtures")

TYPE_NAMES = {
    T.UINT8: "u8", T.INT8: "i8", T.UINT16: "u16", T.INT16: "i16", T.UINT32: "u32",
    T.INT32: "i32", T.FLOAT32: "f32", T.BOOL: "bool", T.STRING: "string", T.ARRAY: "array",
    T.UINT64: "u64", T.INT64: "i64", T.FLOAT64: "f64",
}


def canon(vtype, value, sub=None):
    """Canonical text of a value as the writer is asked to store it."""
    n = TYPE_NAMES[vtype]
    if vtype == T.FLOAT32:
        return "f32:%08x" % struct.unpack("<I", struct.pack("<f", value))[0]
    if vtype == T.FLOAT64:
        return "f64:%016x" % struct.unpack("<Q", struct.pack("<d", value))[0]
    if vtype == T.BOOL:
        return "bool:" + ("true" if value else "false")
    if vtype == T.STRING:
        b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return "string:" + b.hex()
    if vtype == T.ARRAY:
        # gguf.GGUFWriter infers the element type of nested arrays from their first item.
        et = sub if sub is not None else T.get_type(value[0])
        return "array<%s>[%s]" % (TYPE_NAMES[et], ",".join(canon(et, v) for v in value))
    return "%s:%d" % (n, int(value))


def build():
    """(metadata [(key, vtype, value, sub)], tensors [(name, ggml_type, shape_ggml, bytes)])."""
    meta = [
        ("general.name", T.STRING, "all types fixture", None),
        ("test.u8", T.UINT8, 255, None),
        ("test.i8", T.INT8, -128, None),
        ("test.u16", T.UINT16, 65535, None),
        ("test.i16", T.INT16, -32768, None),
        ("test.u32", T.UINT32, 4294967295, None),
        ("test.i32", T.INT32, -2147483648, None),
        ("test.f32", T.FLOAT32, 3.14159, None),
        ("test.f32_neg_zero", T.FLOAT32, -0.0, None),
        ("test.f32_inf", T.FLOAT32, float("inf"), None),
        ("test.bool_true", T.BOOL, True, None),
        ("test.bool_false", T.BOOL, False, None),
        ("test.string", T.STRING, "héllo, wörld ✓ 🦙", None),
        ("test.string_empty", T.STRING, "", None),
        ("test.u64", T.UINT64, 18446744073709551615, None),
        ("test.i64", T.INT64, -9223372036854775808, None),
        ("test.f64", T.FLOAT64, -2.718281828459045, None),
        ("test.arr.u8", T.ARRAY, [0, 1, 254, 255], T.UINT8),
        ("test.arr.i8", T.ARRAY, [-128, 0, 127], T.INT8),
        ("test.arr.u16", T.ARRAY, [0, 65535], T.UINT16),
        ("test.arr.i16", T.ARRAY, [-32768, 32767], T.INT16),
        ("test.arr.u32", T.ARRAY, [0, 4294967295], T.UINT32),
        ("test.arr.i32", T.ARRAY, [-1, 0, 1, 2147483647], T.INT32),
        ("test.arr.f32", T.ARRAY, [0.5, -1.25, 1e-30], T.FLOAT32),
        ("test.arr.bool", T.ARRAY, [True, False, True], T.BOOL),
        ("test.arr.string", T.ARRAY, ["a", "", "<|im_start|>", "Ġthe", "日本"], T.STRING),
        ("test.arr.u64", T.ARRAY, [0, 18446744073709551615], T.UINT64),
        ("test.arr.i64", T.ARRAY, [-9223372036854775808, 9223372036854775807], T.INT64),
        ("test.arr.f64", T.ARRAY, [1.0, -0.1], T.FLOAT64),
        ("test.arr.nested_i32", T.ARRAY, [[1, 2, 3], [4], [5, 6]], T.ARRAY),
        ("test.arr.nested_string", T.ARRAY, [["x", "y"], ["z"]], T.ARRAY),
        ("test.arr.nested2", T.ARRAY, [[[1.5], [2.5, 3.5]], [[4.5]]], T.ARRAY),
        ("tokenizer.ggml.model", T.STRING, "gpt2", None),
    ]
    rng = np.random.default_rng(1234)
    f32 = rng.standard_normal((5, 3)).astype(np.float32)       # ggml dims [3, 5]
    f16 = rng.standard_normal((2, 4)).astype(np.float16)       # ggml dims [4, 2]
    odd = np.arange(7, dtype=np.float32)                       # 28 bytes: padded
    i8 = np.arange(-5, 6, dtype=np.int8)                       # 11 bytes
    i32 = np.array([1, -2, 3], dtype=np.int32)
    q8 = rng.integers(0, 256, size=(2, 34), dtype=np.uint8)    # Q8_0, ggml dims [32, 2]
    q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)  # Q4_K, ggml dims [256, 1]
    tensors = [
        ("weights.f32", f32, None),
        ("weights.f16", f16, None),
        ("odd.f32", odd, None),
        ("small.i8", i8, None),
        ("small.i32", i32, None),
        ("quant.q8_0", q8, gguf.GGMLQuantizationType.Q8_0),
        ("quant.q4_k", q4k, gguf.GGMLQuantizationType.Q4_K),
    ]
    return meta, tensors


def write(path_gguf, path_json):
    meta, tensors = build()
    w = gguf.GGUFWriter(path_gguf, arch="testarch")
    w.add_custom_alignment(64)
    for key, vtype, value, sub in meta:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, arr, raw in tensors:
        if raw is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # What the file holds, in file order: the architecture and alignment keys come first.
    expected_meta = [["general.architecture", canon(T.STRING, "testarch")],
                     ["general.alignment", canon(T.UINT32, 64)]]
    expected_meta += [[k, canon(t, v, s)] for k, t, v, s in meta]
    out_tensors = []
    offset = 0
    for name, arr, raw in tensors:
        if raw is None:
            shape = list(reversed(arr.shape))
            dtype = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int8): 24,
                     np.dtype(np.int32): 26}[arr.dtype]
        else:
            shape = [int(x) for x in reversed(gguf.quant_shape_from_byte_shape(arr.shape, raw))]
            dtype = int(raw)
        data = arr.tobytes()
        out_tensors.append({"name": name, "dims": shape, "type": dtype, "offset": offset, "hex": data.hex()})
        offset += (len(data) + 63) // 64 * 64
    quant = {q.name: {"id": int(q), "block": bs, "bytes": ts} for q, (bs, ts) in gguf.GGML_QUANT_SIZES.items()}
    doc = {"version": 3, "alignment": 64, "metadata": expected_meta, "tensors": out_tensors,
           "file_size": os.path.getsize(path_gguf), "ggml_types": quant}
    with open(path_json, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def reader_dump(path):
    """Canonical dump of a GGUF file as gguf.GGUFReader reads it."""
    r = gguf.GGUFReader(path)

    meta = []
    for field in r.fields.values():
        if field.name.startswith("GGUF."):
            continue
        meta.append([field.name, canon_field(r, field)])
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "dims": [int(x) for x in t.shape], "type": int(t.tensor_type),
                        "offset": int(t.data_offset) - int(r.data_offset), "hex": bytes(t.data.tobytes()).hex()})
    return {"metadata": meta, "tensors": tensors, "alignment": int(r.alignment)}


def canon_field(r, field):
    """Canonical text of a ReaderField, walking its raw parts (handles nested arrays)."""
    parts = field.parts
    pos = [3]  # parts: key length, key, value type, then the value

    def take():
        p = parts[pos[0]]
        pos[0] += 1
        return p

    def value(vtype):
        if vtype == T.STRING:
            take()  # length
            return "string:" + bytes(take().tobytes()).hex()
        if vtype == T.ARRAY:
            et = T(int(take()[0]))
            n = int(take()[0])
            return "array<%s>[%s]" % (TYPE_NAMES[et], ",".join(value(et) for _ in range(n)))
        v = take()[0]
        if vtype == T.FLOAT32:
            return "f32:%08x" % struct.unpack("<I", struct.pack("<f", float(v)))[0]
        if vtype == T.FLOAT64:
            return "f64:%016x" % struct.unpack("<Q", struct.pack("<d", float(v)))[0]
        if vtype == T.BOOL:
            return "bool:" + ("true" if bool(v) else "false")
        return "%s:%d" % (TYPE_NAMES[vtype], int(v))

    return value(T(int(field.types[0])))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--verify":
        got = reader_dump(sys.argv[2])
        if len(sys.argv) >= 4:
            with open(sys.argv[3]) as f:
                want = json.load(f)
            ok = True
            for k in ("metadata", "tensors", "alignment"):
                w = want[k]
                if k == "tensors":
                    w = [{kk: t[kk] for kk in ("name", "dims", "type", "offset", "hex")} for t in w]
                if got[k] != w:
                    ok = False
                    print("MISMATCH in", k)
                    print(" want:", json.dumps(w, ensure_ascii=False)[:2000])
                    print(" got: ", json.dumps(got[k], ensure_ascii=False)[:2000])
            print("OK: gguf.GGUFReader reads what was expected" if ok else "FAILED")
            sys.exit(0 if ok else 1)
        print(json.dumps(got, indent=1, ensure_ascii=False))
        return
    os.makedirs(FIXTURES, exist_ok=True)
    g = os.path.join(FIXTURES, "all-types.gguf")
    j = os.path.join(FIXTURES, "all-types.json")
    write(g, j)
    print("wrote", os.path.relpath(g), os.path.getsize(g), "bytes and", os.path.relpath(j))


if __name__ == "__main__":
    main()
