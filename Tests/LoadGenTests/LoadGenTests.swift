import Foundation
import LoadGen
import Testing

@Suite struct TimingTests {
    /// Binary-exact instants so the definitions can be checked with ==.
    @Test func ttftTpotItlFromTimestamps() {
        let t = RequestTimings.compute(start: 0.25, contentTimes: [0.75, 1.0, 1.25, 1.75], end: 2.25, outputTokens: 4)
        #expect(t.ttft == 0.5)
        #expect(t.e2e == 2.0)
        #expect(t.tpot == (2.0 - 0.5) / 3)
        #expect(t.itl == [0.25, 0.25, 0.5])
    }

    @Test func usageTokensNotChunksSetTheTPOTDenominator() {
        // Two chunks carrying 7 tokens (as servers that batch detokenized text do).
        let t = RequestTimings.compute(start: 0, contentTimes: [1, 2], end: 4, outputTokens: 7)
        #expect(t.tpot == 0.5)
        #expect(t.itl == [1])
    }

    @Test func oneTokenHasNoTPOTAndNoContentHasNoTTFT() {
        let one = RequestTimings.compute(start: 0, contentTimes: [0.5], end: 1, outputTokens: 1)
        #expect(one.ttft == 0.5 && one.tpot == nil && one.itl.isEmpty)
        let none = RequestTimings.compute(start: 0, contentTimes: [], end: 1, outputTokens: 0)
        #expect(none.ttft == nil && none.tpot == nil && none.e2e == 1)
    }

    @Test func sloChecksEveryTarget() {
        let t = RequestTimings(ttft: 0.2, tpot: 0.05, itl: [], e2e: 1)
        #expect(SLO(ttftMs: 200, tpotMs: 50, e2eMs: 1000).isMet(by: t))
        #expect(!SLO(ttftMs: 199).isMet(by: t))
        #expect(!SLO(tpotMs: 49).isMet(by: t))
        #expect(!SLO(e2eMs: 999).isMet(by: t))
        #expect(!SLO(ttftMs: 1000).isMet(by: RequestTimings(ttft: nil, tpot: nil, itl: [], e2e: 0.1)))
    }

    @Test func sseParserIgnoresChunkBoundaries() {
        let text = "data: {\"a\":1}\r\n\r\n: comment\n\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n"
        let bytes = Array(text.utf8)
        var whole = SSEParser()
        let expected = whole.feed(bytes)
        #expect(expected == ["{\"a\":1}", "one\ntwo", "[DONE]"])
        for split in 1..<bytes.count {
            var p = SSEParser()
            let got = p.feed(bytes[..<split]) + p.feed(bytes[split...])
            #expect(got == expected, "split at \(split)")
        }
        var cut = SSEParser()
        _ = cut.feed(Array("data: {\"a\"".utf8))
        #expect(cut.hasPartialEvent)
    }

    /// Exponential gaps: mean 1/rate (the sample mean of 20 000 gaps is within 3 % with
    /// overwhelming probability: its relative standard error is 0.7 %), increasing, seeded.
    @Test func poissonArrivals() {
        let rate = 40.0, n = 20_000
        let t = LoadGen.arrivalTimes(rate: rate, count: n, seed: 7)
        #expect(t.count == n)
        #expect(zip(t, t.dropFirst()).allSatisfy { $0 < $1 })
        let meanGap = t[n - 1] / Double(n)
        #expect(abs(meanGap * rate - 1) < 0.03)
        #expect(LoadGen.arrivalTimes(rate: rate, count: 50, seed: 7) == Array(t.prefix(50)))
        #expect(LoadGen.arrivalTimes(rate: rate, count: 50, seed: 8) != Array(t.prefix(50)))
    }

    @Test func lengthDistributionsStayInBounds() {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<2000 {
            let u = LengthDist.uniform(3, 9).sample(&rng)
            #expect((3...9).contains(u))
            let n = LengthDist.normal(mean: 50, sd: 40, min: 10, max: 70).sample(&rng)
            #expect((10...70).contains(n))
        }
        #expect(LengthDist.fixed(5).sample(&rng) == 5)
    }

    @Test func specRoundTripsThroughJSONWithoutTheClosure() throws {
        var s = LoadSpec(url: "http://h:1", load: .open(ratePerSecond: 2.5), requests: 9,
                         promptTokens: .normal(mean: 10, sd: 2, min: 1, max: 20), slo: SLO(ttftMs: 100), seed: 3)
        s.abortWhen = { _ in true }
        let d = try JSONEncoder().encode(s)
        let back = try JSONDecoder().decode(LoadSpec.self, from: d)
        #expect(back.load == .open(ratePerSecond: 2.5) && back.requests == 9 && back.slo == SLO(ttftMs: 100))
        #expect(back.promptTokens == .normal(mean: 10, sd: 2, min: 1, max: 20) && back.seed == 3)
        #expect(back.abortWhen == nil)
    }

