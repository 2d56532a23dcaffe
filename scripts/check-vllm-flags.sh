#!/usr/bin/env bash
# Checks the spec → `vllm serve` mapping against the vLLM the rendered pods run (the version of
# BackendSpec.defaultVLLMImage, vllm/vllm-openai:v0.11.0):
#   - every flag autoglm emits exists in that version's CLI, and the subcommand is `serve`;
#   - every backend.dtype / backend.quantization value `autoglm validate` accepts is one vLLM accepts.
# The flags come from the binary: `autoglm deploy render` of a vLLM spec that sets every mapped
# field, the vllm container's args read from the rendered Deployment. The accepted values come from
# `autoglm validate`'s message for a value it refuses (it lists them).
# vLLM's CLI comes from its sdist's source (PyPI, sha256-checked, cached in
# ~/.cache/autoglm/peers/vllm-0.11.0, never in the repo), parsed with Python's ast:
#   vllm/engine/arg_utils.py          EngineArgs.add_cli_args: add_argument("--flag", ...)
#   vllm/entrypoints/openai/cli_args.py  FrontendArgs fields → --{field.replace('_', '-')}, plus
#                                        make_arg_parser's own add_argument calls
#   vllm/entrypoints/cli/serve.py      the `serve` subcommand
#   vllm/config/model.py               ModelDType = Literal[...]      (choices of --dtype)
#   vllm/model_executor/layers/quantization/__init__.py  QuantizationMethods = Literal[...]
# Usage: scripts/check-vllm-flags.sh   ($AUTOGLM_BIN: the autoglm binary; default: swift build's)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=0.11.0
CACHE="${AUTOGLM_PEERS:-$HOME/.cache/autoglm/peers}/vllm-$VERSION"
SRC="$CACHE/vllm-$VERSION"

BIN="${AUTOGLM_BIN:-}"
if [[ -z "$BIN" ]]; then
  (cd "$ROOT" && swift build --product autoglm >/dev/null)
  BIN="$(cd "$ROOT" && swift build --show-bin-path)/autoglm"
fi
[[ -x "$BIN" ]] || { echo "error: $BIN is not an executable autoglm; build it or set AUTOGLM_BIN" >&2; exit 2; }

# The image the renderer pins must be the version checked here.
grep -q "defaultVLLMImage = \"vllm/vllm-openai:v$VERSION\"" "$ROOT/Sources/Spec/Spec.swift" || {
  echo "error: BackendSpec.defaultVLLMImage is not vllm/vllm-openai:v$VERSION; update VERSION in $0 to the pinned image's vLLM" >&2
  exit 1
}

if [[ ! -f "$SRC/vllm/engine/arg_utils.py" ]]; then
  mkdir -p "$CACHE"
  # The sdist's URL and sha256 from PyPI's simple index (pip's own API). `pip download --no-binary`
  # would build the package's metadata, which needs torch; the source alone is all this needs.
  link="$(curl -fsSL https://pypi.org/simple/vllm/ | grep -o "https://[^\"]*/vllm-$VERSION\.tar\.gz#sha256=[0-9a-f]*" | head -1)"
  [[ -n "$link" ]] || { echo "error: vllm-$VERSION.tar.gz not found on https://pypi.org/simple/vllm/" >&2; exit 1; }
  url="${link%%#*}"; sha="${link##*sha256=}"
  curl -fsSL -o "$CACHE/vllm-$VERSION.tar.gz.part" "$url"
  echo "$sha  $CACHE/vllm-$VERSION.tar.gz.part" | sha256sum -c - >/dev/null
  mv "$CACHE/vllm-$VERSION.tar.gz.part" "$CACHE/vllm-$VERSION.tar.gz"
  tar -xzf "$CACHE/vllm-$VERSION.tar.gz" -C "$CACHE"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/spec.yaml" <<'YAML'
apiVersion: autoglm/v1
name: flags
model:
  ref: hf://Org/Repo
  revision: main
backend:
  type: vllm
  maxSeqs: 8
  maxBatchedTokens: 2048
  contextLength: 4096
  gpuMemoryUtilization: 0.8
  dtype: bfloat16
  quantization: fp8
resources:
  nvidia.com/gpu: 2
YAML
env -i PATH="$PATH" HOME="$HOME" "$BIN" deploy render --offline "$WORK/spec.yaml" -o "$WORK/out" >/dev/null 2>"$WORK/render.err" \
  || { cat "$WORK/render.err" >&2; exit 1; }
# Values autoglm accepts, from the messages naming them.
sed -e 's/dtype: bfloat16/dtype: nope/' "$WORK/spec.yaml" >"$WORK/bad-dtype.yaml"
sed -e 's/quantization: fp8/quantization: nope/' "$WORK/spec.yaml" >"$WORK/bad-quant.yaml"
"$BIN" validate "$WORK/bad-dtype.yaml" >"$WORK/dtype.msg" 2>&1 || true
"$BIN" validate "$WORK/bad-quant.yaml" >"$WORK/quant.msg" 2>&1 || true

