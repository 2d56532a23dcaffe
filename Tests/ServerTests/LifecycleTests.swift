import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Server
import ServiceLifecycle
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Log events kept in memory.
final class LogStore: @unchecked Sendable {
    struct Event { var level: Logger.Level; var message: String; var metadata: [String: String] }
    private let lock = NSLock()
    private var _events: [Event] = []
    func add(_ e: Event) { lock.lock(); _events.append(e); lock.unlock() }
    var events: [Event] { lock.lock(); defer { lock.unlock() }; return _events }
}

struct CapturingLogHandler: LogHandler {
    let store: LogStore
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        var md: [String: String] = [:]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { md[k] = v.description }
        store.add(.init(level: event.level, message: event.message.description, metadata: md))
    }
}

/// Polls `cond` every 20 ms for at most `seconds` (a generous bound, not a timing assertion).
func eventually(_ seconds: Double = 60, _ cond: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < end {
        if cond() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return cond()
}

/// Opens a TCP connection to 127.0.0.1:port and sends one HTTP/1.1 POST; returns the socket.
func rawPost(port: Int, path: String, body: String) -> Int32 {
    let fd = connectLoopback(port)
    guard fd >= 0 else { return -1 }
    let req = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = req.withCString { send(fd, $0, strlen($0), 0) }
    return fd
}

func intField(_ v: JSONValue?) -> Int? {
    if case .int(let i)? = v { return i }
    return nil
}

func metricValue(_ text: String, _ name: String, label: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") && line.contains(label) {
        if let v = line.split(separator: " ").last.flatMap({ Double($0) }) { return v }
    }
    return nil
}

@Suite(.serialized)
struct LifecycleTests {
    static func server(logger: Logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> OpenAIServer? {
        guard let lm = try Fixture.model() else { return nil }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256))
        var c = ServerConfig()
        c.servedModelName = "gemma3-test"
        return OpenAIServer(scheduler: s, config: c, logger: logger)
    }

    @Test func nonStreamingClientThatDisconnectsIsCancelledAndFreesKV() async throws {
        guard let server = try Self.server() else { return }
        // The client hangs up from the engine thread, right after the first step that ran its
        // request, and the engine waits there until the server asked to cancel it: the request
        // cannot run to its length however late the test's own tasks get a core.
        let sched = server.scheduler
        let socket = Mutex<Int32>(-1)
        let hungUp = Atomic<Bool>(false)
        sched.setStepObserver { _ in
            guard !hungUp.load(ordering: .acquiring) else { return }
            let s = sched.stats
            guard s.running == 1, s.kvBlocksUsed > 0 else { return }
            let fd = socket.withLock { $0 }
            guard fd >= 0 else { return }
            close(fd)
            hungUp.store(true, ordering: .releasing)
            let end = ContinuousClock.now + .seconds(300)
            while sched.stats.cancelRequests == 0 && ContinuousClock.now < end { usleep(10_000) }
        }
        sched.start()
        defer { sched.terminate() }
        let app = Application(router: server.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // The observer may only close the socket once it is known (the lock orders the two).
            socket.withLock { fd in
                fd = rawPost(port: port, path: "/v1/completions",
                             body: #"{"prompt": "Once upon a time", "max_tokens": 230, "ignore_eos": true}"#)
            }
            #expect(socket.withLock { $0 } >= 0)
            let started = await eventually(300) { hungUp.load(ordering: .acquiring) }
            #expect(started, "the request never started running: \(server.scheduler.stats)")
            let freed = await eventually(300) {
                let s = server.scheduler.stats
                return s.running == 0 && s.waiting == 0 && s.kvBlocksUsed == 0
            }
            #expect(freed, "stats after disconnect: \(server.scheduler.stats)")
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(metricValue(text, "autoglm:kv_cache_usage_ratio", label: "gemma3-test") == 0)
                // Cancelled, not run to its 230-token length.
                #expect(metricValue(text, "autoglm:request_failure_total", label: "reason=\"cancelled\"") == 1)
                #expect(metricValue(text, "autoglm:request_success_total", label: "finish_reason=\"length\"") == 0)
            }
        }
    }

    @Test func readyzAnswers503WhileDraining() async throws {
        guard let server = try Self.server() else { return }
        server.scheduler.start()
        defer { server.scheduler.terminate() }
        let app = Application(router: server.buildRouter())
        try await app.test(.router) { c in
            try await c.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok) }
            // The notifier is the first service told of graceful shutdown (what SIGTERM triggers).
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: DrainNotifier(server: server, delay: 2))],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })))
            let running = Task { try await group.run() }
            try? await Task.sleep(for: .milliseconds(100))
            await group.triggerGracefulShutdown()
            #expect(await eventually { server.isDraining })
            try await c.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(String(buffer: r.body).contains("draining"))
            }
            // Liveness is unaffected: the process is healthy, only leaving.
            try await c.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await running.value
        }
    }

    @Test func requestLogLineHasTokensTTFTAndTime() async throws {
        let store = LogStore()
        guard let server = try Self.server(logger: Logger(label: "test", factory: { _ in CapturingLogHandler(store: store) })) else { return }
        server.scheduler.start()
        defer { server.scheduler.terminate() }
        let app = Application(router: server.buildRouter())
        try await app.test(.router) { c in
            let (st, v, _) = try await post(c, "/v1/completions", #"{"prompt": "The capital of France is", "max_tokens": 5, "ignore_eos": true}"#)
            #expect(st == .ok)
            let pt = try #require(intField(v?["usage"]?["prompt_tokens"]))
            let ct = try #require(intField(v?["usage"]?["completion_tokens"]))
            let (st2, _, text2) = try await post(c, "/v1/completions",
                                                 #"{"prompt": "Hello there", "max_tokens": 3, "ignore_eos": true, "stream": true}"#)
            #expect(st2 == .ok && text2.contains("[DONE]"))
            let (st3, _, _) = try await post(c, "/v1/completions", #"{"prompt": "hi", "max_tokens": -1}"#)
            #expect(st3 == .badRequest)
            let lines = store.events.filter { $0.message == "request" && $0.metadata["path"] == "/v1/completions" }
            #expect(lines.count == 3, "\(lines.map(\.metadata))")
            let plain = try #require(lines.first { $0.metadata["stream"] == "false" })
            #expect(plain.metadata["status"] == "200")
            #expect(plain.metadata["prompt_tokens"] == "\(pt)" && plain.metadata["completion_tokens"] == "\(ct)")
            let ttft = try #require(plain.metadata["ttft_ms"].flatMap(Double.init))
            let total = try #require(plain.metadata["ms"].flatMap(Double.init))
            #expect(ttft > 0 && ttft <= total)
            let streamed = try #require(lines.first { $0.metadata["stream"] == "true" })
            #expect(streamed.metadata["completion_tokens"] == "3" && streamed.metadata["ttft_ms"] != nil)
            #expect(lines.contains { $0.metadata["status"] == "400" })
        }
    }
}
