#!/usr/bin/env bash
# Regenerates the synthetic .gguf test fixtures, which git does not track:
#   Tests/GGUFTests/Fixtures/all-types.gguf                      (scripts/make-gguf-fixtures.py)
#   Tests/ModelsTests/Fixtures/reference/{llama,qwen3,glm4,chatglm}-{f32,q}.gguf
#                                                                (scripts/make-reference-models.py)
# Their oracles stay in git and record each file's sha256 (all-types.json, reference.json); a
# regenerated file is installed only if its sha256 is that one, so the llama.cpp logits and the
# gguf package's dump are always compared with the bytes they were made from.
# Missing or different ones are written with the pinned gguf/numpy (scripts/fixture-requirements.txt)
# from a private venv, $AUTOGLM_FIXTURES_VENV (default ~/.cache/autoglm/fixtures-venv), built on
# first use and rebuilt when the requirements file changes. GrammarTests run that venv's Python too
# (its pinned jsonschema checks the documents the grammars generate), so the venv is made ready
# even when every .gguf is present (then nothing else is done: the fixtures are only hashed).
# scripts/test.sh runs this before building the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AUTOGLM_FIXTURES_VENV:-$HOME/.cache/autoglm/fixtures-venv}"
REQ=scripts/fixture-requirements.txt
# The venv is ready when it was built from exactly this requirements file.
ensure_venv() {
  if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/.autoglm-requirements"; then
    return 0
  fi
  echo "test fixtures: building $VENV ($(grep -v '^#' "$REQ" | tr '\n' ' '))"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || {
    echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv); .ci/run does" >&2
    exit 1
  }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" || {
    echo "installing $REQ into $VENV failed (PyPI must be reachable); remove $VENV and rerun" >&2
    exit 1
  }
  cp "$REQ" "$VENV/.autoglm-requirements"
}

if python3 scripts/fixture_digests.py check >/dev/null; then
  echo "test fixtures: every .gguf present, sha256 as recorded"
  ensure_venv
  exit 0
fi
python3 scripts/fixture_digests.py check || true   # says which ones are missing or differ
ensure_venv

"$VENV/bin/python" scripts/make-gguf-fixtures.py --gguf-only
"$VENV/bin/python" scripts/make-reference-models.py --gguf-only
python3 scripts/fixture_digests.py check
echo "test fixtures: regenerated, sha256 as recorded"
