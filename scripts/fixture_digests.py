#!/usr/bin/env python3
"""The sha256 of every generated .gguf test fixture, and the check that a file on disk is it.

The .gguf fixtures are not in git: scripts/make-test-fixtures.sh regenerates them with pinned
`gguf`/`numpy` (scripts/fixture-requirements.txt). What stays in git are the oracles made FROM
those exact bytes, and they record the digest of the file they were made for:
  Tests/GGUFTests/Fixtures/all-types.json                  "sha256" of all-types.gguf
  Tests/ModelsTests/Fixtures/reference/reference.json      "sha256" of each model entry
So a regenerated file that differs by one byte is refused here, and by the Swift tests.

Standard library only (runs before the fixtures' venv exists):
    python3 scripts/fixture_digests.py check     exit 0 when every fixture is present and matches
"""
import hashlib
import json
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
GGUF_FIXTURES = os.path.join("Tests", "GGUFTests", "Fixtures")
REFERENCE = os.path.join("Tests", "ModelsTests", "Fixtures", "reference")
REQUIREMENTS = os.path.join(ROOT, "scripts", "fixture-requirements.txt")

# How to remake an oracle when a fixture's bytes legitimately change (new generator, new pins).
REGENERATE_ALL_TYPES = ("python scripts/make-gguf-fixtures.py (with the pinned gguf/numpy) and commit "
                        "Tests/GGUFTests/Fixtures/all-types.json")
REGENERATE_REFERENCE = ("~/.cache/autoglm/peers/llama-venv/bin/python scripts/make-reference-models.py "
                        "(llama-cpp-python 0.3.36 + the pinned gguf/numpy; bench/compare-llamacpp.sh builds "
                        "that venv) and commit reference.json and the *.logits files")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pins():
    """The pinned requirement lines, e.g. ['gguf==0.19.0', 'numpy==2.4.6']."""
    with open(REQUIREMENTS) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def expected():
    """[(repo-relative path, sha256, what the oracle is, how to regenerate it)] for every fixture."""
    out = []
    with open(os.path.join(ROOT, GGUF_FIXTURES, "all-types.json")) as f:
        doc = json.load(f)
    out.append((os.path.join(GGUF_FIXTURES, "all-types.gguf"), doc["sha256"],
                "the one all-types.json was written from", REGENERATE_ALL_TYPES))
    with open(os.path.join(ROOT, REFERENCE, "reference.json")) as f:
        ref = json.load(f)
    for m in ref["models"]:
        out.append((os.path.join(REFERENCE, m["model"]), m["sha256"],
                    "the one the llama.cpp logits (%s) were made for" % m["logits"], REGENERATE_REFERENCE))
    return out


def stale():
    """[(path, want, got or None)] for every fixture that is missing or differs."""
    bad = []
    for rel, want, _, _ in expected():
        p = os.path.join(ROOT, rel)
        got = sha256_file(p) if os.path.isfile(p) else None
        if got != want:
            bad.append((rel, want, got))
    return bad


def install(tmp, final):
    """Moves a freshly written `tmp` to `final` if its sha256 is the recorded one; otherwise
    deletes it and exits non-zero with what differs and how to regenerate the oracle."""
    rel = os.path.relpath(os.path.abspath(final), ROOT)
    entry = next((e for e in expected() if e[0] == rel), None)
    if entry is None:
        os.remove(tmp)
        sys.exit("fixture %s has no recorded sha256 in its manifest (all-types.json / reference.json)" % rel)
    _, want, what, how = entry
    got = sha256_file(tmp)
    if got != want:
        os.remove(tmp)
        sys.exit("fixture %s differs from %s: sha256 %s != %s (made with %s, Python %s). Use the pinned "
                 "versions in scripts/fixture-requirements.txt (scripts/make-test-fixtures.sh does), or, if "
                 "the generator or the pins changed on purpose, regenerate the oracle with %s."
                 % (rel, what, got, want, ", ".join(installed_versions()), sys.version.split()[0], how))
    os.replace(tmp, final)


def installed_versions():
    from importlib import metadata
    out = []
    for name in ("gguf", "numpy"):
        try:
            out.append("%s==%s" % (name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append("%s (not installed)" % name)
    return out


def main():
    if sys.argv[1:] != ["check"]:
        sys.exit("usage: fixture_digests.py check")
    bad = stale()
    for rel, want, got in bad:
        print("%s: %s (want sha256 %s)" % (rel, "missing" if got is None else "sha256 " + got, want))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