    @Test func badSpecsAreRejected() {
        let bad: [LoadSpec] = [
            LoadSpec(url: "not a url"),
            LoadSpec(url: "ftp://h:1"),
            LoadSpec(url: "http://h:1", load: .closed(concurrency: 0)),
            LoadSpec(url: "http://h:1", load: .open(ratePerSecond: 0)),
            LoadSpec(url: "http://h:1", requests: 0),
            LoadSpec(url: "http://h:1", promptTokens: .fixed(0)),
            LoadSpec(url: "http://h:1", maxTokens: .uniform(5, 2)),
            LoadSpec(url: "http://h:1", timeoutSeconds: 0),
            LoadSpec(url: "http://h:1", slo: SLO(ttftMs: -1)),
        ]
        for s in bad {
            #expect(throws: LoadGenError.self) { try s.validate() }
        }
        #expect(throws: Never.self) { try LoadSpec(url: "http://127.0.0.1:8080").validate() }
    }
}

@Suite struct RunTests {
    @Test func closedLoopNeverExceedsConcurrencyAndCountsUsageTokens() async throws {
        let fake = FakeServer { _ in .stream(tokens: 5, firstDelay: 20, gap: 5) }
        try await fake.with { url in
            let r = try await LoadGen.run(LoadSpec(url: url, load: .closed(concurrency: 3), requests: 12,
                                                   promptTokens: .fixed(16), maxTokens: .fixed(5)))
            #expect(r.completed == 12 && r.failed == 0 && r.errors.isEmpty)
            #expect(r.outputTokens == 60)
            #expect(r.promptTokens == 12 * 16)
            #expect(fake.state.arrivals == 12)
            #expect(fake.state.maxInFlight <= 3)
            #expect(r.model == "fake-model")
            #expect(r.ttft.count == 12 && r.tpot.count == 12 && r.e2e.count == 12 && r.itl.count == 12 * 4)
            #expect(r.requestsPerSecond > 0 && r.outputTokensPerSecond > 0 && r.durationSeconds > 0)
            #expect(!r.aborted && r.goodput == nil)
            // Relations that hold whatever the machine's speed: the server waited 20 ms before the
            // first chunk, and every request ends after its first token.
            #expect(r.ttft.p50 >= 20 && r.ttft.max >= r.ttft.p99 && r.ttft.p99 >= r.ttft.p50)
            #expect(r.e2e.max >= r.ttft.max && r.e2e.p50 >= r.ttft.p50)
            // Bodies: streaming with usage, token-id prompts of the planned length, EOS ignored.
            for b in fake.state.bodies {
                #expect(b["stream"] as? Bool == true && b["ignore_eos"] as? Bool == true)
                #expect((b["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
                #expect(b["max_tokens"] as? Int == 5 && b["model"] as? String == "fake-model")
                let ids = b["prompt"] as? [Int] ?? []
                #expect(ids.count == 16 && ids.allSatisfy { (1000...9999).contains($0) })
            }
        }
    }

    @Test func replicasShareTheRequestsRoundRobin() async throws {
        let a = FakeServer { _ in .stream(tokens: 3, gap: 2) }
        let b = FakeServer { _ in .stream(tokens: 3, gap: 2) }
        try await a.with { urlA in
            try await b.with { urlB in
                var spec = LoadSpec(url: urlA, model: "fake-model", load: .closed(concurrency: 4), requests: 10, promptTokens: .fixed(8),
                                    maxTokens: .fixed(3), warmupRequests: 2)
                spec.replicaURLs = [urlB + "/v1/"]
                let r = try await LoadGen.run(spec)
                #expect(r.completed == 10 && r.failed == 0)
                // 12 completions (2 warm-up + 10) alternate between the two servers.
                #expect(a.state.arrivals == 6 && b.state.arrivals == 6, "\(a.state.arrivals) + \(b.state.arrivals)")
            }
        }
        var bad = LoadSpec(url: "http://127.0.0.1:1")
        bad.replicaURLs = ["not a url"]
        #expect(throws: LoadGenError.self) { try bad.validate() }
    }

    @Test func withoutUsageTheChunksAreCounted() async throws {
        let fake = FakeServer { _ in .stream(tokens: 4, usage: false) }
        try await fake.with { url in
            let r = try await LoadGen.run(LoadSpec(url: url, model: "m", requests: 3, maxTokens: .fixed(4)))
            #expect(r.completed == 3 && r.outputTokens == 12)
        }
    }

