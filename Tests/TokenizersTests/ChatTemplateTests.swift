import Foundation
import Testing
import Tokenizers

/// Fixtures made by scripts/make-template-fixtures.py (Python jinja2 with transformers' settings).
enum TemplateFixtures {
    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String { "fixture not found: Fixtures/templates/\(name)" }
    }

    static func url(_ name: String, _ ext: String) throws -> URL {
        guard let u = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/templates") else {
            throw Missing(name: "\(name).\(ext)")
        }
        return u
    }

    static func text(_ name: String, _ ext: String) throws -> String {
        try String(contentsOf: try url(name, ext), encoding: .utf8)
    }

    static func json(_ name: String) throws -> TemplateValue {
        try TemplateValue.parseJSON(try Data(contentsOf: try url(name, "json")))
    }

    /// The instant the fixture script formats with strftime_now (2025-03-07 14:05:09, local time).
    static var fixedNow: Date {
        var c = DateComponents()
        c.year = 2025; c.month = 3; c.day = 7; c.hour = 14; c.minute = 5; c.second = 9
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone.current
        return cal.date(from: c) ?? Date(timeIntervalSince1970: 0)
    }

    static let templates = ["qwen2.5-coder", "qwen3", "llama3.1", "gemma3", "glm-4-9b-chat", "glm-4-0414", "chatglm3"]
}

struct FixtureCase {
    let name: String
    let expected: String?
    let errorKind: String?
    let errorMessage: String?

    init(_ v: TemplateValue) {
        name = v["name"]?.stringValue ?? "?"
        expected = v["expected"]?.stringValue
        errorKind = v["error"]?["kind"]?.stringValue
        errorMessage = v["error"]?["message"]?.stringValue
    }

    /// Checks a render outcome against the fixture; returns a failure text or nil.
    func check(_ result: Result<String, ChatTemplateError>) -> String? {
        switch result {
        case .success(let out):
            guard let expected else { return "\(name): expected error \(errorMessage ?? "?"), rendered \(out.debugDescription)" }
            if out.unicodeScalars.elementsEqual(expected.unicodeScalars) { return nil }
            return "\(name): mismatch\n--- expected\n\(expected.debugDescription)\n--- got\n\(out.debugDescription)"
        case .failure(let err):
            guard expected == nil else { return "\(name): unexpected error \(err)" }
            if errorKind == "raise" {
                guard case .raised(let m) = err, m == errorMessage else { return "\(name): expected raise_exception(\(errorMessage ?? "")), got \(err)" }
            } else if case .raised = err {
                return "\(name): expected a rendering error, got \(err)"
            }
            return nil
        }
    }
}

@Suite("ChatTemplate fixtures")
struct ChatTemplateFixtureTests {
    @Test("real templates render byte-exactly like jinja2", arguments: TemplateFixtures.templates)
    func realTemplate(_ name: String) throws {
        let template = try ChatTemplate(source: try TemplateFixtures.text(name, "jinja"))
        let fixture = try TemplateFixtures.json(name)
        guard case .array(let cases)? = fixture["cases"] else { Issue.record("no cases"); return }
        #expect(cases.count >= 10)
        for c in cases {
            let fc = FixtureCase(c)
            guard case .array(let msgs)? = c["messages"] else { Issue.record("\(fc.name): no messages"); continue }
            let messages = try msgs.map { try ChatMessage(json: $0) }
            var tools: [TemplateValue]? = nil
            if case .array(let t)? = c["tools"] { tools = t }
            var extra: [String: TemplateValue] = [:]
            if case .object(let pairs)? = c["extra"] { for (k, v) in pairs { extra[k] = v } }
            let result = Result { () throws(ChatTemplateError) -> String in
                try template.render(messages: messages, addGenerationPrompt: c["add_generation_prompt"] == .bool(true),
                                    bosToken: c["bos_token"]?.stringValue ?? "", eosToken: c["eos_token"]?.stringValue ?? "",
                                    tools: tools, extra: extra, now: TemplateFixtures.fixedNow)
            }
            if let problem = fc.check(result) { Issue.record("\(name)/\(problem)") }
        }
    }

