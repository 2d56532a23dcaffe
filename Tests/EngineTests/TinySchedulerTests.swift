import Engine
import Foundation
import Models
import Testing

/// The scheduler end to end on the tiny generated reference models (2 layers, 64 wide, made by
/// scripts/make-reference-models.py; their logits are checked against llama.cpp in ModelsTests):
/// every batched, chunked, preempted, evicted or prefix-cached run must give the tokens of a
/// plain single-sequence loop over `forward`. Milliseconds per test.
@Suite struct TinySchedulerTests {
    static let models = ["llama-f32.gguf", "glm4-f32.gguf"]

    static func load(_ name: String) throws -> LoadedModel {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ModelsTests/Fixtures/reference").standardizedFileURL
        return try LoadedModel(path: dir.appendingPathComponent(name).path, threads: 2)
    }

    /// Deterministic pseudo-random prompts over the ordinary tokens (ids below BOS).
    static func prompts(_ count: Int, lengths: ClosedRange<Int>, head: [Int32] = [], seed: UInt64 = 1) -> [[Int32]] {
        var x = seed
        func next() -> UInt64 { x = x &* 6364136223846793005 &+ 1442695040888963407; return x >> 33 }
        return (0..<count).map { _ in
            let n = lengths.lowerBound + Int(next() % UInt64(lengths.count))
            return head + (0..<n).map { _ in Int32(next() % 256) }
        }
    }

    /// The oracle: one sequence, one token at a time after the prompt, greedy (Support.swift).
    static func plain(_ lm: LoadedModel, _ prompt: [Int32], _ n: Int) throws -> [Int32] {
        try referenceGreedy(lm, prompt, maxTokens: n, ignoreEOS: true)
    }

    static func run(_ s: Scheduler, _ prompts: [[Int32]], _ n: Int) async throws -> [Collected] {
        // All at once (one lock): submitted one by one, the engine could finish the first before
        // the last arrived on a busy machine, and a test counting on them running together (to
        // preempt) saw none.
        let hs = try s.submitAll(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: n, ignoreEOS: true) }, maxWaiting: Int.max)
        var out: [Collected] = []
        for h in hs { out.append(await collect(h)) }
        return out
    }

    @Test(arguments: models)
    func batchedChunkedEqualsAlone(_ name: String) async throws {
        let lm = try Self.load(name)
        let ps = Self.prompts(6, lengths: 5...40)
        let expected = try ps.map { try Self.plain(lm, $0, 12) }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 16, kvCacheMB: 4))
        s.start()
        defer { s.terminate() }
        let got = try await Self.run(s, ps, 12)
        #expect(got.map(\.ids) == expected)
        #expect(await waitForFreeKV(s) == 0)
    }

    /// Shared heads, a budget that forces preemption and eviction, the cache on: still the
    /// plain loop's tokens, with hits counted.
    @Test(arguments: models)
    func prefixHitsPreemptionAndEvictionKeepTheTokens(_ name: String) async throws {
        let lm = try Self.load(name)
        let head = Self.prompts(1, lengths: 24...24, seed: 7)[0]
        let ps = Self.prompts(8, lengths: 3...12, head: head, seed: 3)
        let n = 10
        let expected = try ps.map { try Self.plain(lm, $0, n) }
        let longest = ps.map { $0.count + n }.max() ?? 0
        // Blocks of 4: room for about two sequences, so four at once must preempt; later
        // prompts find the head cached; unrelated work in between evicts it.
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 32, blockSize: 4,
                                                             kvCacheBlocks: 2 * ((longest + 3) / 4) + 1))
        s.start()
        defer { s.terminate() }
        var got = try await Self.run(s, Array(ps[0..<4]), n)
        let filler = Self.prompts(2, lengths: 40...44, seed: 99)
        _ = try await Self.run(s, filler, n)
        got += try await Self.run(s, Array(ps[4..<8]), n)
        #expect(got.map(\.ids) == expected)
        let st = s.stats
        #expect(st.preemptions > 0, "four sequences were meant not to fit")
        #expect(st.kvEvictions > 0, "the filler was meant to evict cached blocks")
        #expect(st.prefixCacheHits > 0 && got.contains { ($0.completion?.cachedTokens ?? 0) >= 24 })
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test(arguments: models)
    func choicesOfOnePromptShareItsBlocks(_ name: String) async throws {
        let lm = try Self.load(name)
        let p = Self.prompts(1, lengths: 30...30, seed: 5)[0]
        let expected = try Self.plain(lm, p, 6)
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 4, blockSize: 8))
        s.start()
        defer { s.terminate() }
        let hs = try s.submitAll(Array(repeating: GenerationRequest(promptIDs: p, maxTokens: 6, ignoreEOS: true), count: 3),
                                 maxWaiting: 8)
        var got: [Collected] = []
        for h in hs { got.append(await collect(h)) }
        #expect(got.allSatisfy { $0.ids == expected })
        #expect(got.map { $0.completion?.cachedTokens ?? -1 } == [0, 24, 24])
        #expect(s.stats.prefixCacheQueries == 90 && s.stats.prefixCacheHits == 48)
    }

    /// Many distinct prompts through a small budget: the cache never holds more than the
    /// budget, nothing leaks, and every answer is still the plain loop's.
    @Test func cacheThrashStaysWithinTheBudget() async throws {
        let lm = try Self.load("llama-f32.gguf")
        let ps = Self.prompts(24, lengths: 10...30, seed: 11)
        let expected = try ps.map { try Self.plain(lm, $0, 4) }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, blockSize: 4, kvCacheBlocks: 40))
        s.start()
        defer { s.terminate() }
        var got: [[Int32]] = []
        for batch in stride(from: 0, to: ps.count, by: 6) {
            got += try await Self.run(s, Array(ps[batch..<(batch + 6)]), 4).map(\.ids)
            let st = s.stats
            #expect(st.kvBlocksUsed + st.kvBlocksCachedIdle <= st.kvBlocksTotal)
        }
        #expect(got == expected)
        #expect(await waitForFreeKV(s) == 0)
        #expect(s.stats.kvEvictions > 0)
    }
}
