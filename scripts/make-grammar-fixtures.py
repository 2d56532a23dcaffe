#!/usr/bin/env python3
"""Writes Tests/GrammarTests/Fixtures/schema-cases.json: JSON Schemas with instances labelled
valid/invalid by the `jsonschema` package (Draft 2020-12, formats checked), and regular expressions
with texts labelled by Python's re.fullmatch (re.ASCII: \\d \\w \\s are ASCII, as RegexGrammar's).

Instances are written the way the grammars write JSON: compact, members in the schema's declared
order (undeclared ones after), json.dumps(ensure_ascii=False). Labels come from the oracle, never
from this file: the `expect` hints below are only checked against it, so a mistake here fails the
script instead of silently mislabelling a case.

Run with the fixtures venv (scripts/make-test-fixtures.sh builds it):
    ~/.cache/autoglm/fixtures-venv/bin/python scripts/make-grammar-fixtures.py
"""
import importlib.metadata
import json
import os
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator

V, X = True, False  # expect: valid / invalid

SCHEMAS = [
    ("required-props", {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                        "required": ["name", "age"], "additionalProperties": False},
     [({"name": "Ann", "age": 31}, V), ({"name": "", "age": -4}, V), ({"name": "Ann"}, X), ({"age": 3}, X),
      ({"name": "Ann", "age": 3.5}, X), ({"name": "Ann", "age": 3, "x": 1}, X), ([], X)]),
    ("all-optional", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
                      "additionalProperties": False},
     [({}, V), ({"a": 1}, V), ({"b": "x"}, V), ({"c": True}, V), ({"a": 1, "b": "x"}, V), ({"a": 1, "c": False}, V),
      ({"b": "x", "c": True}, V), ({"a": 1, "b": "x", "c": True}, V), ({"a": "x"}, X), ({"d": 1}, X), ({"a": 1, "d": 1}, X)]),
    ("mixed-required", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"},
                                                         "d": {"type": "integer"}}, "required": ["c", "a"], "additionalProperties": False},
     [({"a": 1, "c": 3}, V), ({"a": 1, "b": 2, "c": 3}, V), ({"a": 1, "c": 3, "d": 4}, V), ({"a": 1, "b": 2, "c": 3, "d": 4}, V),
      ({"a": 1}, X), ({"c": 3}, X), ({"b": 2, "c": 3}, X), ({"a": 1, "b": 2, "d": 4}, X)]),
    ("nested-object", {"type": "object", "properties": {
        "person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                                    "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                                                                "required": ["city"], "additionalProperties": False}},
                   "required": ["name", "address"], "additionalProperties": False}},
        "required": ["person"], "additionalProperties": False},
     [({"person": {"name": "Bo", "address": {"city": "Oslo"}}}, V), ({"person": {"name": "Bo", "address": {"city": "Oslo", "zip": "01234"}}}, V),
      ({"person": {"name": "Bo", "address": {"city": "Oslo", "zip": "1234"}}}, X), ({"person": {"name": "Bo"}}, X),
      ({"person": {"name": "Bartholomew Jr", "address": {"city": "X"}}}, X)]),
    ("array-min-max", {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
     [([1, 2], V), ([1, 2, 3], V), ([0, -1, 2, 3], V), ([1], X), ([], X), ([1, 2, 3, 4, 5], X), ([1, "2"], X)]),
    ("array-of-objects", {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
                                                     "required": ["id"], "additionalProperties": False}},
     [([], V), ([{"id": 1}], V), ([{"id": 1, "tags": []}, {"id": 2, "tags": ["a", "b"]}], V), ([{"tags": []}], X), ([{"id": 1, "tags": [1]}], X)]),
    ("enum-mixed", {"enum": ["red", 1, None, True, {"a": 1}, [1, 2], 2.5]},
     [("red", V), (1, V), (None, V), (True, V), ({"a": 1}, V), ([1, 2], V), (2.5, V), ("blue", X), (False, X), (2, X), ([1], X)]),
    ("const-string", {"const": "fixed"}, [("fixed", V), ("fixe", X), ("fixedd", X), (None, X)]),
    ("const-discriminator", {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                             "required": ["kind", "r"], "additionalProperties": False},
     [({"kind": "circle", "r": 1.5}, V), ({"kind": "circle", "r": 2}, V), ({"kind": "square", "r": 1}, X)]),
    ("anyof-string-integer", {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 0}]},
     [("abc", V), (0, V), (42, V), ("abcd", X), (-1, X), (1.5, X), (None, X)]),
    ("nullable-type-array", {"type": ["string", "null"]}, [("x", V), (None, V), (1, X), (False, X)]),
    ("nullable-anyof-pydantic", {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Count"},
     [(3, V), (None, V), ("3", X)]),
    ("recursive-tree-defs", {"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
                                                                                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                                                "required": ["value", "children"], "additionalProperties": False}},
                             "$ref": "#/$defs/node"},
     [({"value": 1, "children": []}, V), ({"value": 1, "children": [{"value": 2, "children": [{"value": 3, "children": []}]}, {"value": 4, "children": []}]}, V),
      ({"value": 1}, X), ({"value": 1, "children": [{"value": 2}]}, X), ({"value": 1, "children": [1]}, X)]),
    ("linked-list-root-ref", {"type": "object", "properties": {"value": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
                              "required": ["value", "next"], "additionalProperties": False},
     [({"value": 1, "next": None}, V), ({"value": 1, "next": {"value": 2, "next": {"value": 3, "next": None}}}, V),
      ({"value": 1, "next": {"value": 2}}, X), ({"value": 1, "next": 5}, X)]),
    ("definitions-draft7-style", {"definitions": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/definitions/pos"}},
     [([], V), ([1, 2, 300], V), ([0], X), ([1, -5], X)]),
    ("string-length-unicode", {"type": "string", "minLength": 2, "maxLength": 5},
     [("ab", V), ("héllo", V), ("日本", V), ("😀😀", V), ("a\nb", V), ("a\"\\", V), ("\u0001\u001f", V), ("a", X), ("abcdef", X), ("😀", X), ("", X)]),
    ("string-max-zero", {"type": "string", "maxLength": 0}, [("", V), ("a", X)]),
    ("pattern-anchored", {"type": "string", "pattern": "^[a-z]+-[0-9]{2,3}$"},
     [("ab-12", V), ("x-999", V), ("ab-1", X), ("Ab-12", X), ("ab-1234", X), ("-12", X)]),
    ("pattern-unanchored", {"type": "string", "pattern": "ab+c"},
     [("abc", V), ("xxabbbcyy", V), ("ab c", X), ("ac", X), ("", X)]),
    ("pattern-quote-backslash", {"type": "string", "pattern": "^a\"b\\\\c$"},
     [("a\"b\\c", V), ("a\"bc", X), ("ab\\c", X)]),
    ("pattern-words", {"type": "string", "pattern": "^[A-Z][a-z]*( [A-Z][a-z]*)*$"},
     [("Hello", V), ("Hello World", V), ("A B C", V), ("hello", X), ("Hello  World", X), ("Hello ", X)]),
    ("pattern-phone", {"type": "string", "pattern": "^(\\+\\d{1,3} )?\\(?\\d{3}\\)?[-. ]?\\d{4}$"},
     [("555-1234", V), ("+1 (555)1234", V), ("5551234", V), ("+12345 5551234", X), ("555--1234", X)]),
    ("pattern-greek-class", {"type": "string", "pattern": "^[α-ω]{2,4}$"},
     [("αβ", V), ("ωωωω", V), ("α", X), ("ab", X), ("αβγδε", X)]),
    ("integer-range", {"type": "integer", "minimum": 10, "maximum": 250},
     [(10, V), (99, V), (100, V), (199, V), (250, V), (9, X), (251, X), (300, X), (1000, X), (-10, X), (0, X)]),
    ("integer-range-negative", {"type": "integer", "minimum": -123, "maximum": 45},
     [(-123, V), (-100, V), (-99, V), (-1, V), (0, V), (45, V), (9, V), (-124, X), (-200, X), (46, X), (100, X), (-1000, X)]),
    ("integer-exclusive", {"type": "integer", "exclusiveMinimum": -10, "exclusiveMaximum": -2},
     [(-9, V), (-3, V), (-10, X), (-2, X), (0, X), (-11, X)]),
    ("integer-min-only", {"type": "integer", "minimum": 7},
     [(7, V), (8, V), (10, V), (123456789, V), (6, X), (0, X), (-7, X)]),
    ("integer-max-only", {"type": "integer", "maximum": -5},
     [(-5, V), (-6, V), (-10, V), (-123456, V), (-4, X), (0, X), (5, X)]),
    ("number", {"type": "number"},
     [(0, V), (-1.5, V), (1e10, V), (2.5e-05, V), (12, V), ("1", X), (True, X), (None, X)]),
    ("number-nonnegative", {"type": "number", "minimum": 0}, [(0, V), (3.5, V), (0.001, V), (-1, X), (-0.5, X)]),
    ("additional-schema", {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": {"type": "string"}},
     [({"id": 1}, V), ({"id": 1, "x": "y", "z": "w"}, V), ({"id": 1, "x": 2}, X), ({"x": "y"}, X)]),
    ("additional-default", {"type": "object", "properties": {"a": {"type": "integer"}}},
     [({}, V), ({"a": 1}, V), ({"a": 1, "b": [True]}, V), ({"b": None}, V), ({"a": "s"}, X), ([], X)]),
    ("free-object", {"type": "object"}, [({}, V), ({"k": {"n": [1, 2, {"x": None}]}}, V), ([], X), (1, X), ("{}", X)]),
    ("empty-schema", {}, [(1, V), ("s", V), (None, V), ([1, {"a": []}], V), ({"a": {"b": 1.5}}, V)]),
    ("true-schema", True, [(False, V), ({"x": [None]}, V)]),
    ("prefix-items-closed", {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
     [([], V), (["a"], V), (["a", 1], V), (["a", 1, 2], X), ([1], X), (["a", "b"], X)]),
    ("prefix-items-rest", {"type": "array", "prefixItems": [{"const": "cmd"}], "items": {"type": "number"}, "minItems": 2, "maxItems": 3},
     [(["cmd", 1], V), (["cmd", 1, 2.5], V), (["cmd"], X), (["cmd", 1, 2, 3], X), (["x", 1], X), (["cmd", "1"], X)]),
    ("oneof-by-type", {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "boolean"}}]},
     [("s", V), ([True, False], V), ([], V), (1, X), ([1], X)]),
    ("oneof-discriminated", {"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind", "y"], "additionalProperties": False}]},
     [({"kind": "a", "x": 1}, V), ({"kind": "b", "y": "z"}, V), ({"kind": "a", "y": "z"}, X), ({"kind": "c", "x": 1}, X)]),
    ("allof-single", {"allOf": [{"type": "boolean"}], "description": "a flag"}, [(True, V), (False, V), (0, X)]),
    ("unicode-keys", {"type": "object", "properties": {"名前": {"type": "string"}, "ü": {"enum": ["ä", "ö", "😀"]}},
                      "required": ["名前"], "additionalProperties": False},
     [({"名前": "太郎"}, V), ({"名前": "x", "ü": "😀"}, V), ({"名前": "x", "ü": "u"}, X), ({"ü": "ä"}, X)]),
    ("format-uuid", {"type": "string", "format": "uuid"},
     [("123e4567-e89b-12d3-a456-426614174000", V), ("123E4567-E89B-12D3-A456-426614174000", V),
      ("123e4567e89b12d3a456426614174000", X), ("123e4567-e89b-12d3-a456-42661417400", X)]),
    ("format-date", {"type": "string", "format": "date"},
     [("2024-02-29", V), ("2000-02-29", V), ("2023-12-31", V), ("0001-01-01", V), ("2023-02-28", V),
      ("2023-02-29", X), ("1900-02-29", X), ("2023-04-31", X), ("2023-13-01", X), ("0000-01-01", X), ("2023-1-01", X)]),
    ("nested-arrays", {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}, "maxItems": 3},
     [([], V), ([[]], V), ([[1, 2], [3], []], V), ([[1, 2, 3]], X), ([[], [], [], []], X)]),
    ("tool-arguments", {"type": "object", "properties": {"location": {"type": "string", "description": "City"},
                                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                                         "days": {"type": "integer", "minimum": 1, "maximum": 14}},
                        "required": ["location"], "additionalProperties": False},
     [({"location": "Paris"}, V), ({"location": "Paris", "unit": "celsius"}, V), ({"location": "Paris", "days": 14}, V),
      ({"location": "Paris", "unit": "kelvin"}, X), ({"location": "Paris", "days": 15}, X), ({"location": "Paris", "days": 0}, X)]),
    ("record-mixed", {"type": "object", "properties": {"level": {"enum": [1, 2, 3]}, "flag": {"type": ["boolean", "null"]}, "ratio": {"type": "number"}},
                      "required": ["level"], "additionalProperties": False},
     [({"level": 2}, V), ({"level": 3, "flag": None, "ratio": 0.5}, V), ({"level": 1, "ratio": -2}, V), ({"level": 4}, X), ({"level": 1, "flag": 0}, X)]),
    ("inferred-object", {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
     [({"a": 1}, V), ({"a": 1, "b": 2}, V), ({}, X), ({"a": "1"}, X)]),
]

