import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Server
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An `Upstream` the test steers: a fixed address and a state it sets.
final class SteeredUpstream: Upstream {
    let base: String?
    let key: String?
    let m: Mutex<(state: UpstreamState, health: Bool, unreachable: [String])>
    let slots: Int?
    init(base: String?, key: String? = nil, state: UpstreamState = .ready, slots: Int? = nil) {
        self.base = base; self.key = key; self.slots = slots
        m = Mutex((state, true, []))
    }
    var baseURL: String? { base }
    var apiKey: String? { key }
    var state: UpstreamState { m.withLock { $0.state } }
    var health: (ok: Bool, reason: String) { m.withLock { ($0.health, $0.health ? "ok" : "process exited") } }
    func set(_ s: UpstreamState, health: Bool = true) { m.withLock { $0.state = s; $0.health = health } }
    func markUnreachable(_ reason: String) { m.withLock { $0.unreachable.append(reason); $0.state = .down(reason) } }
    var unreachable: [String] { m.withLock { $0.unreachable } }
    func run() async {}
    func stop() async {}
    func stats() async -> BackendStats? { nil }
}

/// A gate a fake upstream's stream waits on until the test opens it.
final class Gate: Sendable {
    private let m = Mutex(false)
    func open() { m.withLock { $0 = true } }
    var isOpen: Bool { m.withLock { $0 } }
    func wait() async {
        for _ in 0..<60000 where !isOpen { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

/// What the fake upstream saw of the last request.
final class Seen: Sendable {
    private let m = Mutex<[String: String]>([:])
    func set(_ k: String, _ v: String) { m.withLock { $0[k] = v } }
    subscript(_ k: String) -> String? { m.withLock { $0[k] } }
}

@Suite(.serialized)
struct ProxyTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fake OpenAI upstream whose chat route answers according to the request's `user` field.
    static func fakeUpstream(gate: Gate, seen: Seen) -> Router<BasicRequestContext> {
        let r = Router()
        r.get("/v1/models") { req, _ in
            seen.set("auth", req.headers[.authorization] ?? "")
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"id":"up","object":"model"}]}"#)))
        }
        r.post("/v1/chat/completions") { req, _ -> Response in
            seen.set("auth", req.headers[.authorization] ?? "")
            let body = try await req.body.collect(upTo: 1 << 20)
            let mode = (try? JSONValue.parse(Data(body.readableBytesView)))?["user"]?.string ?? "ok"
            let sse: HTTPFields = [.contentType: "text/event-stream"]
            let chunk = Self.chunk
            switch mode {
            case "gated":
                seen.set("gated", "arrived")
                return Response(status: .ok, headers: sse, body: ResponseBody { w in
                    try await w.write(ByteBuffer(string: chunk("first")))
                    await gate.wait()
                    try await w.write(ByteBuffer(string: chunk("second") + "data: [DONE]\n\n"))
                    try await w.finish(nil)
                })
            case "malformed":
                return Response(status: .ok, headers: sse, body: ResponseBody { w in
                    try await w.write(ByteBuffer(string: chunk("fine") + "this is not an event\n\n" + chunk("never")))
                    try await w.finish(nil)
                })
            case "badjson":
                return Response(status: .ok, headers: sse, body: .init(byteBuffer: ByteBuffer(string: "data: {\"choices\": [\n\n")))
            case "cut":
                return Response(status: .ok, headers: sse, body: .init(byteBuffer: ByteBuffer(string: chunk("partial"))))
            case "unauthorized":
                return Response(status: .unauthorized, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"bad key"}}"#)))
            case "html":
                return Response(status: .internalServerError, headers: [.contentType: "text/html"],
                                body: .init(byteBuffer: ByteBuffer(string: "<html>oops</html>")))
            case "badrequest":
                return Response(status: .badRequest, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"upstream says no","type":"invalid_request_error"}}"#)))
            default:
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string:
                    #"{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#)))
            }
        }
        return r
    }

    @Sendable static func chunk(_ text: String) -> String {
        #"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\#(text)"}}]}"# + "\n\n"
    }

    static func proxy(_ upstream: any Upstream, configure: (inout ServerConfig) -> Void = { _ in }) -> ProxyServer {
        var c = ServerConfig()
        c.servedModelName = "up"
        configure(&c)
        return ProxyServer(upstream: upstream, config: c, logger: quiet)
    }

    /// Runs the fake upstream and the proxy, both listening on loopback.
    func withBoth(key: String? = nil, state: UpstreamState = .ready, configure: @escaping @Sendable (inout ServerConfig) -> Void = { _ in },
                  _ body: @escaping @Sendable (_ proxyPort: Int, _ upstream: SteeredUpstream, _ gate: Gate, _ seen: Seen) async throws -> Void) async throws {
        let gate = Gate(), seen = Seen()
        let up = Application(router: Self.fakeUpstream(gate: gate, seen: seen), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await up.test(.live) { upClient in
            let upPort = try #require(upClient.port)
            let steer = SteeredUpstream(base: "http://127.0.0.1:\(upPort)", key: key, state: state, slots: 1)
            let p = Self.proxy(steer, configure: configure)
            let app = Application(router: p.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                try await body(try #require(client.port), steer, gate, seen)
            }
            await p.shutdown()
        }
    }

    /// Sends one raw request on its own thread and returns the whole answer.
    static func raw(_ port: Int, _ method: String, _ path: String, body: String = "", headers: String = "") async -> String {
        await withCheckedContinuation { cont in
            Thread.detachNewThread {
                let fd = connectLoopback(port, timeout: 600)
                guard fd >= 0 else { cont.resume(returning: "no connection"); return }
                defer { close(fd) }
                let head = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
                _ = sendAll(fd, Array((head + body).utf8))
                cont.resume(returning: readAll(fd))
            }
        }
    }

    static func chat(_ user: String, stream: Bool) -> String {
        #"{"model":"up","messages":[{"role":"user","content":"hi"}],"stream":\#(stream),"user":"\#(user)"}"#
    }

    @Test func streamIsRelayedAsItArrives() async throws {
        try await withBoth { port, _, gate, _ in
            // The upstream holds its second event until the client has read the first: a proxy
            // that buffered the stream would never deliver the first and the read would time out.
            let got: String = await withCheckedContinuation { cont in
                Thread.detachNewThread {
                    let fd = connectLoopback(port, timeout: 600)
                    defer { close(fd) }
                    let body = Self.chat("gated", stream: true)
                    _ = sendAll(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
                    var bytes: [UInt8] = []
                    var buf = [UInt8](repeating: 0, count: 4096)
                    while !String(decoding: bytes, as: UTF8.self).contains("first") {
                        let n = recv(fd, &buf, buf.count, 0)
                        if n <= 0 { cont.resume(returning: "first event never arrived: " + String(decoding: bytes, as: UTF8.self)); return }
                        bytes.append(contentsOf: buf[0..<n])
                    }
                    let before = String(decoding: bytes, as: UTF8.self)
                    gate.open()
                    cont.resume(returning: before + "|GATE|" + readAll(fd))
                }
            }
            #expect(got.contains("first"))
            let parts = got.components(separatedBy: "|GATE|")
            #expect(parts.count == 2 && !parts[0].contains("second"), "the second event came before the gate opened: \(got)")
            #expect(parts.last?.contains("second") == true && got.contains("data: [DONE]"), "\(got)")
        }
    }

    @Test func brokenStreamsEndWithAnErrorEventAndDone() async throws {
        try await withBoth { port, _, _, _ in
            for (mode, code) in [("malformed", "upstream_stream_malformed"), ("badjson", "upstream_stream_malformed"), ("cut", "upstream_stream_cut")] {
                let r = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat(mode, stream: true))
                #expect(r.contains(" 200 "), "\(mode): \(r)")
                #expect(r.contains("\"code\":\"\(code)\""), "\(mode): \(r)")
                let error = r.range(of: "\"code\":\"\(code)\""), done = r.range(of: "data: [DONE]\n\n")
                #expect(error != nil && done != nil && error!.upperBound < done!.lowerBound, "\(mode): the stream must end with the error, then [DONE]: \(r)")
                #expect(!r.contains("never"), "\(mode): events after the malformed line were forwarded: \(r)")
            }
        }
    }

    @Test func upstreamErrorsBecomeOpenAIErrors() async throws {
        try await withBoth(key: "up-key") { port, steer, _, seen in
            let unauthorized = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("unauthorized", stream: false))
            #expect(unauthorized.contains(" 502 ") && unauthorized.contains("upstream_auth_failed"), "\(unauthorized)")
            #expect(seen["auth"] == "Bearer up-key", "the upstream's own key is sent")
            let html = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("html", stream: false))
            #expect(html.contains(" 502 ") && html.contains("upstream_invalid_response"), "\(html)")
            let bad = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("badrequest", stream: false))
            #expect(bad.contains(" 400 ") && bad.contains("upstream says no"), "the upstream's own 400 passes through: \(bad)")
            let ok = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false))
            #expect(ok.contains(" 200 ") && ok.contains("\"content\":\"hi\""), "\(ok)")
            // The client's own key is never forwarded.
            _ = await Self.raw(port, "GET", "/v1/models", headers: "Authorization: Bearer client-key\r\n")
            #expect(seen["auth"] == "Bearer up-key")
            _ = steer
        }
    }

    @Test func badRequestsAreRefusedBeforeForwarding() async throws {
        try await withBoth { port, _, _, _ in
            for (body, param) in [(#"{"messages":[],"max_tokens":-5}"#, "max_tokens"), (#"{"messages":[],"temperature":9}"#, "temperature"),
                                  (#"{"messages":[],"n":1000}"#, "n"), ("{oops", "")] {
                let r = await Self.raw(port, "POST", "/v1/chat/completions", body: body)
                #expect(r.contains(" 400 "), "\(body): \(r)")
                if !param.isEmpty { #expect(r.contains("\"param\":\"\(param)\""), "\(body): \(r)") }
            }
        }
    }

    @Test func downBackendGets503AndReadyzFollowsIt() async throws {
        try await withBoth { port, steer, _, _ in
            #expect(await Self.raw(port, "GET", "/readyz").contains(" 200 "))
            steer.set(.down("llama-server exited"), health: false)
            let ready = await Self.raw(port, "GET", "/readyz")
            #expect(ready.contains(" 503 ") && ready.contains("llama-server exited"), "\(ready)")
            #expect(await Self.raw(port, "GET", "/healthz").contains(" 503 "))
            let r = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false))
            #expect(r.contains(" 503 ") && r.contains("backend_unavailable") && r.lowercased().contains("retry-after: 1"), "\(r)")
            steer.set(.ready)
            #expect(await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false)).contains(" 200 "))
        }
        // Nothing listens at the address: a clean 503, and the backend is marked unreachable.
        let nowhere = SteeredUpstream(base: "http://127.0.0.1:1", slots: 1)
        let p = Self.proxy(nowhere)
        let app = Application(router: p.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let r = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: true))
            #expect(r.contains(" 503 ") && r.contains("backend_unavailable"), "\(r)")
            #expect(!nowhere.unreachable.isEmpty)
            #expect(await Self.raw(port, "GET", "/readyz").contains(" 503 "))
        }
        await p.shutdown()
    }

    @Test func admissionBeyondSlotsAndQueueGets429() async throws {
        try await withBoth(configure: { $0.maxQueue = 0 }) { port, _, gate, seen in
            // slots 1 + queue 0: while one stream is held open, the next request is refused.
            let held = Task { await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("gated", stream: true)) }
            for _ in 0..<60000 where seen["gated"] == nil { try await Task.sleep(for: .milliseconds(10)) }
            let refused = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false))
            #expect(refused.contains(" 429 ") && refused.lowercased().contains("retry-after: 1"), "\(refused)")
            gate.open()
            #expect(await held.value.contains("second"))
            #expect(await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false)).contains(" 200 "))
        }
    }

    @Test func everyForwardedRouteNeedsTheKey() async throws {
        try await withBoth(configure: { $0.apiKeys = ["k"] }) { port, _, _, _ in
            for (method, path) in ProxyServer.forwarded {
                let r = await Self.raw(port, method.rawValue, path, body: method == .post ? Self.chat("ok", stream: false) : "")
                #expect(r.contains(" 401 "), "\(method) \(path): \(r)")
                let ok = await Self.raw(port, method.rawValue, path, body: method == .post ? Self.chat("ok", stream: false) : "",
                                        headers: "Authorization: Bearer k\r\n")
                #expect(!ok.contains(" 401 "), "\(method) \(path) with the key: \(ok)")
            }
            #expect(await Self.raw(port, "GET", "/readyz").contains(" 200 "))
        }
    }

    @Test func corsPreflightIsAnsweredForAllowedOrigins() async throws {
        try await withBoth(configure: { $0.corsOrigins = ["https://app.example"]; $0.apiKeys = ["k"] }) { port, _, _, _ in
            let pre = await Self.raw(port, "OPTIONS", "/v1/chat/completions",
                                     headers: "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n")
            #expect(pre.contains(" 200 ") || pre.contains(" 204 "), "\(pre)")
            #expect(pre.lowercased().contains("access-control-allow-origin: https://app.example"), "\(pre)")
            #expect(pre.lowercased().contains("access-control-allow-headers:") && pre.lowercased().contains("authorization"), "\(pre)")
            let other = await Self.raw(port, "OPTIONS", "/v1/chat/completions", headers: "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n")
            #expect(!other.lowercased().contains("access-control-allow-origin"), "\(other)")
            let real = await Self.raw(port, "POST", "/v1/chat/completions", body: Self.chat("ok", stream: false),
                                      headers: "Origin: https://app.example\r\nAuthorization: Bearer k\r\n")
            #expect(real.contains(" 200 ") && real.lowercased().contains("access-control-allow-origin: https://app.example"), "\(real)")
        }
        // Without --cors-origin an OPTIONS is no longer a 404, and it allows nothing.
        try await withBoth { port, _, _, _ in
            let pre = await Self.raw(port, "OPTIONS", "/v1/chat/completions", headers: "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n")
            #expect(!pre.contains(" 404 ") && !pre.lowercased().contains("access-control-allow-origin"), "\(pre)")
        }
    }

    @Test func sseRelayChecksLinesAndCountsText() throws {
        var r = SSERelay()
        var out = ByteBuffer()
        // A line split across chunks is held until its end arrives.
        #expect(try r.feed(ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"a"), into: &out) == false)
        #expect(out.readableBytes == 0 && r.leftover > 0)
        #expect(try r.feed(ByteBuffer(string: "b\"}}]}\r\n\r\n: keep-alive\nevent: x\nid: 1\n"), into: &out) == true)
        #expect(r.textChunks == 1 && r.leftover == 0)
        _ = try r.feed(ByteBuffer(string: "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"), into: &out)
        #expect(r.done && r.usage?.prompt == 7 && r.usage?.completion == 2)
        #expect(String(buffer: out).hasSuffix("data: [DONE]\n\n"))
        var bad = SSERelay()
        #expect(throws: SSERelay.Malformed.self) { try bad.feed(ByteBuffer(string: "<html>\n"), into: &out) }
        var badData = SSERelay()
        #expect(throws: SSERelay.Malformed.self) { try badData.feed(ByteBuffer(string: "data: [1,2]\n"), into: &out) }
    }

    /// llama-server's /v1/completions logprobs (chat-shaped, captured from llama.cpp b1-0c1e570)
    /// become the completions shape the OpenAI API reference defines.
    @Test func chatShapedCompletionLogprobsAreRewritten() throws {
        let captured = #"{"choices":[{"text":", in","index":0,"logprobs":{"content":[{"id":236764,"token":",","bytes":[44],"logprob":-0.48978736996650696,"top_logprobs":[{"id":236764,"token":",","bytes":[44],"logprob":-0.48978736996650696},{"id":528,"token":" in","bytes":[32,105,110],"logprob":-2.217494249343872}]},{"id":528,"token":" in","bytes":[32,105,110],"logprob":-1.973069190979004,"top_logprobs":[{"id":993,"token":" there","bytes":[32,116,104,101,114,101],"logprob":-1.5098237991333008}]}]}}]}"#
        guard case .object(var o)? = JSONValue.parse(captured) else { Issue.record("fixture"); return }
        var offsets: [Int: Int] = [:]
        #expect(LegacyLogprobs.rewrite(&o, offsets: &offsets))
        let lp = JSONValue.object(o)["choices"]?.array?.first?["logprobs"]
        #expect(lp?["tokens"] == [",", " in"])
        #expect(lp?["token_logprobs"] == [.double(-0.48978736996650696), .double(-1.973069190979004)])
        #expect(lp?["text_offset"] == [0, 1])
        #expect(lp?["top_logprobs"]?.array?.first == ["," : .double(-0.48978736996650696), " in": .double(-2.217494249343872)])
        // Already in the completions shape: left alone.
        var again = o
        #expect(!LegacyLogprobs.rewrite(&again, offsets: &offsets))
    }
}
