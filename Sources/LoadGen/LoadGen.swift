import Core
import AsyncHTTPClient
import Synchronization
import Foundation
import NIOCore
import NIOHTTP1

/// Drives an OpenAI-compatible server with streaming requests and reports latency percentiles.
///
/// Prompts: /v1/completions gets `prompt` as a list of token ids (exact length, ids drawn from
/// `promptTokenIDs`); chat gets a user message of repeated common words whose length in tokens
/// is calibrated once against the server's `usage.prompt_tokens` (two probes, linear fit).
public enum LoadGen {
    /// Failure kinds in `LoadReport.errors`.
    public enum ErrorKind {
        public static let http429 = "http_429"
        public static let http5xx = "http_5xx"
        public static let http4xx = "http_4xx"
        public static let timeout = "timeout"
        public static let connection = "connection"
        public static let badStream = "bad_stream"
    }

    public static func run(_ spec: LoadSpec, progress: (@Sendable (LiveStats) -> Void)? = nil) async throws -> LoadReport {
        try spec.validate()
        var cfg = HTTPClient.Configuration()
        let limit: Int
        switch spec.load {
        case .closed(let c): limit = c
        case .open: limit = spec.requests
        }
        cfg.connectionPool = .init(idleTimeout: .seconds(60),
                                   concurrentHTTP1ConnectionsPerHostSoftLimit: Swift.max(8, Swift.min(limit, 4096)))
        // A refused connection is retried by the pool until the connect timeout: keep it short, and
        // under the request timeout so that a server that is not there counts as `connection`.
        cfg.timeout = .init(connect: .milliseconds(Int64(Swift.min(10, spec.timeoutSeconds / 2) * 1000)))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: cfg)
        do {
            let report = try await Runner(spec: spec, client: client, progress: progress).run()
            try? await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Poisson arrival offsets (seconds from the start) for `count` requests at `rate` per second.
    public static func arrivalTimes(rate: Double, count: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed ^ 0xA5A5_5A5A_0F0F_F0F0)
        var t = 0.0
        var out: [Double] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &rng)
            t += -Foundation.log(u) / rate
            out.append(t)
        }
        return out
    }
}

/// Outcome of one request.
enum Outcome: Sendable {
    /// `text`: the answer's content, when it was asked for (conversations).
    case done(timings: RequestTimings, outputTokens: Int, promptTokens: Int, text: String? = nil)
    case failed(kind: String, message: String)
    case cancelled
}

struct TimeoutError: Error {}

/// Words that are one token each in common vocabularies; rotated per request so prompts differ
/// from the first token (no cross-request prefix-cache hits).
let chatWords = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with"]

final class Runner: Sendable {
    let spec: LoadSpec
    let client: HTTPClient
    let progress: (@Sendable (LiveStats) -> Void)?
    /// The first base URL (model discovery, calibration).
    let base: String
    /// Every base URL; request i goes to bases[i % count].
    let bases: [String]
    private let nextBase = Counter()

    init(spec: LoadSpec, client: HTTPClient, progress: (@Sendable (LiveStats) -> Void)?) {
        self.spec = spec
        self.client = client
        self.progress = progress
        bases = ([spec.url] + spec.replicaURLs).map { url in
            var b = url
            while b.hasSuffix("/") { b.removeLast() }
            if b.hasSuffix("/v1") { b.removeLast(3) }
            return b
        }
        base = bases[0]
    }

    var path: String { spec.chat || spec.conversations != nil ? "/v1/chat/completions" : "/v1/completions" }

