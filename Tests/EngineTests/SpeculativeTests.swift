import Core
import Engine
import Foundation
import Models
import Testing

/// Prompt-lookup drafting, alone.
@Suite struct NGramDrafterTests {
    let d = NGramDrafter(minN: 2, maxN: 4)

    @Test func proposesWhatFollowedTheEarlierOccurrence() {
        #expect(d.draft([1, 2, 3, 4, 5, 1, 2, 3], max: 3) == [4, 5, 1])
        #expect(d.draft([1, 2, 3, 4, 5, 1, 2, 3], max: 1) == [4])
        #expect(d.draft([1, 2, 3, 4, 5, 1, 2, 3], max: 0) == [])
    }

    @Test func longestSuffixWinsOverAMoreRecentShorterOne() {
        // [1,2,3] occurred at the start (→ 8); only [2,3] occurred more recently (→ 7).
        #expect(d.draft([1, 2, 3, 8, 9, 2, 3, 7, 1, 2, 3], max: 3) == [8, 9, 2])
    }

    @Test func mostRecentAmongEqualLengths() {
        #expect(d.draft([1, 2, 5, 1, 2, 6, 1, 2], max: 3) == [6, 1, 2])
    }

    @Test func nothingWithoutAMatchOfAtLeastMinN() {
        #expect(d.draft([1, 2, 3, 1], max: 4) == [])
        #expect(d.draft([7], max: 4) == [])
        #expect(d.draft([], max: 4) == [])
        #expect(NGramDrafter(minN: 1, maxN: 3).draft([1, 2, 3, 1], max: 4) == [2, 3, 1])
    }

    @Test func overlappingRepetitionAndTheEndOfTheTokens() {
        // The longest suffix (3 of 4 tokens) occurred one position earlier: one token follows it.
        #expect(d.draft([5, 5, 5, 5], max: 4) == [5])
        #expect(d.draft([1, 2, 1, 2, 1, 2], max: 4) == [1, 2])
    }

    @Test func settingsParseWithTheirErrors() throws {
        #expect(try SpeculativeSyntax.method("ngram") == .ngram)
        #expect(try SpeculativeSyntax.method("OFF") == .off)
        #expect(throws: SpeculativeSettingError.draftUnavailable) { try SpeculativeSyntax.method("draft") }
        #expect(throws: SpeculativeSettingError.unknownMethod("fast")) { try SpeculativeSyntax.method("fast") }
        #expect(SpeculativeSettingError.draftUnavailable.description.contains("not available yet; use 'ngram'"))
        #expect(SpeculativeSettingError.unknownMethod("fast").description.contains("use one of off, ngram, draft"))
        #expect(throws: SpeculativeSettingError.kOutOfRange(0)) { try SpeculativeSyntax.k(0) }
        #expect(throws: SpeculativeSettingError.kOutOfRange(33)) { try SpeculativeSyntax.k(33) }
        #expect(try SpeculativeConfig.make(method: .off, k: nil) == nil)
        #expect(try SpeculativeConfig.make(method: .ngram, k: 7)?.k == 7)
        #expect(try SpeculativeConfig.make(method: .ngram, k: nil)?.k == SpeculativeSyntax.defaultK)
        #expect(throws: SpeculativeSettingError.draftUnavailable) { try SpeculativeConfig.make(method: .draft, k: nil) }
        #expect(throws: SpeculativeSettingError.kOutOfRange(0)) { try SpeculativeConfig.make(method: .ngram, k: 0) }
    }
}

/// The acceptance rule, against the exact distribution: the token `verify` returns for a point-mass
/// draft is distributed as the sampler's own distribution (chi-square at p = 0.001 over many
/// seeded trials), with and without truncation and penalties, for drafts inside and outside the
/// kept set; greedy returns the argmax and accepts exactly when it is the draft.
@Suite struct SpeculativeAcceptanceTests {
    static let logits: [Float] = [2.0, 1.0, 0.5, 3.0, -0.5, 1.5]

