#!/usr/bin/env python3
"""Render chat-template fixtures with Python jinja2, the way Hugging Face transformers does.

Writes Tests/TokenizersTests/Fixtures/templates/<name>.json (one per template) and features.json;
the Swift tests (ChatTemplateTests) render the same inputs and compare byte-exactly.

Needs jinja2 (python3 -m pip install --target ~/.cache/autoglm/pydeps jinja2 gguf numpy).

Environment = transformers' `_compile_jinja_template`:
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  globals["raise_exception"] raises TemplateError(message); globals["strftime_now"] formats the time
  render(messages=..., tools=tools or None, documents=None, add_generation_prompt=..., bos_token, eos_token, **extra)

Template sources (stored next to the fixtures as <name>.jinja):
  qwen2.5-coder  - `tokenizer.chat_template` of qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (the test model),
                   read with the gguf package (--from-gguf rewrites it).
  gemma3         - the gemma3-270m test GGUF carries no tokenizer.chat_template; this is the template
                   published with google/gemma-3-270m-it (tokenizer_config.json `chat_template`), as quoted
                   verbatim in public code (e.g. Gemma 3 fine-tuning scripts and transformers' Gemma3 tests).
  qwen3          - Qwen/Qwen3 (Qwen3-0.6B .. Qwen3-8B share it) tokenizer_config.json `chat_template`, as stored
                   in llama.cpp's models/templates/Qwen-Qwen3-0.6B.jinja.
  llama3.1       - meta-llama/Llama-3.1-8B-Instruct tokenizer_config.json `chat_template` (identical text to
                   llama.cpp's models/templates/meta-llama-Llama-3.3-70B-Instruct.jinja; also quoted as a
                   tokenizer_config.json "chat_template" in public repos).
  glm-4-9b-chat  - THUDM/glm-4-9b-chat tokenizer_config.json `chat_template` (same text as the
                   default_chat_template of its tokenization_chatglm.py).
  glm-4-0414     - THUDM/GLM-4-9B-0414 tokenizer_config.json `chat_template`, reassembled from public quotes
                   of the GLM-4-0414 family templates (GGUF conversion logs, SillyTavern's GLM-4 preset PR).
  chatglm3       - THUDM/chatglm3-6b tokenizer_config.json `chat_template` (as in llama.cpp's
                   test-chat-template.cpp and chatglm3-6b revision 103caa40).
"""
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.expanduser("~/.cache/autoglm/pydeps"))

import jinja2  # noqa: E402
from jinja2.ext import loopcontrols  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TokenizersTests", "Fixtures", "templates")
FIXED_NOW = datetime.datetime(2025, 3, 7, 14, 5, 9)  # the Swift tests pass the same instant (local time)


class RaisedException(Exception):
    pass


def make_env():
    def raise_exception(message):
        raise RaisedException(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, messages, add_generation_prompt, bos, eos, tools=None, extra=None):
    try:
        tmpl = ENV.from_string(source)
        text = tmpl.render(messages=messages, tools=tools, documents=None,
                           add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos,
                           **(extra or {}))
        return {"expected": text, "error": None}
    except RaisedException as e:
        return {"expected": None, "error": {"kind": "raise", "message": str(e.args[0])}}
    except Exception as e:  # TypeError, UndefinedError, ...: the Swift side must fail too
        return {"expected": None, "error": {"kind": "other", "message": f"{type(e).__name__}: {e}"}}


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (°C). Returns “quoted” text.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 北京"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "precise": {"type": "boolean", "default": False},
                "threshold": {"type": "number", "default": 0.5},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}}}