    func headers() -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: "application/json")
        h.add(name: "Accept", value: "text/event-stream")
        // One connection per request: a pooled keep-alive connection that the server has already
        // closed (llama-server closes idle and long-lived ones) would otherwise fail a request
        // that never reached it and count as a server error. Loopback connects cost microseconds.
        h.add(name: "Connection", value: "close")
        if let k = spec.apiKey, !k.isEmpty { h.add(name: "Authorization", value: "Bearer \(k)") }
        return h
    }

    func run() async throws -> LoadReport {
        let model = try await resolveModel()
        var wordsFor: (@Sendable (Int) -> Int)?
        if spec.chat || spec.conversations != nil {
            let (overhead, slope) = try await calibrate(model)
            wordsFor = { target in Swift.max(1, Int(((Double(target) - overhead) / slope).rounded())) }
        }
        // Every body is drawn up front from the seed, so a run's requests do not depend on timing.
        var rng = SplitMix64(seed: spec.seed)
        func makeBodies(_ n: Int) -> [(body: ByteBuffer, promptTokens: Int)] {
            (0..<n).map { _ in
                let p = spec.promptTokens.sample(&rng)
                let m = spec.maxTokens.sample(&rng)
                var o: [String: Any] = ["model": model, "max_tokens": m, "stream": true,
                                        "stream_options": ["include_usage": true]]
                if spec.ignoreEOS { o["ignore_eos"] = true }
                if spec.chat, let wordsFor {
                    let off = Int.random(in: 0..<chatWords.count, using: &rng)
                    let n = wordsFor(p)
                    let text = (0..<n).map { chatWords[($0 + off) % chatWords.count] }.joined(separator: " ")
                    o["messages"] = [["role": "user", "content": text]]
                } else {
                    o["prompt"] = (0..<p).map { _ in Int.random(in: spec.promptTokenIDs, using: &rng) }
                }
                let data = (try? JSONSerialization.data(withJSONObject: o)) ?? Data()
                return (ByteBuffer(bytes: data), p)
            }
        }
        if let conv = spec.conversations, let wordsFor {
            let col = Collector(total: conv.count * conv.turns, slo: spec.slo, abortWhen: spec.abortWhen, progress: progress,
                                turns: conv.turns)
            let task = Task { await self.conversations(conv, model: model, wordsFor: wordsFor, collector: col) }
            await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            try Task.checkCancellation()
            return col.report(model: model)
        }
        let warm = makeBodies(spec.warmupRequests)
        let bodies = makeBodies(spec.requests)
        if !warm.isEmpty {
            let wc: Int
            switch spec.load {
            case .closed(let c): wc = c
            case .open: wc = 1
            }
            let wcol = Collector(total: warm.count, slo: nil, abortWhen: nil, progress: nil)
            await closedLoop(warm, concurrency: Swift.min(wc, warm.count), collector: wcol)
        }
        let box = CancelBox()
        let col = Collector(total: bodies.count, slo: spec.slo, abortWhen: spec.abortWhen, progress: progress,
                            onAbort: { box.cancel() })
        let task = Task {
            switch spec.load {
            case .closed(let c): await self.closedLoop(bodies, concurrency: Swift.min(c, bodies.count), collector: col)
            case .open(let r): await self.openLoop(bodies, rate: r, collector: col)
            }
        }
        box.set(task)
        await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        try Task.checkCancellation()
        return col.report(model: model)
    }

    // MARK: load shapes

    func closedLoop(_ bodies: [(body: ByteBuffer, promptTokens: Int)], concurrency: Int, collector: Collector) async {
        let next = Counter()
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<Swift.max(1, concurrency) {
                g.addTask {
                    while !Task.isCancelled, !collector.isAborted {
                        let i = next.take()
                        guard i < bodies.count else { return }
                        collector.started()
                        let o = await self.send(bodies[i].body, plannedPrompt: bodies[i].promptTokens)
                        collector.finish(o)
                    }
                }
            }
        }
    }

    func openLoop(_ bodies: [(body: ByteBuffer, promptTokens: Int)], rate: Double, collector: Collector) async {
        let times = LoadGen.arrivalTimes(rate: rate, count: bodies.count, seed: spec.seed)
        let t0 = ContinuousClock.now
        await withTaskGroup(of: Void.self) { g in
            for (i, t) in times.enumerated() {
                let due = t0 + .nanoseconds(Int64(t * 1e9))
                if ContinuousClock.now < due { try? await Task.sleep(until: due, clock: .continuous) }
                if Task.isCancelled || collector.isAborted { break }
                collector.started()
                g.addTask {
                    let o = await self.send(bodies[i].body, plannedPrompt: bodies[i].promptTokens)
                    collector.finish(o)
                }
            }
        }
    }

    /// `count` conversations at once, each sending its turns one after another (see `Conversations`).
    func conversations(_ c: Conversations, model: String, wordsFor: @Sendable (Int) -> Int, collector: Collector) async {
        func words(_ n: Int, offset: Int) -> String { (0..<n).map { chatWords[($0 + offset) % chatWords.count] }.joined(separator: " ") }
        let system = words(wordsFor(c.systemTokens), offset: 0)
        let userWords = wordsFor(c.userTokens)
        await withTaskGroup(of: Void.self) { g in
            for conv in 0..<c.count {
                g.addTask {
                    var rng = SplitMix64(seed: self.spec.seed &+ UInt64(conv + 1) &* 0x9E37_79B9_7F4A_7C15)
                    var messages: [[String: String]] = [["role": "system", "content": system]]
                    for turn in 1...c.turns {
                        if Task.isCancelled || collector.isAborted { return }
                        let user = "Conversation \(conv + 1), turn \(turn): " + words(userWords, offset: Int.random(in: 0..<chatWords.count, using: &rng))
                        messages.append(["role": "user", "content": user])
                        var o: [String: Any] = ["model": model, "max_tokens": self.spec.maxTokens.sample(&rng), "stream": true,
                                                "stream_options": ["include_usage": true], "messages": messages]
                        if self.spec.ignoreEOS { o["ignore_eos"] = true }
                        let body = ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: o)) ?? Data())
                        collector.started()
                        let outcome = await self.send(body, plannedPrompt: 0, collectText: true)
                        collector.finish(outcome, turn: turn)
                        guard case .done(_, _, _, let text) = outcome else { return }
                        messages.append(["role": "assistant", "content": text ?? ""])
                    }
                }
            }
        }
    }

    // MARK: one request

    func send(_ body: ByteBuffer, plannedPrompt: Int, collectText: Bool = false) async -> Outcome {
        let timeout = spec.timeoutSeconds
        let result: Outcome? = await withTaskGroup(of: Outcome?.self) { g in
            g.addTask { await self.stream(body, plannedPrompt: plannedPrompt, collectText: collectText) }
            g.addTask {
                do { try await Task.sleep(for: .seconds(timeout)) } catch { return nil }
                return .failed(kind: LoadGen.ErrorKind.timeout, message: "no complete response within \(timeout) s")
            }
            var first: Outcome?
            while let r = await g.next() {
                if let r {
                    first = r
                    break
                }
            }
            g.cancelAll()
            return first
        }
        if Task.isCancelled { return .cancelled }
        return result ?? .cancelled
    }

    func stream(_ body: ByteBuffer, plannedPrompt: Int, collectText: Bool = false) async -> Outcome {
        let target = bases.count == 1 ? base : bases[nextBase.take() % bases.count]
        var req = HTTPClientRequest(url: target + path)
        req.method = .POST
        req.headers = headers()
        req.body = .bytes(body)
        let clock = ContinuousClock()
        let start = clock.now
        func t(_ i: ContinuousClock.Instant) -> Double { (i - start).inSeconds }
        do {
            let resp = try await client.execute(req, timeout: .seconds(Int64(spec.timeoutSeconds.rounded(.up))))
            guard resp.status == .ok else {
                let text = String(buffer: (try? await resp.body.collect(upTo: 1 << 16)) ?? ByteBuffer())
                let code = Int(resp.status.code)
                let kind = code == 429 ? LoadGen.ErrorKind.http429
                    : code >= 500 ? LoadGen.ErrorKind.http5xx : LoadGen.ErrorKind.http4xx
                return .failed(kind: kind, message: "HTTP \(code): \(text.prefix(300))")
            }
            var parser = SSEParser()
            var contentTimes: [Double] = []
            var chunks = 0
            var usageOut: Int?
            var usagePrompt: Int?
            var done = false
            var text = ""
            for try await buf in resp.body {
                let now = t(clock.now)
                for payload in parser.feed(buf.readableBytesView) {
                    if done { continue }
                    if payload.trimmingCharacters(in: .whitespaces) == "[DONE]" {
                        done = true
                        continue
                    }
                    guard let info = ChunkReader.read(payload) else {
                        return .failed(kind: LoadGen.ErrorKind.badStream, message: "a stream event is not JSON: \(payload.prefix(200))")
                    }
                    if let e = info.error {
                        return .failed(kind: LoadGen.ErrorKind.badStream, message: "error event in the stream: \(e.prefix(300))")
                    }
                    if info.content {
                        contentTimes.append(now)
                        chunks += 1
                        if collectText { text += info.text }
                    }
                    if let u = info.completionTokens { usageOut = u }
                    if let u = info.promptTokens { usagePrompt = u }
                }
            }
            let end = t(clock.now)
            if Task.isCancelled { return .cancelled }
            guard done else {
                return .failed(kind: LoadGen.ErrorKind.badStream, message: "the stream ended without 'data: [DONE]'")
            }
            let out = usageOut ?? chunks
            return .done(timings: RequestTimings.compute(start: 0, contentTimes: contentTimes, end: end, outputTokens: out),
                         outputTokens: out, promptTokens: usagePrompt ?? plannedPrompt, text: collectText ? text : nil)
        } catch {
            if Task.isCancelled { return .cancelled }
            return classify(error)
        }
    }

    func classify(_ error: any Error) -> Outcome {
        if let h = error as? HTTPClientError {
            if h == .readTimeout || h == .deadlineExceeded {
                return .failed(kind: LoadGen.ErrorKind.timeout, message: "\(h)")
            }
        }
        return .failed(kind: LoadGen.ErrorKind.connection, message: String("\(error)".prefix(300)))
    }

    // MARK: setup

    func resolveModel() async throws -> String {
        if let m = spec.model, !m.isEmpty { return m }
        var req = HTTPClientRequest(url: base + "/v1/models")
        req.headers = headers()
        let obj: Any
        do {
            let resp = try await client.execute(req, timeout: .seconds(30))
            let buf = try await resp.body.collect(upTo: 4 << 20)
            guard resp.status == .ok else {
                throw LoadGenError.modelDiscovery("GET \(base)/v1/models answered HTTP \(resp.status.code): \(String(buffer: buf).prefix(200))")
            }
            obj = try JSONSerialization.jsonObject(with: Data(buf.readableBytesView))
        } catch let e as LoadGenError {
            throw e
        } catch {
            throw LoadGenError.modelDiscovery("GET \(base)/v1/models failed: \(String("\(error)".prefix(200)))")
        }
        guard let o = obj as? [String: Any], let data = o["data"] as? [Any],
              let first = data.first as? [String: Any], let id = first["id"] as? String else {
            throw LoadGenError.modelDiscovery("GET \(base)/v1/models listed no model id")
        }
        return id
    }

    /// Prompt tokens reported for chat messages of `a` and `b` words give overhead and tokens per word.
    func calibrate(_ model: String) async throws -> (overhead: Double, slope: Double) {
        let a = 8, b = 72
        let pa = try await chatPromptTokens(model, words: a)
        let pb = try await chatPromptTokens(model, words: b)
        let slope = Double(pb - pa) / Double(b - a)
        guard slope > 0 else {
            throw LoadGenError.calibration("usage.prompt_tokens did not grow with the prompt (\(pa) for \(a) words, \(pb) for \(b))")
        }
        return (Double(pa) - slope * Double(a), slope)
    }

    func chatPromptTokens(_ model: String, words: Int) async throws -> Int {
        let text = (0..<words).map { chatWords[$0 % chatWords.count] }.joined(separator: " ")
        let o: [String: Any] = ["model": model, "max_tokens": 1, "messages": [["role": "user", "content": text]]]
        var req = HTTPClientRequest(url: base + path)
        req.method = .POST
        req.headers = headers()
        req.body = .bytes(ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: o)) ?? Data()))
        do {
            let resp = try await client.execute(req, timeout: .seconds(Int64(spec.timeoutSeconds.rounded(.up))))
            let buf = try await resp.body.collect(upTo: 4 << 20)
            guard resp.status == .ok else {
                throw LoadGenError.calibration("POST \(path) answered HTTP \(resp.status.code): \(String(buffer: buf).prefix(200))")
            }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(buf.readableBytesView)) as? [String: Any],
                  let u = obj["usage"] as? [String: Any], let p = (u["prompt_tokens"] as? NSNumber)?.intValue else {
                throw LoadGenError.calibration("the response to POST \(path) has no usage.prompt_tokens")
            }
            return p
        } catch let e as LoadGenError {
            throw e
        } catch {
            throw LoadGenError.calibration("POST \(base)\(path) failed: \(String("\(error)".prefix(200)))")
        }
    }
}

