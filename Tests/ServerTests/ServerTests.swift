import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Server
import Testing

enum Fixture {
    static var modelPath: String? {
        let dir = ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
        let p = dir + "/gemma3-270m-q4_k_m.gguf"
        if FileManager.default.fileExists(atPath: p) { return p }
        Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
        return nil
    }

    nonisolated(unsafe) static var loaded: LoadedModel?
    static let lock = NSLock()

    static func model() throws -> LoadedModel? {
        guard let p = modelPath else { return nil }
        lock.lock(); defer { lock.unlock() }
        if let m = loaded { return m }
        let m = try LoadedModel(path: p, threads: 2)
        loaded = m
        return m
    }

    /// A server over a fresh scheduler (context 256) plus its application.
    static func server(keys: Set<String> = [], maxQueue: Int = 64, maxBody: Int = 1 << 20,
                       configure: (inout ServerConfig) -> Void = { _ in }) throws -> OpenAIServer? {
        guard let lm = try model() else { return nil }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256))
        var c = ServerConfig()
        c.servedModelName = "gemma3-test"
        c.apiKeys = keys
        c.maxQueue = maxQueue
        c.maxBodyBytes = maxBody
        configure(&c)
        return OpenAIServer(scheduler: s, config: c, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}

func post(_ client: some TestClientProtocol, _ uri: String, _ body: String, headers: HTTPFields = [.contentType: "application/json"]) async throws -> (HTTPResponse.Status, JSONValue?, String) {
    try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
        let text = String(buffer: r.body)
        return (r.status, try? JSONValue.parse(Data(text.utf8)), text)
    }
}

func errorType(_ v: JSONValue?) -> String? {
    if case .string(let s)? = v?["error"]?["type"] { return s }
    return nil
}

@Suite(.serialized)
struct RouteTests {
    func withApp(_ server: OpenAIServer, _ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        server.scheduler.start()
        defer { server.scheduler.terminate() }
        let app = Application(router: server.buildRouter())
        try await app.test(.router) { client in try await body(client) }
    }