CALL = {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
CALL2 = {"type": "function", "id": "call_2", "function": {"name": "get_time", "arguments": {}}}
CALL_STR = {"type": "function", "id": "call_3", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}


def common_cases():
    return [
        ("single_user", [u("Hello!")], True, {}),
        ("system_user", [s("You are a helpful assistant."), u("What is 2+2?")], True, {}),
        ("multi_turn", [s("Be brief."), u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")], True, {}),
        ("ends_with_assistant_no_prompt", [u("Hi"), a("Hello there.")], False, {}),
        ("no_system_multi_turn", [u("One"), a("Two"), u("Three"), a("Four"), u("Five")], True, {}),
        ("unicode", [s("Réponds en français 🇫🇷."), u("你好，世界！ Ünïcödé e\u0301 — “quotes” 😀"), a("こんにちは 👋")], False, {}),
        ("empty_content", [u(""), a(""), u("again")], True, {}),
        ("whitespace_content", [u("  padded \n\n"), a("\n answer \t"), u("\tnext ")], True, {}),
        ("jinja_like_text", [u("{{ not a tag }} {% if %} {# c #} \\n 'single' \"double\" \\ back")], True, {}),
        ("content_parts", [{"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": " Part two."}]}], True, {}),
        ("long_conversation", [s("sys")] + [m for k in range(6) for m in (u(f"question {k}"), a(f"answer {k}"))] + [u("last")], True, {}),
        ("no_prompt_single_user", [u("No generation prompt here.")], False, {}),
    ]


def cases_for(name):
    cs = common_cases()
    if name in ("qwen2.5-coder", "qwen3"):
        cs += [
            ("tools_no_system", [u("Weather in Paris?")], True, {"tools": [WEATHER_TOOL, TIME_TOOL]}),
            ("tools_with_system", [s("You are a weather bot."), u("Weather in Paris?")], True, {"tools": [WEATHER_TOOL]}),
            ("tool_call_round_trip", [u("Weather and time?"),
                                      {"role": "assistant", "content": "", "tool_calls": [CALL, CALL2]},
                                      {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "call_1"},
                                      {"role": "tool", "content": "14:05", "tool_call_id": "call_2"},
                                      a("It is 21°C and 14:05.")], False, {"tools": [WEATHER_TOOL, TIME_TOOL]}),
            ("tool_call_with_text", [u("Weather?"), {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]},
                                     {"role": "tool", "content": "sunny"}], True, {"tools": [WEATHER_TOOL]}),
            ("system_not_first", [u("Hi"), s("Late system"), u("Hey")], True, {}),
        ]
    if name == "qwen3":
        cs += [
            ("thinking_in_content", [u("2+2?"), a("<think>\nadd them\n</think>\n\n4"), u("3+3?"), a("<think>six</think>6")], False, {}),
            ("reasoning_content_field", [u("q"), {"role": "assistant", "content": "final", "reasoning_content": "because"}], False, {}),
            ("enable_thinking_false", [u("Quick answer please")], True, {"extra": {"enable_thinking": False}}),
            ("enable_thinking_true", [u("Think hard")], True, {"extra": {"enable_thinking": True}}),
            ("string_arguments", [u("Oslo?"), {"role": "assistant", "content": "", "tool_calls": [CALL_STR]}], False, {"tools": [WEATHER_TOOL]}),
            ("null_content_error", [u("q"), {"role": "assistant", "content": None, "tool_calls": [CALL]}], False, {}),
            ("user_tool_response_text", [u("<tool_response>x</tool_response>"), a("ok")], True, {}),
        ]
    if name == "llama3.1":
        cs += [
            ("tools_in_user_message", [s("Use tools."), u("Weather in Paris?")], True, {"tools": [WEATHER_TOOL]}),
            ("tools_in_system", [u("Weather in Paris?")], True, {"tools": [WEATHER_TOOL, TIME_TOOL], "extra": {"tools_in_user_message": False}}),
            ("tool_call_and_result", [u("Weather?"), {"role": "assistant", "content": "", "tool_calls": [CALL]},
                                      {"role": "tool", "content": "{\"temp\": 21}"}, a("21 degrees.")], True, {"tools": [WEATHER_TOOL]}),
            ("ipython_role", [u("Run it"), {"role": "ipython", "content": "result: 42"}], True, {}),
            ("tool_content_dict_like", [u("q"), {"role": "tool", "content": [{"type": "text", "text": "x"}]}], True, {}),
            ("two_tool_calls_raise", [u("Both?"), {"role": "assistant", "content": "", "tool_calls": [CALL, CALL2]}], True, {"tools": [WEATHER_TOOL]}),
            ("tools_without_user_raise", [s("only system")], True, {"tools": [WEATHER_TOOL]}),
            ("builtin_tools", [u("Search"), {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "swift jinja"}}}]}],
             True, {"extra": {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}}),
            ("custom_date", [u("What day is it?")], True, {"extra": {"date_string": "01 Dec 2026"}}),
        ]
    if name == "gemma3":
        cs += [
            ("roles_not_alternating_raise", [u("a"), u("b")], True, {}),
            ("assistant_first_raise", [a("I start"), u("no")], True, {}),
            ("system_as_parts", [{"role": "system", "content": [{"type": "text", "text": "Sys in parts."}]}, u("Hi")], True, {}),
            ("image_part", [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe this. "}]}], True, {}),
            ("tool_role_raise", [u("q"), a("a"), {"role": "tool", "content": "x"}], True, {}),
        ]
    if name == "glm-4-9b-chat":
        cs += [
            ("tools_in_system_message", [{"role": "system", "content": "", "tools": [WEATHER_TOOL, {"type": "python"}, {"type": "simple_browser"}, {"type": "cogview"}]},
                                         u("北京天气？")], True, {}),
            ("observation", [u("Weather?"), {"role": "assistant", "metadata": "get_weather", "content": "{\"city\": \"Paris\"}"},
                             {"role": "observation", "content": "{\"temp\": 21}"}], True, {}),
            ("metadata_empty", [u("q"), {"role": "assistant", "metadata": "", "content": "plain"}], True, {}),
        ]
    if name == "glm-4-0414":
        cs += [
            ("tools_list", [s("You can call tools."), u("北京天气？")], True, {"tools": [WEATHER_TOOL, TIME_TOOL["function"]]}),
            ("observation", [u("Weather?"), {"role": "assistant", "metadata": "get_weather", "content": "{\"city\": \"Paris\"}"},
                             {"role": "observation", "content": "{\"temp\": 21}"}], True, {"tools": [WEATHER_TOOL]}),
            ("two_systems", [s("first"), u("q"), s("second")], True, {}),
        ]
    if name == "chatglm3":
        cs += [
            ("observation_role", [u("q"), {"role": "observation", "content": "obs"}], True, {}),
        ]
    return cs


TEMPLATES = {
    "qwen2.5-coder": ("<|endoftext|>", "<|im_end|>"),
    "qwen3": ("", "<|im_end|>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "gemma3": ("<bos>", "<eos>"),
    "glm-4-9b-chat": ("", "<|endoftext|>"),
    "glm-4-0414": ("", "<|endoftext|>"),
    "chatglm3": ("", "</s>"),
}


# Synthetic templates covering the interpreter's constructs, each rendered by jinja2.
FEATURES = [
    ("text_only", "plain text\n", {}),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc", {}),
    ("lstrip_plus", "a\n    {%+ if true %}x{% endif %}", {}),
    ("dash_controls", "a   {{- 'b' -}}   c \n {%- if true -%} \n d {%- endif %}", {}),
    ("comment_trim", "x\n  {# comment #}\ny {#- c2 -#} z", {}),
    ("var_no_trim", "{{ 'a' }}\nb", {}),
    ("plus_end", "{% if true +%}\nkept{% endif %}", {}),
    ("for_loop_vars", "{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ x }};{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("for_else", "{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    ("for_filter", "{% for x in xs if x % 2 == 0 %}{{ x }}{{ loop.index }},{% endfor %}", {"xs": [1, 2, 3, 4, 6]}),
    ("for_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}[{{ k }}:{{ v }}]{% endfor %}", {"d": {"b": 1, "a": [1, 2], "c": None}}),
    ("loop_prev_next_cycle", "{% for x in xs %}{{ loop.previtem | default('^') }}{{ x }}{{ loop.nextitem | default('$') }}{{ loop.cycle('o', 'e') }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("break_continue", "{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}{% if true %}{% set y = 5 %}{% endif %}|{{ y }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("set_block", "{% set body %}[{{ 1 + 2 }}]{% endset %}{{ body }}{{ body | length }}", {}),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", {}),
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 3.0 }} {{ 10 / 5 }}", {}),
    ("string_ops", "{{ 'ab' ~ 1 ~ none }} {{ 'x' * 3 }} {{ 'abc'[1] }} {{ 'hello'[1:4] }} {{ 'hello'[::-1] }} {{ 'hello'[-2:] }}", {}),
    ("list_ops", "{{ [1, 2] + [3] }} {{ xs[1:] }} {{ xs[::-1] }} {{ xs[-1] }} {{ xs | length }} {{ xs | first }} {{ xs | last }} {{ xs[10] is defined }}", {"xs": [1, 2, 3, 4]}),
    ("comparisons", "{{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'x' in 'xyz' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ [1, 2] == [1, 2] }} {{ none == none }}", {}),
    ("logic", "{{ true and 'x' }} {{ false or 'y' }} {{ not 0 }} {{ '' or 'default' }} {{ 'a' if false else 'b' }} {{ 'a' if true }}|{{ 'a' if false }}|", {}),
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ x is string }} {{ 3 is number }} {{ 3 is integer }} {{ 3.5 is float }} {{ d is mapping }} {{ x is iterable }} {{ xs is sequence }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ x is equalto 'hi' }} {{ x is not none }} {{ true is true }} {{ false is false }} {{ 1 is true }} {{ true is boolean }} {{ n is iterable }}", {"x": "hi", "n": None, "d": {}, "xs": [1]}),
    ("filters_strings", "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hi' | upper }}|{{ 'Hi' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'abc' | replace('', '.') }}|{{ 'x' | length }}|{{ 'héllo' | length }}|{{ 'a<b>&\"c\\'' | e }}", {}),
    ("filters_lists", "{{ xs | join(', ') }}|{{ xs | reverse | list }}|{{ xs | sort }}|{{ xs | sort(reverse=true) }}|{{ xs | unique | list }}|{{ xs | sum }}|{{ xs | min }}|{{ xs | max }}|{{ ws | map('upper') | join }}|{{ ws | select('equalto', 'b') | list }}|{{ ws | reject('equalto', 'b') | list }}", {"xs": [3, 1, 2, 3], "ws": ["a", "b", "c"]}),
    ("filters_attr", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}|{{ ms | map(attribute='missing', default='?') | join }}|{{ ms | selectattr('flag') | list | length }}|{{ ms | join('/', attribute='role') }}", {"ms": [{"role": "user", "content": "a", "flag": True}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}),
    ("filters_default", "{{ missing | default('dflt') }}|{{ '' | default('empty') }}|{{ '' | default('empty', true) }}|{{ none | default('n') }}|{{ missing | d('x') }}", {}),
    ("filters_numbers", "{{ '42' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 7 | string }}{{ 1 }}", {}),
    ("tojson", "{{ d | tojson }}\n{{ d | tojson(indent=2) }}\n{{ d | tojson(indent=4, ensure_ascii=True) }}\n{{ d | tojson(sort_keys=true) }}\n{{ d | tojson(separators=(',', ':')) }}\n{{ 'x\"\\\\\n\t\u0001é' | tojson }}\n{{ [] | tojson }}{{ {} | tojson(indent=2) }}{{ none | tojson }}{{ 1.0 | tojson }}", {"d": {"z": 1, "a": [True, None, 1.5, "ü😀"], "m": {"k": {}}, "e": []}}),
    ("string_methods", "{{ s.startswith('He') }} {{ s.endswith(('x', 'd!')) }} {{ s.split() }} {{ s.split('l') }} {{ s.split('l', 1) }} {{ s.rsplit('l', 1) }} {{ '  x '.strip() }}|{{ 'xxhixx'.lstrip('x') }}|{{ 'xxhixx'.rstrip('x') }} {{ s.upper() }} {{ s.lower() }} {{ s.replace('l', 'L', 2) }} {{ s.find('o') }} {{ s.count('l') }} {{ '-'.join(['a', 'b']) }} {{ s.title() }} {{ 'a\\nb\\n'.splitlines() }}", {"s": "Hello World!"}),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d['a'] }} {{ d.a }} {{ d.missing is defined }}", {"d": {"a": 1, "b": "two"}}),
    ("printing", "{{ none }}|{{ true }}|{{ [1, 'a', none, 1.5, true] }}|{{ {'k': 'v', 'n': [1]} }}|{{ \"it's\" }}|{{ ['it\\'s', 'q\"'] }}|{{ missing }}|", {}),
    ("literals", "{{ 'a' 'b' }}|{{ \"\\u00e9\\x41\\t|\" }}|{{ (1, 2) | list }}|{{ [1, [2, 3]][1][0] }}|{{ {'a': {'b': 'c'}}.a.b }}|{{ 1_000 }}", {}),
    ("strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %-d %j %I%p') }}", {}),
    ("raise", "{% if true %}{{ raise_exception('custom failure: ' ~ 42) }}{% endif %}", {}),
    ("undefined_attr_error", "{{ missing.attr }}", {}),
    ("type_error_add", "{{ 'a' + 1 }}", {}),
    ("none_attribute", "{{ n.x is defined }}|{{ n.x }}|", {"n": None}),
    ("nested_loops", "{% for row in rows %}{% for c in row %}{{ loop.index }}{{ c }}{% endfor %}|{{ loop.index }};{% endfor %}", {"rows": [["a", "b"], ["c"]]}),
    ("whitespace_mix", "<s>\n{%- for m in ms %}\n  {{ m }}\n  {%- if not loop.last %},{% endif %}\n{% endfor %}\n</s>\n", {"ms": ["x", "y"]}),
    ("dictsort_batch_indent", "{{ d | dictsort }}|{{ [1, 2, 3] | batch(2) | list }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a b  c' | wordcount }}", {"d": {"b": 2, "a": 1}}),
    ("macro_scope", "{% set greeting = 'Hi' %}{% macro hello(n) %}{{ greeting }} {{ n }}{% for i in range(2) %}.{% endfor %}{% endmacro %}{{ hello('x') }}|{{ hello(n='y') | upper }}", {}),
    ("precedence", "{{ 'a' ~ 'b' | upper }}|{{ not true == false }}|{{ 2 * 3 ** 2 }}|{{ -2 ** 2 }}|{{ 1 - 2 - 3 }}|{{ 'x' if 1 > 2 else 'y' if 2 > 1 else 'z' }}|{{ [1, 2, 3] | length > 2 }}", {}),
    ("lstrip_comment_line", "a\n  {#- c #}\nb\n   {# d #}\nc", {}),
    ("unicode_slicing", "{{ s[0] }}|{{ s | length }}|{{ s[::-1] }}|{{ s[1:3] }}|{{ s.upper() }}", {"s": "e\u0301😀ß"}),
    ("repr_strings", "{{ ['a\\nb', 'é', \"it's\", 'q\"', '\\\\'] }}|{{ {'k': none, 'b': false} }}|{{ ('one',) }}", {}),
    ("float_printing", "{{ 1.0 * 3 }} {{ 2 ** -1 }} {{ 10 // 3.0 }} {{ 1e16 }} {{ 9e15 }} {{ 12345678.9 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1 / 3 }} {{ 2.5e-3 }} {{ -0.0 }}", {}),
    ("undefined_loop_else", "{% for x in missing %}x{% else %}none{% endfor %}|{{ missing | length }}|{{ missing ~ 'x' }}|{{ missing is sequence }}", {}),
    ("if_elif_chain", "{% for n in [0, 1, 2, 3] %}{% if n == 0 %}zero{% elif n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("dash_lines", "start\n{%- for i in [1, 2] -%}\n   item{{ i }}\n{%- endfor -%}\n  end  \n{{- ' tail' }}", {}),
    ("nested_namespace_loop", "{% set ns = namespace(found=false, idx=-1) %}{% for m in ms[::-1] %}{% if not ns.found and m.role == 'user' %}{% set ns.found = true %}{% set ns.idx = ms | length - 1 - loop.index0 %}{% endif %}{% endfor %}{{ ns.idx }}", {"ms": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}, {"role": "tool"}]}),
    ("items_tuple_print", "{{ d | items | list }}|{{ d.items() | list | first }}|{% for p in d | items %}{{ p[0] }}{{ p[1] }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("in_operator_none_default", "{{ 'x' in ms[0] }} {{ ms[0].get('x', none) is none }}", {"ms": [{"y": 1}]}),
]