/// Next request index for closed-loop workers.
final class Counter: Sendable {
    private let value = Mutex(0)
    func take() -> Int { value.withLock { v in defer { v += 1 }; return v } }
}

/// Holds the load task so `abortWhen` can cancel it from inside.
final class CancelBox: Sendable {
    private let state = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))
    func set(_ t: Task<Void, Never>) {
        let c = state.withLock { s in s.task = t; return s.cancelled }
        if c { t.cancel() }
    }
    func cancel() {
        let t = state.withLock { s in s.cancelled = true; return s.task }
        t?.cancel()
    }
}

/// Accumulates outcomes; all of its state is behind one lock.
final class Collector: Sendable {
    let total: Int
    let slo: SLO?
    let abortWhen: (@Sendable (LiveStats) -> Bool)?
    let progress: (@Sendable (LiveStats) -> Void)?
    /// Called once when `abortWhen` first answers true.
    let onAbort: (@Sendable () -> Void)?
    private let t0 = ContinuousClock.now

    private struct State {
        var firstStart: ContinuousClock.Instant?
        var lastEnd: ContinuousClock.Instant?
        var ttft = LatencyRecorder(), tpot = LatencyRecorder(), itl = LatencyRecorder(), e2e = LatencyRecorder()
        var nStarted = 0, completed = 0, failed = 0, outputTokens = 0, promptTokens = 0, good = 0, bad = 0
        var errors: [String: Int] = [:]
        var examples: [String: String] = [:]
        var aborted = false
        /// Multi-turn runs: TTFT per turn (index turn − 1).
        var turnTTFT: [LatencyRecorder]?
    }
    private let state: Mutex<State>