    @Test("interpreter features render byte-exactly like jinja2")
    func features() throws {
        let fixture = try TemplateFixtures.json("features")
        guard case .array(let cases)? = fixture["cases"] else { Issue.record("no cases"); return }
        #expect(cases.count >= 40)
        for c in cases {
            let fc = FixtureCase(c)
            var extra: [String: TemplateValue] = [:]
            if case .object(let pairs)? = c["context"] { for (k, v) in pairs { extra[k] = v } }
            let result = Result { () throws(ChatTemplateError) -> String in
                let t = try ChatTemplate(source: c["template"]?.stringValue ?? "")
                return try t.render(messages: [], addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>",
                                    extra: extra, now: TemplateFixtures.fixedNow)
            }
            if let problem = fc.check(result) { Issue.record("features/\(problem)") }
        }
    }

    @Test("the Qwen test model's GGUF template is the stored fixture and renders")
    func ggufTemplate() throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        let source = try #require(tok.chatTemplate)
        #expect(source == (try TemplateFixtures.text("qwen2.5-coder", "jinja")))
        #expect(tok.eosText == "<|im_end|>")
        let t = try ChatTemplate(source: source)
        let out = try t.render(messages: [ChatMessage(role: "user", "Hi")], addGenerationPrompt: true,
                               bosToken: tok.bosText, eosToken: tok.eosText)
        #expect(out == "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let gemma = try TestModels.tokenizer(TestModels.gemma)
        #expect(gemma.chatTemplate == nil) // this GGUF carries none; the published template is a fixture
        #expect(gemma.bosText == "<bos>")
    }
}

@Suite("ChatTemplate errors")
struct ChatTemplateErrorTests {
    func parseError(_ source: String) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source: source)
            return nil
        } catch {
            return error
        }
    }

    @Test("unsupported constructs are named with their line", arguments: [
        ("a\n{% include 'x.jinja' %}", "{% include %}", 2),
        ("{% extends 'base' %}", "{% extends %}", 1),
        ("x\ny\n{% raw %}{{ }}{% endraw %}", "{% raw %}", 3),
        ("{% filter upper %}x{% endfilter %}", "{% filter %}", 1),
        ("\n\n\n{{ x | wordwrap(3) }}", "filter 'wordwrap'", 4),
        ("{% if x is divisible %}{% endif %}", "test 'is divisible'", 1),
        ("{{ lipsum(2) }}", "function lipsum()", 1),
        ("\n{{ '{}'.format(1) }}", "method .format()", 2),
        ("{% for x in y recursive %}{% endfor %}", "recursive for loop", 1),
        ("{{ f(*args) }}", "*args/**kwargs in a call", 1),
    ] as [(String, String, Int)])
    func unsupported(_ source: String, _ construct: String, _ line: Int) {
        let e = parseError(source)
        guard case .unsupported(let what, let l, _)? = e else {
            Issue.record("expected unsupported \(construct), got \(String(describing: e))")
            return
        }
        #expect(what == construct)
        #expect(l == line)
        #expect(e?.description.contains(construct) == true)
        #expect(e?.description.contains("line \(line)") == true)
    }

    @Test("syntax errors carry line and column", arguments: [
        ("{% if x %}never closed", 1),
        ("ok\n{{ 1 + }}", 2),
        ("\n\n{% endfor %}", 3),
        ("{{ 'unterminated }}", 1),
        ("a\n{{ x ", 2),
        ("{% for x in %}{% endfor %}", 1),
        ("{# no end", 1),
        ("{% if %}{% endif %}", 1),
        ("{{ x | }}", 1),
        ("{% set %}", 1),
        (String(repeating: "{% if x %}", count: 300), 1),
        ("{{ " + String(repeating: "(", count: 1000) + "1" + String(repeating: ")", count: 1000) + " }}", 1),
        ("{{ " + String(repeating: "-", count: 1000) + "1 }}", 1),
        ("{{ " + String(repeating: "not ", count: 1000) + "1 }}", 1),
    ] as [(String, Int)])
    func syntax(_ source: String, _ line: Int) {
        let e = parseError(source)
        guard case .syntax(_, let l, let c)? = e else {
            Issue.record("expected a syntax error for \(source.debugDescription), got \(String(describing: e))")
            return
        }
        #expect(l == line)
        #expect(c >= 1)
    }

    @Test("runtime errors carry the line; raise_exception carries the message")
    func runtime() throws {
        let t = try ChatTemplate(source: "line one\n{{ missing.attr }}")
        #expect(throws: ChatTemplateError.self) {
            try t.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: "")
        }
        do {
            _ = try t.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: "")
        } catch {
            guard case .runtime(_, let line, _) = error else { Issue.record("expected runtime error, got \(error)"); return }
            #expect(line == 2)
        }
        let r = try ChatTemplate(source: "{% if messages | length == 0 %}{{ raise_exception('need messages') }}{% endif %}")
        #expect(throws: ChatTemplateError.raised(message: "need messages")) {
            try r.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: "")
        }
    }
}