    func trials(_ params: SamplingParams, draft: Int32, history: [Int32] = [], n: Int = 30_000) -> (counts: [Int], accepted: Int) {
        var sampler = Sampler(params)
        var counts = [Int](repeating: 0, count: Self.logits.count)
        var accepted = 0
        for _ in 0..<n {
            var l = Self.logits
            let (t, ok) = sampler.verify(&l, history: history, draft: draft)
            counts[Int(t)] += 1
            if ok { accepted += 1; #expect(t == draft) } else { #expect(t != draft) }
        }
        return (counts, accepted)
    }

    /// Softmax of `w` (already scaled logits) over the ids in `keep`.
    static func softmax(_ w: [Double], keep: Set<Int>) -> [Double] {
        let e = w.enumerated().map { keep.contains($0.offset) ? exp($0.element) : 0 }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    func expectMatches(_ counts: [Int], _ probs: [Double], _ label: String) {
        let n = Double(counts.reduce(0, +))
        var chi = 0.0
        var cells = 0
        for (c, p) in zip(counts, probs) {
            if p == 0 { #expect(c == 0, "\(label): a token outside the distribution was drawn: \(counts)"); continue }
            chi += pow(Double(c) - n * p, 2) / (n * p)
            cells += 1
        }
        // Critical values at p = 0.001 for 1...5 degrees of freedom.
        let critical: [Double] = [10.83, 13.82, 16.27, 18.47, 20.52]
        #expect(chi < critical[max(0, min(4, cells - 2))], "\(label): chi-square \(chi) for \(counts) vs \(probs)")
    }

    @Test(arguments: [Int32(0), 3, 4])
    func temperatureOnly(_ draft: Int32) {
        var p = SamplingParams()
        p.temperature = 0.8
        p.seed = 3
        let want = Self.softmax(Self.logits.map { Double($0) / 0.8 }, keep: Set(0..<6))
        let (counts, accepted) = trials(p, draft: draft)
        expectMatches(counts, want, "T=0.8 draft \(draft)")
        #expect(accepted == counts[Int(draft)])
    }

    @Test(arguments: [Int32(0), 1])
    func topKKeepsThreeTokens(_ draft: Int32) {
        var p = SamplingParams()
        p.temperature = 1
        p.topK = 3
        p.seed = 4
        // The three largest logits: 3.0 (id 3), 2.0 (id 0), 1.5 (id 5). Draft 1 is outside: never accepted.
        let want = Self.softmax(Self.logits.map(Double.init), keep: [3, 0, 5])
        let (counts, accepted) = trials(p, draft: draft)
        expectMatches(counts, want, "top-k 3 draft \(draft)")
        if draft == 1 { #expect(accepted == 0) }
    }

    @Test(arguments: [Int32(5), 2])
    func topPKeepsTheSmallestPrefixOverP(_ draft: Int32) {
        var p = SamplingParams()
        p.temperature = 1
        p.topP = 0.8
        p.seed = 5
        // Probabilities in descending order 0.544 (3), 0.200 (0), 0.121 (5): 0.865 ≥ 0.8 after three.
        let want = Self.softmax(Self.logits.map(Double.init), keep: [3, 0, 5])
        let (counts, _) = trials(p, draft: draft)
        expectMatches(counts, want, "top-p 0.8 draft \(draft)")
    }

    @Test func penaltiesSeeTheHistory() {
        var p = SamplingParams()
        p.temperature = 1
        p.repetitionPenalty = 1.5
        p.minP = 0.05
        p.seed = 6
        // Token 3 was seen: 3.0 / 1.5 = 2.0. min-p keeps the tokens with at least 0.05 of the
        // best's probability (the truncated path, `truncatedCandidates`).
        var l = Self.logits.map(Double.init)
        l[3] = 2.0
        let top = l.max() ?? 0
        let keep = Set(l.indices.filter { exp(l[$0] - top) >= 0.05 })
        let want = Self.softmax(l, keep: keep)
        let (counts, _) = trials(p, draft: 3, history: [3])
        expectMatches(counts, want, "penalty + min-p")
    }

    @Test func greedyAcceptsExactlyTheArgmax() {
        var s = Sampler(.greedy)
        var l = Self.logits
        let right = s.verify(&l, history: [], draft: 3)
        #expect(right.token == 3 && right.accepted)
        l = Self.logits
        let wrong = s.verify(&l, history: [], draft: 0)
        #expect(wrong.token == 3 && !wrong.accepted)
        var penalised = SamplingParams.greedy
        penalised.repetitionPenalty = 2
        var sp = Sampler(penalised)
        l = Self.logits
        // 3.0 / 2 = 1.5 < 2.0: the penalty moves the argmax to token 0, as `sample` would.
        let moved = sp.verify(&l, history: [3], draft: 0)
        #expect(moved.token == 0 && moved.accepted)
    }
}

/// Speculative decoding end to end on the tiny generated models: whatever the drafts (all right,
/// all wrong, partly right, none, prompt lookup), under chunked prefill, a tight KV budget and the
/// prefix cache, greedy output is the plain single-sequence loop's, token for token; no KV block
/// leaks; the counters count.
@Suite struct TinySpeculativeTests {
    static let models = ["llama-f32.gguf", "glm4-f32.gguf"]

    /// A drafter from known continuations: for a sequence that starts with one of `answers`' prompts,
    /// the next expected tokens, each changed by `wrong(i)` (true: replaced by a wrong token).
    static func oracle(_ answers: [(prompt: [Int32], output: [Int32])], silent: Set<Int> = [],
                       wrong: @escaping @Sendable (Int) -> Bool) -> SpeculativeConfig.Drafter {
        let table = answers
        return .custom { tokens, k in
            guard let i = table.firstIndex(where: { tokens.starts(with: $0.prompt) }), !silent.contains(i) else { return [] }
            let a = table[i]
            let done = tokens.count - a.prompt.count
            guard done >= 0, done < a.output.count else { return [] }
            let next = a.output[done...].prefix(k)
            return next.enumerated().map { j, t in wrong(j) ? (t + 1) % 250 : t }
        }
    }

    static func scheduler(_ lm: LoadedModel, _ drafter: SpeculativeConfig.Drafter, k: Int = 4, maxSeqs: Int = 4,
                          maxBatchedTokens: Int = 64, blockSize: Int = 16, blocks: Int? = nil) -> Scheduler {
        var c = SchedulerConfig(maxSeqs: maxSeqs, maxBatchedTokens: maxBatchedTokens, kvCacheMB: 4, blockSize: blockSize,
                                kvCacheBlocks: blocks)
        c.speculative = SpeculativeConfig(k: k, drafter: drafter)
        return Scheduler(model: lm, config: c)
    }

    static func expected(_ lm: LoadedModel, _ ps: [[Int32]], _ n: Int) throws -> [(prompt: [Int32], output: [Int32])] {
        try ps.map { ($0, try TinySchedulerTests.plain(lm, $0, n)) }
    }

    @Test(arguments: models)
    func allRightAllWrongPartlyRightOrNoneGiveThePlainTokens(_ name: String) async throws {
        let lm = try TinySchedulerTests.load(name)
        let ps = TinySchedulerTests.prompts(6, lengths: 5...30, seed: 21)
        let n = 20
        let answers = try Self.expected(lm, ps, n)
        let cases: [(String, @Sendable (Int) -> Bool, Set<Int>)] = [
            ("all right", { _ in false }, []),
            ("all wrong", { _ in true }, []),
            ("right then wrong", { $0 >= 2 }, []),
            // Sequences 1 and 4 never draft: plain decodes in the same batches as speculative ones.
            ("mixed with plain decodes", { $0 == 3 }, [1, 4]),
        ]
        for (label, wrong, silent) in cases {
            let s = Self.scheduler(lm, Self.oracle(answers, silent: silent, wrong: wrong))
            s.start()
            defer { s.terminate() }
            let got = try await TinySchedulerTests.run(s, ps, n)
            #expect(got.map(\.ids) == answers.map(\.output), "\(name) \(label)")
            #expect(got.allSatisfy { $0.completion?.reason == .length && $0.completion?.completionTokens == n })
            #expect(await waitForFreeKV(s) == 0, "\(name) \(label): blocks leaked")
            let st = s.stats
            let drafted = got.reduce(0) { $0 + ($1.completion?.draftTokens ?? 0) }
            let accepted = got.reduce(0) { $0 + ($1.completion?.acceptedDraftTokens ?? 0) }
            #expect(st.specDraftTokens == drafted && st.specAcceptedTokens == accepted, "\(name) \(label)")
            #expect(drafted > 0, "\(name) \(label): nothing was drafted")
            for (i, c) in got.enumerated() where silent.contains(i) { #expect(c.completion?.draftTokens == 0) }
            switch label {
            case "all right":
                #expect(accepted == drafted, "\(name): every right draft is accepted")
                // Up to 4 right drafts + 1 bonus per step: all six sequences take fewer steps than
                // one of them needs without speculation (n).
                #expect(st.steps < n, "\(name): \(st.steps) steps")
            case "all wrong": #expect(accepted == 0, "\(name)")
            default: #expect(accepted > 0 && accepted < drafted, "\(name) \(label): \(accepted) of \(drafted)")
            }
        }
    }

    /// Drafts squeezed by a tiny step budget (chunked prefill beside them) and a KV budget that
    /// preempts: drafts are shortened (never taking a block from a sequence's own token) and the
    /// tokens stay the plain loop's.
    @Test(arguments: models)
    func tightBudgetsShortenDraftsAndKeepTheTokens(_ name: String) async throws {
        let lm = try TinySchedulerTests.load(name)
        let ps = TinySchedulerTests.prompts(5, lengths: 8...24, seed: 31)
        let n = 14
        let answers = try Self.expected(lm, ps, n)
        let longest = ps.map { $0.count + n }.max() ?? 0
        let s = Self.scheduler(lm, Self.oracle(answers, wrong: { $0 == 2 }), k: 6, maxSeqs: 4, maxBatchedTokens: 7,
                               blockSize: 4, blocks: 2 * ((longest + 3) / 4) + 1)
        s.start()
        defer { s.terminate() }
        let got = try await TinySchedulerTests.run(s, ps, n)
        #expect(got.map(\.ids) == answers.map(\.output))
        #expect(s.stats.preemptions > 0, "the KV budget was meant to preempt")
        #expect(s.stats.specAcceptedTokens > 0)
        #expect(await waitForFreeKV(s) == 0)
    }

    /// Rejected drafts wrote keys and values past a sequence's end; none of those blocks may enter
    /// the prefix cache. A later prompt that extends the first one (its answer included) is served
    /// from the cache and must still give the plain loop's tokens.
    @Test(arguments: models)
    func prefixCacheNeverHoldsRejectedPositions(_ name: String) async throws {
        let lm = try TinySchedulerTests.load(name)
        let p = TinySchedulerTests.prompts(1, lengths: 9...9, seed: 41)[0]
        let n = 24
        let first = try TinySchedulerTests.plain(lm, p, n)
        let longer = p + first
        let second = try TinySchedulerTests.plain(lm, longer, 6)
        // Every draft wrong for the first request; none for the second.
        let s = Self.scheduler(lm, Self.oracle([(longer, second), (p, first)], silent: [0], wrong: { _ in true }),
                               k: 8, blockSize: 4)
        s.start()
        defer { s.terminate() }
        let a = try await TinySchedulerTests.run(s, [p], n)
        #expect(a.map(\.ids) == [first])
        #expect((a.first?.completion?.draftTokens ?? 0) > 0)
        let b = try await TinySchedulerTests.run(s, [longer], 6)
        #expect(b.map(\.ids) == [second])
        #expect((b.first?.completion?.cachedTokens ?? 0) >= 28, "the second prompt was meant to hit the cache")
        #expect(await waitForFreeKV(s) == 0)
    }

    /// Prompt lookup on prompts that repeat themselves: the output is the plain loop's whatever the
    /// model does with the drafts, and a sequence drafts exactly when prompt lookup finds a match
    /// at one of its decode steps (predicted from the plain loop's tokens: a first draft is never
    /// paused, and the last step leaves no room for one).
    @Test(arguments: models)
    func ngramDraftingKeepsTheTokens(_ name: String) async throws {
        let lm = try TinySchedulerTests.load(name)
        let bases = TinySchedulerTests.prompts(3, lengths: 6...12, seed: 51)
        let ps = bases.map { $0 + $0 + $0 } + TinySchedulerTests.prompts(3, lengths: 10...20, seed: 52)
        let n = 24
        let expected = try ps.map { try TinySchedulerTests.plain(lm, $0, n) }
        let drafter = NGramDrafter()
        let predicted = zip(ps, expected).map { p, out in
            (1...(n - 2)).contains { i in !drafter.draft(p + out[0..<i], max: 1).isEmpty }
        }
        #expect(predicted.contains(true), "\(name): no sequence would draft; pick other prompts")
        // A step budget no step exhausts, so every decode step has room for drafts.
        var c = SchedulerConfig(maxSeqs: 8, maxBatchedTokens: 512, kvCacheMB: 4)
        c.speculative = try SpeculativeConfig.make(method: .ngram, k: 5)
        let s = Scheduler(model: lm, config: c)
        s.start()
        defer { s.terminate() }
        let got = try await TinySchedulerTests.run(s, ps, n)
        #expect(got.map(\.ids) == expected)
        #expect(got.map { ($0.completion?.draftTokens ?? 0) > 0 } == predicted)
        #expect(await waitForFreeKV(s) == 0)
    }

    /// Sampled requests (temperature, top-k, penalties, logprobs) through the verification path:
    /// each ends at max tokens with every token reported once (with its logprob), drafts are
    /// verified, and no block leaks. (Their distribution is `SpeculativeAcceptanceTests`' subject.)
    @Test func sampledRequestsVerifyDraftsAndFinish() async throws {
        let lm = try TinySchedulerTests.load("llama-f32.gguf")
        let ps = TinySchedulerTests.prompts(4, lengths: 6...16, seed: 81)
        let n = 16
        let answers = try Self.expected(lm, ps, n)
        let s = Self.scheduler(lm, Self.oracle(answers, wrong: { _ in false }))
        s.start()
        defer { s.terminate() }
        var params = SamplingParams()
        params.temperature = 0.7
        params.topK = 8
        params.repetitionPenalty = 1.1
        let hs = try ps.enumerated().map { i, p in
            params.seed = UInt64(i + 1)
            return try s.submit(GenerationRequest(promptIDs: p, maxTokens: n, sampling: params, ignoreEOS: true, logprobs: 2))
        }
        var drafted = 0
        for h in hs {
            var logprobs = 0
            var ids: [Int32] = []
            var completion: SequenceCompletion?
            for await e in h.events {
                switch e {
                case .token(let t):
                    ids.append(t.id)
                    if let lp = t.logprob, lp.id == t.id, lp.top.count == 2 { logprobs += 1 }
                case .finished(let f): completion = f
                }
            }
            #expect(ids.count == n && logprobs == n && completion?.reason == .length && completion?.completionTokens == n)
            drafted += completion?.draftTokens ?? 0
        }
        #expect(drafted > 0)
        #expect(await waitForFreeKV(s) == 0)
    }

    /// The logits of positions computed together in one forward pass equal those computed one
    /// token per pass, bit for bit: what makes greedy speculation identical to plain decoding.
    @Test(arguments: ["llama-f32.gguf", "llama-q.gguf", "qwen3-q.gguf", "glm4-q.gguf", "chatglm-q.gguf"])
    func multiTokenLogitsEqualSingleTokenLogits(_ name: String) throws {
        let lm = try TinySchedulerTests.load(name)
        try expectMultiTokenLogitsEqual(lm, prompt: TinySchedulerTests.prompts(1, lengths: 20...20, seed: 71)[0],
                                        continuation: TinySchedulerTests.prompts(1, lengths: 6...6, seed: 72)[0])
    }
}

/// With the real Qwen2.5-Coder 0.5B (Q4_K_M): a code-editing prompt decoded greedily with prompt
/// lookup gives exactly the plain loop's tokens; a grammar-constrained request beside it never
/// drafts and still gets the brute-force oracle's answer.
@Suite(.serialized) struct RealModelSpeculativeTests {
    static let source = """
    func fizzBuzz(_ n: Int) -> [String] {
        var out: [String] = []
        for i in 1...n {
            if i % 15 == 0 {
                out.append("FizzBuzz")
            } else if i % 3 == 0 {
                out.append("Fizz")
            } else if i % 5 == 0 {
                out.append("Buzz")
            } else {
                out.append(String(i))
            }
        }
        return out
    }
    """

    static func prompt(_ lm: LoadedModel) -> [Int32] {
        let text = "<|im_start|>user\nRewrite this Swift function with one change: rename `out` to `result`. "
            + "Reply with the code only.\n\n```swift\n\(source)\n```<|im_end|>\n<|im_start|>assistant\n"
        return lm.tokenizer.encode(text, addBOS: false, parseSpecial: true)
    }

    @Test func codeEditGreedyIsIdenticalWithPromptLookup() async throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let p = Self.prompt(lm)
        let n = 48
        let expected = try referenceGreedy(lm, p, maxTokens: n)
        var c = SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 512, kvCacheMB: 64, contextLength: 1024)
        c.speculative = try SpeculativeConfig.make(method: .ngram, k: 5)
        let s = Scheduler(model: lm, config: c)
        s.start()
        defer { s.terminate() }
        let got = await collect(try s.submit(GenerationRequest(promptIDs: p, maxTokens: n)))
        #expect(got.ids == expected, "\(lm.tokenizer.decode(got.ids)) vs \(lm.tokenizer.decode(expected))")
        let drafted = got.completion?.draftTokens ?? 0, accepted = got.completion?.acceptedDraftTokens ?? 0
        #expect(drafted > 0, "a code edit copies its prompt: prompt lookup was meant to draft")
        print("code edit: \(got.ids.count) tokens, \(drafted) drafted, \(accepted) accepted, \(s.stats.steps) steps")
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test func grammarConstrainedRequestsNeverDraft() async throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let t = ConstrainedDecodingTests()
        let g = try ConstrainedDecodingTests.choiceGrammar(ConstrainedDecodingTests.choices)
        let p = t.prompt(lm)
        let expected = try t.reference(lm, p, maxTokens: 10)
        var c = SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256)
        // A drafter that always proposes: only the unconstrained request may use it.
        c.speculative = SpeculativeConfig(k: 3, drafter: .custom { tokens, k in Array(tokens.suffix(k)) })
        let s = Scheduler(model: lm, config: c)
        s.start()
        defer { s.terminate() }
        let constrained = try s.submit(GenerationRequest(promptIDs: p, maxTokens: 10, grammar: g))
        let free = try s.submit(GenerationRequest(promptIDs: p, maxTokens: 10))
        let got = await collect(constrained)
        let other = await collect(free)
        #expect(got.ids == expected)
        #expect(got.completion?.draftTokens == 0)
        #expect((other.completion?.draftTokens ?? 0) > 0)
        #expect(other.ids == (try referenceGreedy(lm, p, maxTokens: 10)))
    }

    @Test func multiTokenLogitsEqualSingleTokenLogits() throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let p = Self.prompt(lm)
        try expectMultiTokenLogitsEqual(lm, prompt: Array(p.prefix(40)), continuation: Array(p[40..<46]))
    }
}

/// Feeds `prompt`, then `continuation` one token per forward pass into one cache and all at once
/// (logits `.all`) into another; every row must be bitwise equal.
func expectMultiTokenLogitsEqual(_ lm: LoadedModel, prompt: [Int32], continuation: [Int32]) throws {
    let vocab = lm.model.config.vocabulary
    let one = lm.model.makeCache(), many = lm.model.makeCache()
    _ = try lm.model.forward([SequenceInput(cache: one, tokens: prompt, logits: .none)], pool: lm.pool)
    _ = try lm.model.forward([SequenceInput(cache: many, tokens: prompt, logits: .none)], pool: lm.pool)
    var single: [Float] = []
    for t in continuation {
        single += try lm.model.forward([SequenceInput(cache: one, tokens: [t], logits: .last)], pool: lm.pool)[0]
    }
    let batched = try lm.model.forward([SequenceInput(cache: many, tokens: continuation, logits: .all)], pool: lm.pool)[0]
    #expect(batched.count == continuation.count * vocab)
    var worst: Float = 0
    var differing = 0
    for (a, b) in zip(single, batched) where a.bitPattern != b.bitPattern {
        differing += 1
        worst = max(worst, abs(a - b))
    }
    #expect(differing == 0, "\(differing) logits differ between one-token and multi-token passes (max |Δ| \(worst))")
}

/// Rule 3 of the policy, without a model: drafts ride in the leftover budget and free blocks only,
/// and `commit` keeps the accepted drafts' positions and frees the blocks of the rejected ones.
@Suite struct SpeculativePolicyTests {
    let t0 = ContinuousClock.now