    init(total: Int, slo: SLO?, abortWhen: (@Sendable (LiveStats) -> Bool)?, progress: (@Sendable (LiveStats) -> Void)?,
         turns: Int? = nil, onAbort: (@Sendable () -> Void)? = nil) {
        self.total = total
        self.slo = slo
        self.abortWhen = abortWhen
        self.progress = progress
        self.onAbort = onAbort
        var st = State()
        st.turnTTFT = turns.map { Array(repeating: LatencyRecorder(), count: $0) }
        state = Mutex(st)
    }

    var isAborted: Bool { state.withLock { $0.aborted } }

    func started() {
        state.withLock { s in
            s.nStarted += 1
            if s.firstStart == nil { s.firstStart = ContinuousClock.now }
        }
    }

    func finish(_ o: Outcome, turn: Int? = nil) {
        let needStats = abortWhen != nil || progress != nil
        let stats: LiveStats? = state.withLock { s in
            switch o {
            case .cancelled:
                s.nStarted -= 1
                return nil
            case .failed(let kind, let message):
                s.failed += 1
                s.errors[kind, default: 0] += 1
                if s.examples[kind] == nil { s.examples[kind] = message }
            case .done(let t, let out, let prompt, _):
                s.completed += 1
                if let turn, let v = t.ttft, turn >= 1, turn <= (s.turnTTFT?.count ?? 0) { s.turnTTFT?[turn - 1].record(seconds: v) }
                s.outputTokens += out
                s.promptTokens += prompt
                if let v = t.ttft { s.ttft.record(seconds: v) }
                if let v = t.tpot { s.tpot.record(seconds: v) }
                for v in t.itl { s.itl.record(seconds: v) }
                s.e2e.record(seconds: t.e2e)
                if let slo { if slo.isMet(by: t) { s.good += 1 } else { s.bad += 1 } }
            }
            s.lastEnd = ContinuousClock.now
            return needStats ? live(s) : nil
        }
        guard let stats else { return }
        progress?(stats)
        if let abortWhen, abortWhen(stats) {
            let first = state.withLock { s in defer { s.aborted = true }; return !s.aborted }
            if first { onAbort?() }
        }
    }