@Suite("ChatTemplate values")
struct ChatTemplateValueTests {
    @Test("JSON parsing keeps key order and types")
    func parseJSON() throws {
        let v = try TemplateValue.parseJSON(#"{"z": 1, "a": [true, null, 1.5, "\u00e9\ud83d\ude00"], "m": {}}"#)
        guard case .object(let pairs) = v else { Issue.record("not an object"); return }
        #expect(pairs.map(\.0) == ["z", "a", "m"])
        #expect(v["a"] == .array([.bool(true), .null, .double(1.5), .string("é😀")]))
        #expect(throws: ChatTemplateError.self) { try TemplateValue.parseJSON("{") }
    }

    @Test("JSONSerialization objects bridge")
    func bridge() throws {
        let obj = try JSONSerialization.jsonObject(with: Data(#"{"b": [1, 2.5, true, "s", null], "a": {"k": false}}"#.utf8))
        let v = try TemplateValue(jsonObject: obj)
        #expect(v == .object([("a", .object([("k", .bool(false))])),
                              ("b", .array([.int(1), .double(2.5), .bool(true), .string("s"), .null]))]))
    }

    @Test("messages: content as text, parts or null; tool fields reach the template")
    func messages() throws {
        let json = try TemplateValue.parseJSON(#"{"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}], "reasoning_content": "r"}"#)
        let m = try ChatMessage(json: json)
        #expect(m.content == .none)
        #expect(m.toolCalls?.count == 1)
        let t = try ChatTemplate(source: "{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.tool_calls[0].function.arguments | tojson }}:{{ m.reasoning_content }}{% endfor %}")
        let out = try t.render(messages: [m], addGenerationPrompt: false, bosToken: "", eosToken: "")
        #expect(out == #"assistant:None:{"x": 1}:r"#)
        let parts = ChatMessage(role: "user", content: .parts([.text("a"), .text("b")]))
        let t2 = try ChatTemplate(source: "{% for p in messages[0].content %}[{{ p.type }}={{ p.text }}]{% endfor %}")
        #expect(try t2.render(messages: [parts], addGenerationPrompt: false, bosToken: "", eosToken: "") == "[text=a][text=b]")
        #expect(throws: ChatTemplateError.self) { try ChatMessage(json: .object([("content", .string("x"))])) }
    }

    @Test("a parsed template renders concurrently")
    func concurrent() async throws {
        let t = try ChatTemplate(source: try TemplateFixtures.text("qwen3", "jinja"))
        let outs = try await withThrowingTaskGroup(of: String.self) { group in
            for k in 0..<8 {
                group.addTask {
                    try t.render(messages: [ChatMessage(role: "user", "q\(k % 2)")], addGenerationPrompt: true, bosToken: "", eosToken: "")
                }
            }
            var r: [String] = []
            for try await o in group { r.append(o) }
            return r
        }
        #expect(Set(outs).count == 2)
    }
}