python3 - "$SRC" "$WORK" <<'PY'
import ast, os, re, sys, yaml
src, work = sys.argv[1], sys.argv[2]

def tree(rel):
    with open(os.path.join(src, rel)) as f:
        return ast.parse(f.read()), open(os.path.join(src, rel)).read()

def add_argument_flags(t):
    flags = set()
    for node in ast.walk(t):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            for a in node.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--"):
                    flags.add(a.value)
    return flags

def literal(t, name):
    for node in ast.walk(t):
        if isinstance(node, ast.Assign) and any(isinstance(x, ast.Name) and x.id == name for x in node.targets):
            sl = node.value
            if isinstance(sl, ast.Subscript) and getattr(sl.value, "id", "") == "Literal":
                elts = sl.slice.elts if isinstance(sl.slice, ast.Tuple) else [sl.slice]
                return {e.value for e in elts}
    sys.exit(f"error: {name} = Literal[...] not found; vLLM's source layout changed")

engine, _ = tree("vllm/engine/arg_utils.py")
cli, cli_text = tree("vllm/entrypoints/openai/cli_args.py")
serve, serve_text = tree("vllm/entrypoints/cli/serve.py")
model_cfg, model_text = tree("vllm/config/model.py")
quant, _ = tree("vllm/model_executor/layers/quantization/__init__.py")

flags = add_argument_flags(engine) | add_argument_flags(cli)
# FrontendArgs' dataclass fields become flags through this one loop in cli_args.py.
if "add_argument(f\"--{key.replace('_', '-')}\"" not in cli_text:
    sys.exit("error: cli_args.py no longer derives FrontendArgs flags as --{key.replace('_', '-')}; update this check")
for node in ast.walk(cli):
    if isinstance(node, ast.ClassDef) and node.name == "FrontendArgs":
        for st in node.body:
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                flags.add("--" + st.target.id.replace("_", "-"))
if not re.search(r'name\s*=\s*"serve"|add_parser\(\s*"serve"', serve_text):
    sys.exit("error: vllm/entrypoints/cli/serve.py defines no `serve` subcommand")
if "model_tag" not in cli_text:
    sys.exit("error: `vllm serve` takes no positional model_tag in cli_args.py")
dtypes = literal(model_cfg, "ModelDType")
if not re.search(r"^\s*dtype: Union\[ModelDType", model_text, re.M):
    sys.exit("error: ModelConfig.dtype is no longer typed ModelDType")
quants = literal(quant, "QuantizationMethods")

docs = [d for n in sorted(os.listdir(os.path.join(work, "out")))
        for d in yaml.safe_load_all(open(os.path.join(work, "out", n)))]
dep = next(d for d in docs if d and d.get("kind") == "Deployment")
vllm = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
assert vllm["command"] == ["vllm"], vllm["command"]
args = vllm["args"]
problems = []
if args[:1] != ["serve"]:
    problems.append(f"the first argument is {args[:1]}, not the subcommand serve")
emitted = [a for a in args if a.startswith("-")]
for f in emitted:
    if f not in flags:
        problems.append(f"{f}: not an option of vllm {os.path.basename(src).split('-')[1]} serve")
positional = [a for i, a in enumerate(args[1:], 1) if not a.startswith("-") and not args[i - 1].startswith("-")]
if positional != ["Org/Repo"]:
    problems.append(f"positional arguments {positional}, expected the repo id only")

def listed(msg, lead, tail):
    text = open(os.path.join(work, msg)).read()
    m = re.search(lead + r"(.*?)" + tail, text)
    if not m:
        sys.exit(f"error: could not read the accepted values from autoglm validate's message:\n{text}")
    return [v.strip() for v in m.group(1).split(",")]
ours_dtypes = listed("dtype.msg", r"is not one of ", r"(?:;|$|\n)")
ours_quants = listed("quant.msg", r"use one of ", r" \(or omit")
for v in ours_dtypes:
    if v not in dtypes: problems.append(f"backend.dtype {v}: vLLM's --dtype accepts {sorted(dtypes)}")
for v in ours_quants:
    if v not in quants: problems.append(f"backend.quantization {v}: vLLM's --quantization accepts {sorted(quants)}")
# Every mapped flag must have been rendered (the spec sets every field).
expected = {"--host", "--port", "--served-model-name", "--revision", "--tensor-parallel-size", "--max-num-seqs",
            "--max-model-len", "--max-num-batched-tokens", "--gpu-memory-utilization", "--dtype", "--quantization"}
missing = expected - set(emitted)
if missing:
    problems.append(f"the rendered args lack {sorted(missing)} (the spec sets every mapped field)")
if problems:
    print("vLLM flag check FAILED:")
    for p in problems: print("  " + p)
    sys.exit(1)
print(f"vllm serve args: {' '.join(args)}")
print(f"ok: {len(set(emitted))} flags exist in vLLM's CLI ({len(flags)} options parsed); "
      f"{len(ours_dtypes)} dtypes and {len(ours_quants)} quantization methods accepted by vLLM")
PY