def main():
    if "--from-gguf" in sys.argv:
        from gguf import GGUFReader
        path = os.path.expanduser("~/.cache/autoglm/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
        f = GGUFReader(path).fields["tokenizer.chat_template"]
        with open(os.path.join(OUT, "qwen2.5-coder.jinja"), "w", encoding="utf-8") as fh:
            fh.write(bytes(f.parts[f.data[0]]).decode("utf-8"))
    total = 0
    for name, (bos, eos) in TEMPLATES.items():
        with open(os.path.join(OUT, name + ".jinja"), encoding="utf-8") as fh:
            source = fh.read()
        cases = []
        for case_name, messages, agp, opts in cases_for(name):
            r = render(source, messages, agp, bos, eos, tools=opts.get("tools"), extra=opts.get("extra"))
            cases.append({"name": case_name, "messages": messages, "add_generation_prompt": agp,
                          "bos_token": bos, "eos_token": eos, "tools": opts.get("tools"),
                          "extra": opts.get("extra", {}), **r})
        total += len(cases)
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as fh:
            json.dump({"template": name + ".jinja", "cases": cases}, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
        errs = sum(1 for c in cases if c["error"])
        print(f"{name}: {len(cases)} cases ({errs} expected errors)")
    feats = []
    for fname, source, ctx in FEATURES:
        r = render(source, [], False, "<s>", "</s>", extra=ctx)
        feats.append({"name": fname, "template": source, "context": ctx, **r})
    with open(os.path.join(OUT, "features.json"), "w", encoding="utf-8") as fh:
        json.dump({"cases": feats}, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    print(f"features: {len(feats)} cases; total {total + len(feats)}")


if __name__ == "__main__":
    main()