    func policy(tokens: Int = 64, blocks: Int = 64, bs: Int = 4) -> SchedulePolicy {
        SchedulePolicy(maxSeqs: 4, maxBatchedTokens: tokens, allocator: BlockAllocator(totalBlocks: blocks, blockSize: bs))
    }

    /// Prefill of `prompt` as sequence `id`, then its first token `first` appended (a decoding sequence).
    func decoding(_ p: inout SchedulePolicy, _ id: UInt64, _ prompt: [Int32], first: Int32) {
        p.enqueue(PolicySequence(id: id, tokens: prompt, queued: t0))
        let plan = p.plan()
        p.completed(plan)
        p.append(id, token: first)
    }

    @Test func draftsRideAlongAndCommitKeepsOnlyTheAccepted() throws {
        var p = policy()
        decoding(&p, 1, [1, 2, 3, 4, 5, 6], first: 7)  // 7 tokens, 6 computed, 2 blocks
        let plan = p.plan(drafting: { s, limit in
            #expect(s.computed == 6 && limit == 63)
            return [8, 9, 10, 11]
        })
        let item = try #require(plan.items.first)
        #expect(item.start == 6 && item.count == 5 && item.drafts == [8, 9, 10, 11] && item.wantsLogits)
        #expect(item.blockTable.count == 3, "positions 6...10 need a third block")
        p.completed(plan)
        #expect(p.runningSequence(1)?.computed == 7, "only the known token counts as computed")
        // Two drafts accepted, then the correction 12.
        p.commit(1, tokens: [8, 9, 12], acceptedDrafts: 2)
        let s = try #require(p.runningSequence(1))
        #expect(s.tokens == [1, 2, 3, 4, 5, 6, 7, 8, 9, 12] && s.computed == 9)
        #expect(s.blockTable.count == 3)
        // None accepted: the third block held only rejected positions and goes back.
        let again = p.plan(drafting: { _, _ in [13, 14, 15] })
        p.completed(again)
        p.commit(1, tokens: [16], acceptedDrafts: 0)
        let t = try #require(p.runningSequence(1))
        #expect(t.computed == 10 && t.blockTable.count == 3 && t.tokens.count == 11)
        p.remove(1)
        #expect(p.allocator.usedCount == 0)
    }

