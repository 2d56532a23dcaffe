import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import Testing

/// response_format, vLLM's guided_* fields and tools through the HTTP API: bad input refused
/// with the OpenAI error shape, constrained outputs in their language, tool calls read back.
@Suite(.serialized) struct StructuredOutputTests {
    nonisolated(unsafe) static var qwen: LoadedModel?
    static let lock = NSLock()

    /// A server over Qwen 2.5 Coder Instruct (its template shows tools; hermes-style calls).
    static func qwenServer() throws -> OpenAIServer? {
        let dir = ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
        let p = dir + "/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        guard FileManager.default.fileExists(atPath: p) else {
            Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
            return nil
        }
        let lm: LoadedModel = try lock.withLock {
            if let m = qwen { return m }
            let m = try LoadedModel(path: p, threads: 2)
            qwen = m
            return m
        }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 128, kvCacheMB: 64, contextLength: 1024))
        var c = ServerConfig()
        c.servedModelName = "qwen-test"
        return OpenAIServer(scheduler: s, config: c, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    static let weather = #"{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}"#

    @Test func badInputIsA400NamingTheField() async throws {
        guard let s = try Fixture.server() else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        let msgs = #""messages": [{"role": "user", "content": "hi"}]"#
        let cases: [(String, String, String)] = [
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "xml"}}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_schema"}}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "response_format": "json"}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_object"}, "guided_regex": "a+"}"#, "guided_regex"),
            ("/v1/chat/completions", #"{\#(msgs), "guided_grammar": "root ::= \"a\""}"#, "guided_grammar"),
            ("/v1/chat/completions", #"{\#(msgs), "guided_choice": []}"#, "guided_choice"),
            ("/v1/chat/completions", #"{\#(msgs), "guided_json": "{not json"}"#, "guided_json"),
            ("/v1/chat/completions", #"{\#(msgs), "tools": {"type": "function"}}"#, "tools"),
            ("/v1/chat/completions", #"{\#(msgs), "tools": [{"type": "retrieval"}]}"#, "tools"),
            ("/v1/chat/completions", #"{\#(msgs), "tools": [{"type": "function", "function": {"name": "a b"}}]}"#, "tools"),
            ("/v1/chat/completions", #"{\#(msgs), "tools": [\#(Self.weather)], "tool_choice": {"type": "function", "function": {"name": "nope"}}}"#, "tool_choice"),
            ("/v1/chat/completions", #"{\#(msgs), "tool_choice": "required"}"#, "tool_choice"),
            ("/v1/chat/completions", #"{\#(msgs), "tools": [\#(Self.weather)], "tool_choice": "sometimes"}"#, "tool_choice"),
            ("/v1/chat/completions", #"{"messages": [{"role": "tool", "content": "22 C"}]}"#, "messages"),
            ("/v1/chat/completions", #"{"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]}]}"#, "messages"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x", "tool_calls": []}]}"#, "messages"),
            ("/v1/completions", #"{"prompt": "x", "tools": [\#(Self.weather)]}"#, "tools"),
            // llama.cpp's extensions: a schema beside json_object, a top-level json_schema.
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_object", "schema": 123}}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_object", "schema": {"type": "hiccup"}}}"#, "response_format"),
            ("/v1/chat/completions", #"{\#(msgs), "json_schema": 5}"#, "json_schema"),
            ("/v1/chat/completions", #"{\#(msgs), "json_schema": {"type": 123}}"#, "json_schema"),
            ("/v1/chat/completions", #"{\#(msgs), "json_schema": {"const": 1}, "guided_json": {"const": 1}}"#, "json_schema"),
        ]
        try await app.test(.router) { c in
            for (path, body, param) in cases {
                let (st, v, text) = try await post(c, path, body)
                #expect(st == .badRequest, "\(body) → \(st) \(text)")
                #expect(v?["error"]?["param"]?.string == param, "\(body) → \(text)")
                #expect(v?["error"]?["type"]?.string == "invalid_request_error", "\(text)")
                #expect((v?["error"]?["message"]?.string ?? "").count > 10, "\(text)")
            }
            #expect(s.scheduler.stats.waiting == 0 && s.scheduler.stats.running == 0)
        }
    }

    /// Degenerate formats: one no text can satisfy is a 400 naming the field; one only the empty
    /// text satisfies answers "" with finish_reason stop. The engine lives through all of them.
    @Test func formatsAdmittingNothingOrOnlyEmptyText() async throws {
        guard let s = try Fixture.server() else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        let refused: [(String, String)] = [
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": []}}}"#, "response_format"),
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"anyOf": []}}}"#, "response_format"),
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}"#, "response_format"),
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": []}}}"#, "response_format"),
            (#""guided_json": false"#, "guided_json"),
            (#""guided_regex": "[^\\x00-\\x{10FFFF}]""#, "guided_regex"),
            (#""guided_regex": "[]""#, "guided_regex"),
            // Compiled, but no text matches: refused as admitting nothing (not cut at its dead end).
            (#""guided_regex": "[^\\s\\S]""#, "guided_regex"),
            (#""guided_regex": "a[^\\d\\D]b""#, "guided_regex"),
        ]
        let onlyEmpty = [#""guided_regex": """#, #""guided_regex": "a{0}""#, #""guided_choice": [""]"#]
        try await app.test(.router) { c in
            for (format, param) in refused {
                let (st, v, text) = try await post(c, "/v1/completions", #"{"prompt": "x", "max_tokens": 4, \#(format)}"#)
                #expect(st == .badRequest, "\(format) → \(st) \(text)")
                #expect(v?["error"]?["param"]?.string == param, "\(format) → \(text)")
                if format.contains("[^\\\\s") || format.contains("[^\\\\d") {
                    #expect(v?["error"]?["message"]?.string?.contains("admits no text") == true, "\(format) → \(text)")
                }
            }
            for format in onlyEmpty {
                let (st, v, text) = try await post(c, "/v1/completions", #"{"prompt": "x", "max_tokens": 4, \#(format)}"#)
                #expect(st == .ok, "\(format) → \(st) \(text)")
                #expect(v?["choices"]?.array?.first?["text"]?.string == "", "\(format) → \(text)")
                #expect(v?["choices"]?.array?.first?["finish_reason"]?.string == "stop", "\(format) → \(text)")
            }
            let (st, v, text) = try await post(c, "/v1/completions", #"{"prompt": "x", "max_tokens": 3, "temperature": 0}"#)
            #expect(st == .ok && v?["usage"]?["completion_tokens"]?.int == 3, "\(text)")
            #expect(s.scheduler.stats.waiting == 0 && s.scheduler.stats.running == 0)
        }
    }

    /// `tool_choice: required` makes the model call a tool: the answer has `tool_calls` (the
    /// name, arguments that are JSON matching the parameters) and finish_reason tool_calls; the
    /// stream carries the same call in `delta.tool_calls`; the result fed back gives an answer.
    @Test func requiredToolCallRoundTrip() async throws {
        guard let s = try Self.qwenServer() else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        let ask = #""messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": [\#(Self.weather)], "temperature": 0, "max_tokens": 80"#
        try await app.test(.router) { c in
            let (st, v, text) = try await post(c, "/v1/chat/completions", #"{\#(ask), "tool_choice": "required"}"#)
            #expect(st == .ok, "\(text)")
            let choice = v?["choices"]?.array?.first
            #expect(choice?["finish_reason"]?.string == "tool_calls", "\(text)")
            let call = choice?["message"]?["tool_calls"]?.array?.first
            #expect(call?["type"]?.string == "function")
            #expect(call?["id"]?.string?.hasPrefix("call_") == true)
            #expect(call?["function"]?["name"]?.string == "get_weather", "\(text)")
            let argsText = call?["function"]?["arguments"]?.string ?? ""
            let args = JSONValue.parse(argsText)
            #expect(args?["city"]?.string != nil, "\(argsText)")
            #expect(["celsius", "fahrenheit"].contains(args?["unit"]?.string ?? ""), "\(argsText)")

            // Streamed: the same call, in delta.tool_calls, and finish_reason tool_calls.
            let (_, _, sse) = try await post(c, "/v1/chat/completions", #"{\#(ask), "tool_choice": "required", "stream": true}"#)
            var name = "", arguments = "", finish = ""
            for line in sse.split(separator: "\n") where line.hasPrefix("data: {") {
                let chunk = JSONValue.parse(String(line.dropFirst(6)))
                let ch = chunk?["choices"]?.array?.first
                if let f = ch?["finish_reason"]?.string { finish = f }
                for d in ch?["delta"]?["tool_calls"]?.array ?? [] {
                    #expect(d["index"]?.int == 0)
                    name += d["function"]?["name"]?.string ?? ""
                    arguments += d["function"]?["arguments"]?.string ?? ""
                }
            }
            #expect(name == "get_weather" && arguments == argsText, "\(sse)")
            #expect(finish == "tool_calls")

            // The result goes back through the template; the model answers in prose.
            let id = call?["id"]?.string ?? ""
            let back = #"{"messages": [{"role": "user", "content": "What is the weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "\#(id)", "type": "function", "function": {"name": "get_weather", "arguments": \#(JSONValue.string(argsText).serialized())}}]}, {"role": "tool", "tool_call_id": "\#(id)", "content": "{\"temperature\": 21}"}], "tools": [\#(Self.weather)], "temperature": 0, "max_tokens": 40}"#
            let (st2, v2, text2) = try await post(c, "/v1/chat/completions", back)
            #expect(st2 == .ok, "\(text2)")
            let m2 = v2?["choices"]?.array?.first?["message"]
            #expect((m2?["content"]?.string ?? "").isEmpty == false, "\(text2)")

            // tool_choice none: no tool calls, plain content.
            let (_, v3, text3) = try await post(c, "/v1/chat/completions", #"{\#(ask), "tool_choice": "none"}"#)
            #expect(v3?["choices"]?.array?.first?["message"]?["tool_calls"] == nil, "\(text3)")
            #expect(v3?["choices"]?.array?.first?["finish_reason"]?.string != "tool_calls")
        }
    }

    /// guided_choice and a json_schema response_format hold on a real model.
    @Test func constrainedFormats() async throws {
        guard let s = try Self.qwenServer() else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        let msgs = #""messages": [{"role": "user", "content": "Describe a cat as JSON."}], "max_tokens": 120"#
        try await app.test(.router) { c in
            let (_, v, text) = try await post(c, "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Is the sky blue?"}], "guided_choice": ["yes", "no", "it depends"], "max_tokens": 10}"#)
            #expect(["yes", "no", "it depends"].contains(v?["choices"]?.array?.first?["message"]?["content"]?.string ?? ""), "\(text)")
            let schema = #"{"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}, "indoor": {"type": "boolean"}}, "required": ["name", "age", "indoor"], "additionalProperties": false}"#
            for temperature in [0.0, 1.0] {
                let (st, v2, text2) = try await post(c, "/v1/chat/completions", #"{\#(msgs), "temperature": \#(temperature), "seed": 7, "response_format": {"type": "json_schema", "json_schema": {"name": "cat", "strict": true, "schema": \#(schema)}}}"#)
                #expect(st == .ok, "\(text2)")
                let content = v2?["choices"]?.array?.first?["message"]?["content"]?.string ?? ""
                #expect(v2?["choices"]?.array?.first?["finish_reason"]?.string == "stop", "\(text2)")
                let obj = JSONValue.parse(content)
                #expect(obj?["name"]?.string != nil && obj?["age"]?.int != nil && obj?["indoor"]?.bool != nil, "\(content)")
                #expect(obj?.object?.count == 3, "\(content)")
                #expect((obj?["name"]?.string?.count ?? 99) <= 20, "\(content)")
            }
            let (_, v3, text3) = try await post(c, "/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_object"}}"#)
            #expect(JSONValue.parse(v3?["choices"]?.array?.first?["message"]?["content"]?.string ?? "")?.object != nil, "\(text3)")
            // OpenAI's system_fingerprint names the configuration: the same on every answer of one server.
            let fingerprint = v3?["system_fingerprint"]?.string ?? ""
            #expect(fingerprint.hasPrefix("fp_") && fingerprint.count == 15, "\(text3)")
            // llama.cpp's extensions: json_object with a schema, a top-level json_schema.
            for extra in [#""response_format": {"type": "json_object", "schema": {"const": "42"}}"#, #""json_schema": {"const": "42"}"#] {
                let (st, v5, text5) = try await post(c, "/v1/chat/completions", #"{\#(msgs), \#(extra)}"#)
                #expect(st == .ok && v5?["choices"]?.array?.first?["message"]?["content"]?.string == #""42""#, "\(extra) → \(text5)")
            }
            // A stream: every chunk carries the fingerprint; no delta has empty content (the role
            // chunk's content is null, as llama.cpp's test client requires); the text is JSON.
            let (_, _, sse) = try await post(c, "/v1/chat/completions", #"{\#(msgs), "response_format": {"type": "json_object"}, "stream": true}"#)
            var streamed = "", chunks = 0
            for line in sse.split(separator: "\n") where line.hasPrefix("data: {") {
                let chunk = JSONValue.parse(String(line.dropFirst(6)))
                chunks += 1
                #expect(chunk?["system_fingerprint"]?.string == fingerprint, "\(line)")
                let delta = chunk?["choices"]?.array?.first?["delta"]
                if let text = delta?["content"]?.string {
                    #expect(!text.isEmpty, "\(line)")
                    streamed += text
                }
            }
            #expect(chunks > 2 && JSONValue.parse(streamed)?.object != nil, "\(sse)")
            let (_, v4, text4) = try await post(c, "/v1/completions", #"{"prompt": "The code is ", "guided_regex": "[A-Z]{3}-[0-9]{4}", "max_tokens": 20}"#)
            let code = v4?["choices"]?.array?.first?["text"]?.string ?? ""
            #expect(code.wholeMatch(of: /[A-Z]{3}-[0-9]{4}/) != nil, "\(text4)")
        }
    }
}
