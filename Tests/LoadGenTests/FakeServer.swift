import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LoadGen
import NIOCore

/// What the fake server does with the n-th completion request it receives (0-based).
enum Behavior: Sendable {
    /// Streams `tokens` content chunks: the first after `firstDelay` ms, then one every `gap` ms.
    case stream(tokens: Int, firstDelay: Int = 0, gap: Int = 0, usage: Bool = true)
    case status(Int)
    /// Streams two chunks, then ends without `data: [DONE]`.
    case noDone
    /// Sends an event whose data is not JSON.
    case notJSON
    /// Sends an OpenAI error object inside the stream.
    case errorEvent
    /// Sends headers and one chunk, then stalls for `ms`.
    case stall(ms: Int)
    /// Sends headers and one chunk, then holds the stream open until `FakeState.release()`.
    case stallUntilReleased
}

/// Server-side bookkeeping, read by the tests (the oracle for concurrency and arrivals).
final class FakeState: @unchecked Sendable {
    private let lock = NSLock()
    private var _arrivals = 0
    private var _inFlight = 0
    private var _maxInFlight = 0
    private var _bodies: [[String: Any]] = []
    private var _released = false

    /// Lets every `.stallUntilReleased` stream end (so the server can shut down).
    func release() { lock.lock(); defer { lock.unlock() }; _released = true }
    var released: Bool { lock.lock(); defer { lock.unlock() }; return _released }

    func arrive(_ body: [String: Any]) -> Int {
        lock.lock(); defer { lock.unlock() }
        _arrivals += 1
        _inFlight += 1
        _maxInFlight = max(_maxInFlight, _inFlight)
        _bodies.append(body)
        return _arrivals - 1
    }

    func leave() {
        lock.lock(); defer { lock.unlock() }
        _inFlight -= 1
    }

    var arrivals: Int { lock.lock(); defer { lock.unlock() }; return _arrivals }
    var maxInFlight: Int { lock.lock(); defer { lock.unlock() }; return _maxInFlight }
    var inFlight: Int { lock.lock(); defer { lock.unlock() }; return _inFlight }
    var bodies: [[String: Any]] { lock.lock(); defer { lock.unlock() }; return _bodies }
}

/// A scripted OpenAI-compatible server on 127.0.0.1 (ephemeral port).
struct FakeServer: Sendable {
    let state = FakeState()
    let modelID: String
    let script: @Sendable (Int) -> Behavior
    /// Chat: usage.prompt_tokens = chatOverhead + number of space-separated words in the messages.
    let chatOverhead: Int

    init(modelID: String = "fake-model", chatOverhead: Int = 5, script: @escaping @Sendable (Int) -> Behavior) {
        self.modelID = modelID
        self.chatOverhead = chatOverhead
        self.script = script
    }

    func with(_ body: @Sendable @escaping (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/v1/models") { _, _ in
            json(["object": "list", "data": [["id": modelID, "object": "model"] as [String: Any]]])
        }
        router.post("/v1/completions") { req, _ in try await handle(req, chat: false) }
        router.post("/v1/chat/completions") { req, _ in try await handle(req, chat: true) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            guard let port = client.port else { throw FakeError.noPort }
            try await body("http://127.0.0.1:\(port)")
        }
    }

    enum FakeError: Error { case noPort }

    func json(_ o: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: o)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func promptTokens(_ body: [String: Any], chat: Bool) -> Int {
        if chat {
            let msgs = body["messages"] as? [[String: Any]] ?? []
            let words = msgs.reduce(0) { $0 + (($1["content"] as? String) ?? "").split(separator: " ").count }
            return chatOverhead + words
        }
        return (body["prompt"] as? [Any])?.count ?? 0
    }

    func handle(_ req: Request, chat: Bool) async throws -> Response {
        let buf = try await req.body.collect(upTo: 1 << 22)
        let body = (try? JSONSerialization.jsonObject(with: Data(buf.readableBytesView))) as? [String: Any] ?? [:]
        let stream = body["stream"] as? Bool ?? false
        let prompt = promptTokens(body, chat: chat)
        if !stream {
            // Calibration probes: one completion token, usage reported; not counted as arrivals.
            let choice: [String: Any] = ["index": 0, "message": ["role": "assistant", "content": "a"], "finish_reason": "length"]
            return json(["id": "x", "object": "chat.completion", "choices": [choice],
                         "usage": ["prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1]])
        }
        let n = state.arrive(body)
        let behavior = script(n)
        if case .status(let code) = behavior {
            state.leave()
            return json(["error": ["message": "scripted \(code)", "type": "test"]], status: HTTPResponse.Status(code: code))
        }
        let st = state
        // The stream as (delay ms before it, bytes) pairs; a nil final entry means "end without finishing cleanly".
        func chunk(_ text: String) -> String {
            let choice: [String: Any] = chat
                ? ["index": 0, "delta": ["content": text], "finish_reason": NSNull()]
                : ["index": 0, "text": text, "finish_reason": NSNull()]
            let c: [String: Any] = ["object": chat ? "chat.completion.chunk" : "text_completion", "choices": [choice]]
            let d = (try? JSONSerialization.data(withJSONObject: c)) ?? Data()
            return "data: " + String(decoding: d, as: UTF8.self) + "\n\n"
        }
        var events: [(Int, String)] = []
        switch behavior {
        case .stream(let tokens, let firstDelay, let gap, let usage):
            if chat { events.append((0, #"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"# + "\n\n")) }
            for i in 0..<tokens { events.append((i == 0 ? firstDelay : gap, chunk("t\(i)"))) }
            if usage {
                events.append((0, #"data: {"choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(tokens),"total_tokens":\#(prompt + tokens)}}"# + "\n\n"))
            }
            events.append((0, "data: [DONE]\n\n"))
        case .noDone:
            events = [(0, chunk("a")), (0, chunk("b"))]
        case .notJSON:
            events = [(0, chunk("a")), (0, "data: {not json\n\n"), (0, "data: [DONE]\n\n")]
        case .errorEvent:
            events = [(0, chunk("a")), (0, #"data: {"error":{"message":"engine failed","type":"server_error"}}"# + "\n\n"), (0, "data: [DONE]\n\n")]
        case .stall(let ms):
            events = [(0, chunk("a")), (ms, "")]
        case .stallUntilReleased:
            events = [(0, chunk("a"))]
        case .status:
            break
        }
        let holdOpen: Bool
        if case .stallUntilReleased = behavior { holdOpen = true } else { holdOpen = false }
        let script = events
        return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
            defer { st.leave() }
            for (delay, text) in script {
                if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
            }
            while holdOpen && !st.released { try? await Task.sleep(for: .milliseconds(50)) }
            try await writer.finish(nil)
        })
    }
}