    @Test func draftsGetOnlyTheLeftoverBudgetAndFreeBlocks() throws {
        var p = policy(tokens: 64, blocks: 64)
        p.enqueue(PolicySequence(id: 1, tokens: [1, 2, 3], queued: t0))
        p.enqueue(PolicySequence(id: 2, tokens: [5, 6, 7], queued: t0))
        let prefill = p.plan()
        p.completed(prefill)
        p.append(1, token: 4)
        p.append(2, token: 8)
        // Budget 4: the decode token of each sequence, then 2 left for drafts — the first
        // sequence's (a longer proposal is cut to the budget); the second finds none left.
        p.maxBatchedTokens = 4
        var asked: [Int] = []
        let plan = p.plan(drafting: { _, limit in asked.append(limit); return [9, 9, 9, 9] })
        #expect(asked == [2])
        #expect(plan.items.map(\.drafts.count) == [2, 0])
        #expect(plan.tokens == 4)

        // One block of 4 positions, used by positions 0...3: a draft needing a second block is
        // dropped rather than preempting or evicting anything.
        var q = policy(tokens: 64, blocks: 1)
        decoding(&q, 1, [1, 2, 3], first: 4)
        let tight = q.plan(drafting: { _, _ in [5, 6, 7] })
        #expect(tight.items.map(\.drafts) == [[]], "position 4 onwards needs a block that is not free")
        #expect(tight.preempted.isEmpty && tight.items.map(\.count) == [1])
    }

    @Test func cachedIdleBlocksAreNotEvictedForDrafts() throws {
        var p = policy(tokens: 64, blocks: 3)
        // A finished sequence leaves one full registered block cached (idle).
        decoding(&p, 1, [1, 2, 3, 4, 5], first: 6)
        p.remove(1)
        #expect(p.allocator.cachedIdleCount == 1)
        decoding(&p, 2, [9, 8, 7], first: 6)  // one block; one free block left, one cached
        let plan = p.plan(drafting: { _, _ in Array(repeating: 1, count: 8) })
        // Positions 3...11 need 3 blocks in all: the free one gives room up to position 7 (4 drafts).
        #expect(plan.items.first?.drafts.count == 4)
        #expect(p.allocator.cachedIdleCount == 1 && p.allocator.evictions == 0)
    }
}