    @Test func errorsAreClassified() async throws {
        let script: @Sendable (Int) -> Behavior = { n in
            switch n {
            case 0: return .status(429)
            case 1: return .status(503)
            case 2: return .status(400)
            case 3: return .noDone
            case 4: return .notJSON
            case 5: return .errorEvent
            default: return .stream(tokens: 2)
            }
        }
        let fake = FakeServer(script: script)
        try await fake.with { url in
            // No request here may time out, whatever the machine's load: Swift Testing runs the
            // compute-heavy suites on the same 2 cooperative threads, which once held a 429 answer
            // back for more than 15 s. The timeout class is checked on its own below.
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 1), requests: 9,
                                                   maxTokens: .fixed(2), timeoutSeconds: 600))
            #expect(r.errors == ["http_429": 1, "http_5xx": 1, "http_4xx": 1, "bad_stream": 3])
            #expect(r.failed == 6 && r.completed == 3 && r.outputTokens == 6)
            #expect(r.errorExamples["http_429"]?.contains("429") == true)
        }
        // A stream that stops after its first chunk and stays open until the client has given up
        // is a timeout, however late the 2 s deadline fires on a loaded machine.
        let stalled = FakeServer { _ in .stallUntilReleased }
        try await stalled.with { url in
            defer { stalled.state.release() }
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 1), requests: 1,
                                                   maxTokens: .fixed(2), timeoutSeconds: 2))
            #expect(r.errors == ["timeout": 1] && r.failed == 1 && r.completed == 0)
        }
    }

    @Test func conversationsRepeatTheirHistoryTurnByTurn() async throws {
        // chatOverhead 5, one token per word: the calibration is exact.
        let fake = FakeServer(chatOverhead: 5) { _ in .stream(tokens: 3) }
        try await fake.with { url in
            var spec = LoadSpec(url: url, model: "m", maxTokens: .fixed(3), seed: 7)
            spec.conversations = Conversations(count: 3, turns: 3, systemTokens: 25, userTokens: 10)
            let r = try await LoadGen.run(spec)
            #expect(r.completed == 9 && r.failed == 0)
            #expect(r.ttftByTurn?.count == 3 && r.ttftByTurn?.allSatisfy { $0.count == 3 } == true)
            let bodies = fake.state.bodies
            #expect(bodies.count == 9)
            let convs = bodies.map { ($0["messages"] as? [[String: String]]) ?? [] }
            // One shared system prompt of 25 − 5 = 20 words.
            let systems = Set(convs.compactMap { $0.first?["content"] })
            #expect(systems.count == 1 && systems.first?.split(separator: " ").count == 20)
            // Each request is its conversation so far: system, then user/assistant pairs, ending
            // with a new user message; the assistant messages are the streamed answers.
            for m in convs {
                #expect(m.count % 2 == 0 && m.count >= 2 && m.count <= 6)
                #expect(m.first?["role"] == "system" && m.last?["role"] == "user")
                for (i, x) in m.enumerated().dropFirst() {
                    #expect(x["role"] == (i % 2 == 1 ? "user" : "assistant"))
                    if x["role"] == "assistant" { #expect(x["content"] == "t0t1t2") }
                }
            }
            // Turn k of conversation c extends its turn k−1 exactly.
            let longest = convs.filter { $0.count == 6 }
            #expect(longest.count == 3)
            for full in longest {
                let opening = full[1]["content"] ?? ""
                #expect(opening.hasPrefix("Conversation ") && opening.contains("turn 1:"))
                #expect(convs.contains { $0 == Array(full.prefix(2)) } && convs.contains { $0 == Array(full.prefix(4)) })
            }
        }
        var bad = LoadSpec(url: "http://127.0.0.1:1")
        bad.conversations = Conversations(count: 0, turns: 1, systemTokens: 1, userTokens: 1)
        #expect(throws: LoadGenError.self) { try bad.validate() }
    }

    @Test func refusedConnectionsAreConnectionErrors() async throws {
        // Bind and close a port so nothing listens on it.
        let fake = FakeServer { _ in .stream(tokens: 1) }
        let portBox = URLBox()
        try await fake.with { url in portBox.set(url) }
        let port = Int(portBox.value.split(separator: ":").last ?? "") ?? 0
        #expect(port > 0)
        let r = try await LoadGen.run(LoadSpec(url: "http://127.0.0.1:\(port)", model: "m", requests: 3, timeoutSeconds: 600))
        #expect(r.errors == ["connection": 3] && r.completed == 0)
        await #expect(throws: LoadGenError.self) {
            _ = try await LoadGen.run(LoadSpec(url: "http://127.0.0.1:\(port)", requests: 1, timeoutSeconds: 600))
        }
    }

    @Test func openLoopSendsEveryArrival() async throws {
        let fake = FakeServer { _ in .stream(tokens: 3, firstDelay: 30, gap: 10) }
        try await fake.with { url in
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .open(ratePerSecond: 100), requests: 25,
                                                   maxTokens: .fixed(3), slo: SLO(e2eMs: 600_000), seed: 4))
            #expect(fake.state.arrivals == 25)
            #expect(r.completed == 25 && r.outputTokens == 75)
            // Every request meets a 10-minute e2e target: goodput equals throughput.
            #expect(r.goodput == r.requestsPerSecond)
        }
    }

    // The model is named: discovery (GET /v1/models) is tested on its own, and on a starved
    // machine its deadline is one more way for this test to fail for a reason it is not about.
    @Test func abortWhenStopsTheRun() async throws {
        let fake = FakeServer { _ in .stream(tokens: 2) }
        try await fake.with { url in
            let spec = LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 1), requests: 200, maxTokens: .fixed(2),
                                abortWhen: { $0.completed >= 3 })
            let r = try await LoadGen.run(spec)
            #expect(r.aborted && r.completed == 3 && r.failed == 0)
            #expect(fake.state.arrivals == 3)
        }
    }

    @Test func progressSeesEveryRequestAndSLOMisses() async throws {
        let seen = Box()
        let fake = FakeServer { _ in .stream(tokens: 2, firstDelay: 50) }
        try await fake.with { url in
            // The server waits 50 ms before the first token, so a 1 ms TTFT target is always missed.
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 2), requests: 6, maxTokens: .fixed(2),
                                                   slo: SLO(ttftMs: 1)), progress: { s in seen.add(s) })
            #expect(r.goodput == 0)
            let all = seen.values
            #expect(all.count == 6)
            let final = all.first { $0.completed == 6 }
            #expect(final?.sloMissed == 6 && final?.inFlight == 0)
            #expect(all.allSatisfy { $0.inFlight <= 2 && $0.total == 6 })
        }
    }

    @Test func warmupIsNotMeasured() async throws {
        let fake = FakeServer { _ in .stream(tokens: 2) }
        try await fake.with { url in
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", requests: 4, maxTokens: .fixed(2), warmupRequests: 3))
            #expect(fake.state.arrivals == 7 && r.completed == 4 && r.outputTokens == 8)
        }
    }

    @Test func chatPromptsAreCalibratedFromUsage() async throws {
        // The fake reports prompt_tokens = 5 + words, so a 40-token prompt must carry 35 words.
        let fake = FakeServer(chatOverhead: 5) { _ in .stream(tokens: 3) }
        try await fake.with { url in
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", chat: true, load: .closed(concurrency: 2), requests: 4,
                                                   promptTokens: .fixed(40), maxTokens: .fixed(3)))
            #expect(r.completed == 4 && r.outputTokens == 12 && r.promptTokens == 160)
            for b in fake.state.bodies {
                let msgs = b["messages"] as? [[String: Any]] ?? []
                #expect(msgs.count == 1)
                #expect(((msgs.first?["content"] as? String) ?? "").split(separator: " ").count == 35)
            }
        }
    }

    @Test func sameSeedSameRequests() async throws {
        func bodies(seed: UInt64) async throws -> [String] {
            let fake = FakeServer { _ in .stream(tokens: 1) }
            try await fake.with { url in
                _ = try await LoadGen.run(LoadSpec(url: url, model: "m", requests: 3, promptTokens: .uniform(2, 30),
                                                   maxTokens: .uniform(1, 9), seed: seed))
            }
            return fake.state.bodies.map { "\($0["prompt"] ?? "")|\($0["max_tokens"] ?? "")" }
        }
        let a = try await bodies(seed: 11), b = try await bodies(seed: 11), c = try await bodies(seed: 12)
        #expect(a == b && a != c)
    }
}

final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var _values: [LiveStats] = []
    func add(_ s: LiveStats) { lock.lock(); _values.append(s); lock.unlock() }
    var values: [LiveStats] { lock.lock(); defer { lock.unlock() }; return _values }
}

final class URLBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _value = ""
    func set(_ s: String) { lock.lock(); _value = s; lock.unlock() }
    var value: String { lock.lock(); defer { lock.unlock() }; return _value }
}
