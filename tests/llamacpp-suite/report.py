"""Markdown table of the llama.cpp server tests that do not pass against `autoglm serve`.

What: reads the junit xml that scripts/test-llamacpp-suite.sh writes and prints, for each test
that failed, errored or was skipped, one row with a one-line reason category and the assertion
(first line), then a count per category. The categories come from the rules below, in order, on the
failure text, the test name and the llama.cpp-only server fields the test set (the
autoglm_unmapped property the plugin records).

How to run: python3 tests/llamacpp-suite/report.py JUNIT.xml [--json]  (--json prints the rows
as a JSON list instead: test, outcome, category, detail).
"""
import collections
import json
import re
import sys
import xml.etree.ElementTree as ET

# (category, test-name regex or None, failure-text regex or None); the first rule that matches wins.
# A rule matches when every regex it has matches. {0} in a category is replaced by the text's first group.
RULES = [
    ("adapter: server did not start", None, r"autoglm serve (exited|not ready)"),
    ("timeout: the test's own HTTP limit (60 s in test_tool_call) passed on this CPU server", None, r"ReadTimeout|Read timed out"),
    ("autoglm streams an empty content delta (\"content\": \"\"), llama.cpp's client rejects it", None, r"Expected non empty content delta"),
    ("llama.cpp-only field {0}", None, r"KeyError: '(system_fingerprint|timings|__verbose|n_probs|completion_probabilities|prompt_progress|tokens|id_slot|timings_per_token)'"),
    ("llama.cpp-only field {0}", None, r"\[['\"](system_fingerprint|timings|__verbose|prompt_progress|timings_per_token)['\"]\]"),
    ("llama.cpp-only request field: grammar (GBNF)", r"grammar", None),
    ("llama.cpp-only template option (chat_template / --chat-template-file)", r"chat_template|apply_chat_template|test_template", None),
    ("needs feature not yet built: tool calling (tools / tool_choice / tool_calls)", r"tool", r"tool.?call|Expected 1 tool call|tool_calls"),
    ("needs feature not yet built: structured outputs (response_format / json_schema)", r"response_format|json_schema", None),
    ("asserts token counts of llama.cpp's model (stories260K)", None, r"(prompt_tokens|completion_tokens|n_prompt|n_predicted|cached_tokens).*|assert \d+ == \d+"),
    ("asserts content of llama.cpp's model (stories260K)", None, r"Expected .* got|match_regex"),
    ("llama.cpp-only endpoint or status", None, r"404|405|status_code"),
    ("needs a request field autoglm does not accept yet: {0}", None, r"unknown (?:field|parameter)[^'\"]*['\"]([a-z_]+)"),
]


def classify(name, text, unmapped):
    for category, name_re, text_re in RULES:
        m_name = re.search(name_re, name) if name_re else True
        m_text = re.search(text_re, text, re.S) if text_re else None
        if name_re and not m_name:
            continue
        if text_re and not m_text:
            continue
        return category.format(*(m_text.groups() if m_text and m_text.groups() else ("",)))
    if unmapped:
        return "llama.cpp-only server option set: " + unmapped
    return "other"


def rows(path):
    root = ET.parse(path).getroot()
    out, counts = [], collections.Counter()
    for case in root.iter("testcase"):
        name = case.get("name", "")
        for outcome in ("failure", "error", "skipped"):
            el = case.find(outcome)
            if el is not None:
                break
        else:
            counts["passed"] += 1
            continue
        counts[outcome] += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        text = (el.get("message") or "") + "\n" + (el.text or "")
        detail = next((l.strip() for l in (el.get("message") or el.text or "").splitlines() if l.strip()), "")
        category = "skipped by the test itself" if outcome == "skipped" else classify(name, text, props.get("autoglm_unmapped", ""))
        out.append({"test": f"{case.get('classname', '').split('.')[-1]}::{name}", "outcome": outcome,
                    "category": category, "detail": detail[:160], "unmapped": props.get("autoglm_unmapped", "")})
    return out, counts


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: report.py JUNIT.xml [--json]")
    table, counts = rows(args[0])
    if "--json" in sys.argv:
        print(json.dumps(table, indent=1))
        return
    total = sum(counts.values())
    print(f"llama.cpp server tests against autoglm serve: {counts['passed']} passed, "
          f"{counts['failure'] + counts['error']} failed, {counts['skipped']} skipped of {total}\n")
    print("| test | outcome | reason category | detail |")
    print("| --- | --- | --- | --- |")
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")
    for r in table:
        print(f"| `{esc(r['test'])}` | {r['outcome']} | {esc(r['category'])} | {esc(r['detail'])} |")
    print("\n| reason category | tests |")
    print("| --- | --- |")
    for cat, n in collections.Counter(r["category"] for r in table).most_common():
        print(f"| {esc(cat)} | {n} |")


if __name__ == "__main__":
    main()