# (pattern, [(text, expect)]): labelled by re.fullmatch(pattern, text, re.ASCII).
REGEXES = [
    ("[a-c]+x?", [("abc", V), ("abcx", V), ("x", X), ("abcxx", X), ("", X)]),
    ("\\d{3}-\\d{4}", [("555-1234", V), ("55-1234", X), ("555-12345", X)]),
    ("(ab|cd)*e", [("e", V), ("abcde", V), ("cdcdabe", V), ("abc", X), ("ace", X)]),
    ("[^0-9]{2}", [("ab", V), ("é!", V), ("😀\n", V), ("a1", X), ("abc", X)]),
    ("a.c", [("abc", V), ("a😀c", V), ("a\tc", V), ("a\nc", X), ("ac", X)]),
    ("\\w+@\\w+\\.com", [("me@example.com", V), ("a_1@b2.com", V), ("me@example.org", X), ("@x.com", X)]),
    ("colou?r", [("color", V), ("colour", V), ("colouur", X)]),
    ("(?:x|y){2,3}", [("xy", V), ("yyy", V), ("x", X), ("xyxy", X)]),
    ("[\\u00e0-\\u00ff]+", [("àéÿ", V), ("a", X), ("Ā", X)]),
    ("é+ü", [("éü", V), ("ééü", V), ("eü", X)]),
    ("\\.\\*\\\\", [(".*\\", V), ("a*\\", X)]),
    ("a{0}b", [("b", V), ("ab", X)]),
    ("(a|)+b", [("b", V), ("aab", V), ("ac", X)]),
    ("(a*)*b", [("b", V), ("aaab", V), ("aa", X)]),
    ("^\\s*$", [("", V), (" \t\n", V), ("x", X)]),
    ("x{2,}?", [("xx", V), ("xxxxx", V), ("x", X)]),
    ("[-a]+[a-]", [("-a-", V), ("aa", V), ("b", X)]),
    ("\\x41\\u0042", [("AB", V), ("ab", X)]),
    ("[^\\n]*", [("any thing ✓", V), ("", V), ("a\nb", X)]),
    ("😀{2}", [("😀😀", V), ("😀", X)]),
    ("(?P<year>\\d{4})-(?P<m>\\d{2})", [("2024-01", V), ("24-01", X)]),
    ("[\\w.-]+", [("a.b-c_d", V), ("a b", X)]),
    ("(\\d+|[a-f]+)(,(\\d+|[a-f]+)){0,2}", [("1", V), ("1,ab,99", V), ("1,ab,99,3", X), ("g", X), ("1,", X)]),
]


