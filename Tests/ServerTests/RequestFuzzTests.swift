import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Server
import Testing

/// Seeded fuzzing of every request surface of `autoglm serve`: the body fields of both
/// completion endpoints (each field given values of every JSON type, edge numbers, huge and
/// odd strings), random headers and random paths. Every answer must be a well-formed response
/// (a 200, or an OpenAI-shaped 4xx/429 error): never a 500, a hang or a crash.
@Suite("request fuzz", .serialized)
struct RequestFuzzTests {
    struct RNG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    }

    static let fields = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                         "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "stop",
                         "n", "stream", "stream_options", "ignore_eos", "user", "logprobs", "top_logprobs", "echo",
                         "response_format", "tools", "logit_bias", "suffix", "best_of"]

    /// JSON text of a hostile value.
    static func value(_ r: inout RNG, depth: Int = 0) -> String {
        switch r.below(depth > 2 ? 12 : 15) {
        case 0: return "null"
        case 1: return r.pick(["true", "false"])
        case 2: return r.pick(["0", "-0", "1", "-1", "2", "16", "128", "129", "4096", "2147483647", "2147483648",
                               "-2147483649", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
                               "18446744073709551616", "1e308", "-1e308", "1e999", "4.9e-324", "0.5", "1.0000001", "3"])
        case 3: return r.pick(["\"\"", "\"a\"", "\"gemma3-test\"", "\"\\u0000\"", "\"\\ud800\"", "\"<start_of_turn>\"",
                               "\"<end_of_turn>\"", "\"user\"", "\"system\"", "\"assistant\"", "\"tool\"", "\"\\n\\n\""])
        case 4: return "\"" + String(repeating: r.pick(["a", "é", "🙂", " ", "\\n", "<"]), count: 1 + r.below(3000)) + "\""
        case 5: return "[]"
        case 6: return "{}"
        case 7: return "[" + (0..<(1 + r.below(5))).map { _ in r.pick(["1", "2", "-1", "300000", "0"]) }.joined(separator: ",") + "]"
        case 8: return #"[{"role": "user", "content": "hi"}]"#
        case 9: return #"[{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}]"#
        case 10: return #"{"include_usage": true}"#
        case 11: return #"[{"role": "bogus"}, {"content": 5}]"#
        case 12: return "[" + (0..<(1 + r.below(4))).map { _ in value(&r, depth: depth + 1) }.joined(separator: ",") + "]"
        case 13: return "{\"include_usage\": " + value(&r, depth: depth + 1) + "}"
        default: return "[[" + value(&r, depth: depth + 1) + "]]"
        }
    }

    static func body(_ r: inout RNG, chat: Bool) -> String {
        var parts: [String] = [chat ? #""messages": [{"role": "user", "content": "Hi"}]"# : #""prompt": "Hi""#, #""max_tokens": 2"#]
        for _ in 0..<(1 + r.below(5)) {
            parts.append("\"\(r.pick(fields))\": \(value(&r))")
        }
        if r.below(10) == 0 { parts.shuffle() }
        var text = "{" + parts.joined(separator: ", ") + "}"
        switch r.below(20) {
        case 0: text = String(text.dropLast(1 + r.below(min(10, text.count))))        // truncated
        case 1: text = "[" + text + "]"
        case 2: text += "garbage"
        default: break
        }
        return text
    }

    static func wellFormed(_ status: HTTPResponse.Status, _ body: String, _ what: String) {
        #expect(status.code < 500, "\(what) → \(status.code): \(body.prefix(300))")
        if status.code >= 400 {
            let v = try? JSONValue.parse(Data(body.utf8))
            #expect(v?["error"]?["message"] != nil, "\(what) → \(status.code) without an OpenAI error: \(body.prefix(300))")
        }
    }

    @Test func bodiesOfBothEndpoints() async throws {
        guard let s = try Fixture.server(maxBody: 1 << 20) else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        var rng = RNG(state: 0xF0_22)
        let bodies: [(Bool, String)] = (0..<600).map { i in (i % 2 == 0, Self.body(&rng, chat: i % 2 == 0)) }
        try await app.test(.router) { c in
            var statuses: [UInt: Int] = [:]
            for (chat, text) in bodies {
                let uri = chat ? "/v1/chat/completions" : "/v1/completions"
                let code = try await c.execute(uri: uri, method: .post, headers: [.contentType: "application/json"],
                                    body: ByteBuffer(string: text)) { r in
                    let b = String(buffer: r.body)
                    Self.wellFormed(r.status, b, "POST \(uri) \(text.prefix(200))")
                    if r.status == .ok, text.contains("\"stream\": true") {
                        #expect(b.hasSuffix("data: [DONE]\n\n") || !b.hasPrefix("data: "), "stream not closed: \(b.suffix(200))")
                    }
                    return r.status.code
                }
                statuses[UInt(code), default: 0] += 1
            }
            print("request fuzz (bodies): \(statuses.sorted { $0.key < $1.key })")
            #expect((statuses[200] ?? 0) > 20 && (statuses[400] ?? 0) > 100)
        }
        #expect(s.scheduler.stats.alive)
    }

    @Test func headersAndPaths() async throws {
        guard let s = try Fixture.server(keys: ["k"]) else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        var rng = RNG(state: 0xBEEF)
        var cases: [(method: String, path: String, headers: [String])] = []
        for _ in 0..<300 {
            var segs: [String] = []
            for _ in 0..<rng.below(5) {
                segs.append(rng.pick(["v1", "chat", "completions", "models", "registry", "..", ".", "", "%2e%2e", "%00", "healthz",
                                      String(repeating: "x", count: 1 + rng.below(3000)), "ü", "%ZZ", "?a=%", "#"]))
            }
            var headers: [String] = []
            for _ in 0..<rng.below(4) {
                headers.append(rng.pick(["Authorization: Bearer k", "Authorization: Bearer", "Authorization:",
                                         "Content-Length: 5", "Content-Length: -1", "Content-Length: 99999999999999999999",
                                         "Transfer-Encoding: chunked", "Content-Type: text/plain", "Expect: 100-continue",
                                         "X-Big: " + String(repeating: "y", count: rng.below(20000)),
                                         "Host: " + String(repeating: "h", count: rng.below(500)), "Connection: keep-alive"]))
            }
            cases.append((rng.pick(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "BREW", "get"]), "/" + segs.joined(separator: "/"), headers))
        }
        let requests = cases
        try await app.test(.live) { client in
            let port = try #require(client.port)
            var seen: [Int: Int] = [:]
            for (method, path, headers) in requests {
                let status = await request(port: port, method: method, target: path, headers: headers)
                seen[status ?? 0, default: 0] += 1
                #expect(status == nil || status! < 500, "\(method) \(path.prefix(80)) \(headers.map { String($0.prefix(40)) }) → \(String(describing: status))")
            }
            print("request fuzz (headers, paths): \(seen.sorted { $0.key < $1.key })")
            // The server still answers normally afterwards.
            #expect(await request(port: port, method: "GET", target: "/healthz") == 200)
        }
    }
}