    @Test func badRequestsGetOpenAIErrors() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let cases: [(String, String)] = [
                ("{not json", "invalid_json"),
                ("[1,2]", ""),
                (#"{"prompt": 5}"#, "prompt"),
                (#"{"prompt": "hi", "max_tokens": -1}"#, "max_tokens"),
                (#"{"prompt": "hi", "max_tokens": "ten"}"#, "max_tokens"),
                (#"{"prompt": "hi", "max_tokens": 99999999999}"#, "max_tokens"),
                (#"{"prompt": "hi", "temperature": 3}"#, "temperature"),
                (#"{"prompt": "hi", "temperature": true}"#, "temperature"),
                (#"{"prompt": "hi", "n": 0}"#, "n"),
                (#"{"prompt": "hi", "stop": [1]}"#, "stop"),
                (#"{"prompt": "hi", "stream": "yes"}"#, "stream"),
                (#"{"prompt": "hi", "top_p": 0}"#, "top_p"),
                (#"{"prompt": [1, 99999999]}"#, "prompt"),
                (#"{"max_tokens": 3}"#, "prompt"),
            ]
            for (body, param) in cases {
                let (status, json, text) = try await post(c, "/v1/completions", body)
                #expect(status == .badRequest, "\(body) -> \(status) \(text)")
                #expect(errorType(json) == "invalid_request_error", "\(body) -> \(text)")
                if !param.isEmpty, param != "invalid_json" {
                    #expect(json?["error"]?["param"] == .string(param), "\(body) -> \(text)")
                }
                #expect(json?["error"]?["message"] != nil)
            }
            // Chat-specific.
            for body in [#"{"messages": "hi"}"#, #"{"messages": []}"#, #"{"messages": [{"role": "wizard", "content": "x"}]}"#,
                         #"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#] {
                let (status, json, text) = try await post(c, "/v1/chat/completions", body)
                #expect(status == .badRequest, "\(body) -> \(text)")
                #expect(errorType(json) == "invalid_request_error")
            }
        }
    }

    @Test func invalidUTF8IsRejected() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            var buf = ByteBuffer(string: #"{"prompt": ""#)
            buf.writeBytes([0xFF, 0xFE, 0xC3])
            buf.writeString(#""}"#)
            try await c.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"], body: buf) { r in
                #expect(r.status == .badRequest)
            }
        }
    }

    @Test func promptPlusMaxTokensOverContextNamesBothNumbers() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let (status, json, text) = try await post(c, "/v1/completions", #"{"prompt": "Hello there", "max_tokens": 1000}"#)
            #expect(status == .badRequest)
            #expect(text.contains("1000"), "\(text)")
            #expect(text.contains("256"), "\(text)")
            #expect(json?["error"]?["code"] == "context_length_exceeded")
        }
    }

    @Test func oversizedBodyIs413() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let big = #"{"prompt": ""# + String(repeating: "a", count: 10 << 20) + #""}"#
            let (status, json, _) = try await post(c, "/v1/completions", big)
            #expect(status == .contentTooLarge)
            #expect(json?["error"] != nil)
        }
    }

    @Test func authRequiredOnV1Only() async throws {
        guard let s = try Fixture.server(keys: ["k1", "k2"]) else { return }
        try await withApp(s) { c in
            let (st1, j1, _) = try await post(c, "/v1/completions", #"{"prompt": "hi", "max_tokens": 1}"#)
            #expect(st1 == .unauthorized)
            #expect(j1?["error"]?["code"] == "invalid_api_key")
            let (st2, _, _) = try await post(c, "/v1/completions", #"{"prompt": "hi", "max_tokens": 1}"#,
                                             headers: [.contentType: "application/json", .authorization: "Bearer nope"])
            #expect(st2 == .unauthorized)
            let (st3, _, t3) = try await post(c, "/v1/completions", #"{"prompt": "hi", "max_tokens": 1}"#,
                                              headers: [.contentType: "application/json", .authorization: "Bearer k2"])
            #expect(st3 == .ok, "\(t3)")
            try await c.execute(uri: "/v1/models", method: .get) { r in #expect(r.status == .unauthorized) }
            try await c.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await c.execute(uri: "/metrics", method: .get) { r in #expect(r.status == .ok) }
        }
    }

    @Test func completionShapeAndUsage() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let (status, json, text) = try await post(c, "/v1/completions",
                #"{"model": "gemma3-test", "prompt": "The sky is", "max_tokens": 2, "temperature": 0, "logprobs": 2, "unknown_field": {"x": 1}}"#)
            #expect(status == .ok, "\(text)")
            #expect(json?["object"] == "text_completion")
            #expect(json?["model"] == "gemma3-test")
            guard case .array(let choices)? = json?["choices"], let ch = choices.first else { Issue.record("no choices: \(text)"); return }
            #expect(ch["index"] == 0)
            #expect(ch["finish_reason"] == "length" || ch["finish_reason"] == "stop")
            if case .array(let toks)? = ch["logprobs"]?["tokens"] { #expect(toks.count <= 2 && !toks.isEmpty) }
            else { Issue.record("no logprobs: \(text)") }
            guard case .int(let pt)? = json?["usage"]?["prompt_tokens"], case .int(let ct)? = json?["usage"]?["completion_tokens"],
                  case .int(let tt)? = json?["usage"]?["total_tokens"] else { Issue.record("no usage: \(text)"); return }
            #expect(pt > 0 && ct >= 1 && tt == pt + ct)
        }
    }

    @Test func unknownModelIs404() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let (status, json, _) = try await post(c, "/v1/completions", #"{"model": "nope", "prompt": "hi", "max_tokens": 1}"#)
            #expect(status == .notFound)
            #expect(json?["error"]?["code"] == "model_not_found")
        }
    }

    @Test func thousandsOfStopStrings() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let stops = (0..<3000).map { "\"zz-stop-\($0)\"" }.joined(separator: ",")
            let (status, json, text) = try await post(c, "/v1/completions",
                #"{"prompt": "Hi", "max_tokens": 2, "temperature": 0, "stop": [\#(stops)]}"#)
            #expect(status == .ok, "\(text)")
            #expect(json?["choices"] != nil)
            let many = (0..<5000).map { "\"s\($0)\"" }.joined(separator: ",")
            let (st2, j2, _) = try await post(c, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 2, "stop": [\#(many)]}"#)
            #expect(st2 == .badRequest)
            #expect(j2?["error"]?["param"] == "stop")
        }
    }

    @Test func streamingChunksEndWithDone() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            let (status, _, text) = try await post(c, "/v1/chat/completions",
                #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#)
            #expect(status == .ok)
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last == "data: [DONE]")
            #expect(events.allSatisfy { $0.hasPrefix("data: ") })
            let chunks = events.dropLast().compactMap { try? JSONValue.parse(Data($0.dropFirst(6).utf8)) }
            #expect(chunks.count == events.count - 1)
            #expect(chunks.first?["object"] == "chat.completion.chunk")
            #expect(chunks.last?["usage"]?["completion_tokens"] != nil)
            #expect(chunks.contains { if case .array(let a)? = $0["choices"], let f = a.first?["finish_reason"], f != .null { return true } else { return false } })
        }
    }

    @Test func healthReadyModelsMetrics() async throws {
        guard let s = try Fixture.server() else { return }
        try await withApp(s) { c in
            try await c.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await c.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok) }
            try await c.execute(uri: "/v1/models", method: .get) { r in
                let j = try? JSONValue.parse(Data(String(buffer: r.body).utf8))
                #expect(j?["object"] == "list")
            }
            _ = try await post(c, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 1}"#)
            try await c.execute(uri: "/metrics", method: .get) { r in
                let t = String(buffer: r.body)
                for name in ["autoglm:num_requests_running", "autoglm:num_requests_waiting", "autoglm:kv_cache_usage_ratio",
                             "autoglm:prompt_tokens_total", "autoglm:generation_tokens_total", "autoglm:request_success_total",
                             "autoglm:time_to_first_token_seconds", "autoglm:e2e_request_latency_seconds",
                             "autoglm:request_queue_time_seconds", "autoglm:batch_size", "autoglm:request_failure_total"] {
                    #expect(t.contains(name), "missing \(name)")
                }
                #expect(t.contains(#"model_name="gemma3-test""#))
            }
        }
    }

    @Test func queueFullIs429() async throws {
        guard let s = try Fixture.server(maxQueue: 0) else { return }
        try await withApp(s) { c in
            try await c.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                body: ByteBuffer(string: #"{"prompt": "Hi", "max_tokens": 1}"#)) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.headers[.retryAfter] == "1")
            }
        }
    }
}