def canonical(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def main():
    out_schemas = []
    problems = []
    for name, schema, cases in SCHEMAS:
        Draft202012Validator.check_schema(schema)
        val = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        insts = []
        for inst, expect in cases:
            ok = val.is_valid(inst)
            if ok != expect:
                problems.append(f"{name}: {canonical(inst)} is {'valid' if ok else 'invalid'} per jsonschema, the hint says otherwise")
            insts.append({"json": canonical(inst), "valid": ok})
        valid = sum(1 for i in insts if i["valid"])
        out_schemas.append({"name": name, "schema": schema, "instances": insts})
        if valid == 0:
            problems.append(f"{name}: no valid instance")
    out_regex = []
    for pattern, cases in REGEXES:
        texts = []
        for text, expect in cases:
            ok = re.fullmatch(pattern, text, re.ASCII) is not None
            if ok != expect:
                problems.append(f"regex {pattern!r}: {text!r} is {'a match' if ok else 'no match'} per re.fullmatch, the hint says otherwise")
            texts.append({"text": text, "match": ok})
        out_regex.append({"pattern": pattern, "texts": texts})
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    doc = {
        "generator": "scripts/make-grammar-fixtures.py",
        "jsonschema": importlib.metadata.version("jsonschema"),
        "schemas": out_schemas,
        "regexes": out_regex,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "Tests", "GrammarTests", "Fixtures", "schema-cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(out_schemas)} schemas, {sum(len(s['instances']) for s in out_schemas)} instances, "
          f"{len(out_regex)} regexes")


if __name__ == "__main__":
    main()
