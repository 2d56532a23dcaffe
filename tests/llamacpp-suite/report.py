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
    ("asserts llama.cpp's system_fingerprint format (its build number, \"b…\")", None, r"startswith"),
    ("llama.cpp-only field {0}", None, r"KeyError: '(system_fingerprint|timings|__verbose|n_probs|completion_probabilities|prompt_progress|tokens|id_slot|timings_per_token)'"),
    ("llama.cpp-only field {0}", None, r"\[['\"](system_fingerprint|timings|__verbose|prompt_progress|timings_per_token)['\"]\]"),
    ("llama.cpp-only field __verbose (its --debug output)", None, r"__verbose"),
    ("llama.cpp-only request field: grammar (GBNF)", r"grammar", None),
    ("llama.cpp-only template option (chat_template / --chat-template-file)", r"chat_template|test_template", None),
    ("llama.cpp-only endpoint (/apply-template, /tokenize, /chat/completions/input_tokens)", r"apply_chat_template|logit_bias|token_count", None),
    ("sends a model name this server does not serve: llama.cpp ignores `model`, autoglm answers 404 model_not_found as OpenAI and vLLM do", None, r"model_not_found|assert 404 == 200"),
    ("llama.cpp-only error type exceed_context_size_error (autoglm: OpenAI's invalid_request_error, code context_length_exceeded)", None, r"exceed_context_size_error"),
    ("llama.cpp-only request field return_progress", r"return_progress", None),
    ("llama.cpp refuses two assistant messages in a row; OpenAI accepts them", r"messages7", None),
    ("the 0.5B stand-in writes the call as bare JSON, without Qwen's <tool_call> tags (the test names the 3B model)", None, r"Expected 1 tool call in \{'content': '\{\"name\""),
    ("the 0.5B stand-in answers in prose instead of calling the tool (tool_choice auto; the test names the 3B model)", None, r"Expected 1 tool call in \{'role': 'assistant', 'content': '[A-Z]"),
    ("llama.cpp-only field timings", None, r"'timings' in"),
    ("a draft-4 tuple `items: [...]` schema: autoglm answers 400 naming the keyword (JSON Schema 2020-12 spells it prefixItems)", r"response_format1-", r"400 == 200"),
    ("asserts the answer of the 3B model the test names (run on the 0.5B stand-in)", r"Qwen2.5-Coder-3B", r"Expected something like"),
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