    private func live(_ s: State) -> LiveStats {
        LiveStats(elapsedSeconds: (ContinuousClock.now - t0).inSeconds, total: total, started: s.nStarted,
                  completed: s.completed, failed: s.failed, inFlight: s.nStarted - s.completed - s.failed,
                  outputTokens: s.outputTokens, errors: s.errors, sloMet: s.good, sloMissed: s.bad,
                  ttft: s.ttft.summary, tpot: s.tpot.summary, e2e: s.e2e.summary)
    }

    func report(model: String) -> LoadReport {
        state.withLock { s in
            var dur = 0.0
            if let a = s.firstStart, let b = s.lastEnd { dur = Swift.max(0, (b - a).inSeconds) }
            let per = { (x: Double) in dur > 0 ? x / dur : 0 }
            return LoadReport(ttft: s.ttft.summary, tpot: s.tpot.summary, itl: s.itl.summary, e2e: s.e2e.summary,
                              completed: s.completed, failed: s.failed, errors: s.errors, errorExamples: s.examples,
                              outputTokens: s.outputTokens, promptTokens: s.promptTokens, durationSeconds: dur,
                              outputTokensPerSecond: per(Double(s.outputTokens)), requestsPerSecond: per(Double(s.completed)),
                              goodput: slo == nil ? nil : per(Double(s.good)), aborted: s.aborted,
                              ttftByTurn: s.turnTTFT.map { $0.map(\.summary) }, model: model)
        }
    }
}
