import Engine
import Foundation
import Testing

/// The prefix-cache bookkeeping alone: content keys, reference counts, eviction order.
@Suite struct BlockAllocatorPrefixTests {
    let bs = 4
    func tokens(_ r: Range<Int32>) -> [Int32] { Array(r) }

    /// Takes blocks for `t`, registers every full one, and lets go of them (a finished sequence).
    func fill(_ a: inout BlockAllocator, _ t: [Int32]) -> [Int32] {
        let blocks = a.allocate(a.blocks(for: t.count)) ?? []
        var parent = BlockAllocator.rootHash
        for i in 0..<(t.count / bs) {
            parent = a.register(blocks[i], parent: parent, tokens: t[(i * bs)..<((i + 1) * bs)])
        }
        a.release(blocks)
        return blocks
    }

    @Test func fullBlocksAreFoundAgainByTheirTokensFromTheStart() {
        var a = BlockAllocator(totalBlocks: 8, blockSize: bs)
        let t = tokens(0..<10)  // two full blocks and a partial one
        let blocks = fill(&a, t)
        #expect(a.cachedIdleCount == 2)   // the partial block went back to the free list
        #expect(a.usedCount == 0)
        let hit = a.match(t, maxBlocks: 10)
        #expect(hit.blocks == Array(blocks.prefix(2)))
        #expect(hit.hashes.count == 2)
        #expect(hit.hashes.last == BlockAllocator.chain(BlockAllocator.chain(BlockAllocator.rootHash, t[0..<4]), t[4..<8]))
        #expect(a.usedCount == 2 && a.cachedIdleCount == 0)
        // The cap leaves the caller its last token to compute.
        a.release(hit.blocks)
        #expect(a.match(tokens(0..<8), maxBlocks: 1).blocks == [blocks[0]])
    }

    @Test func aDifferentTokenOrPositionIsAMiss() {
        var a = BlockAllocator(totalBlocks: 8, blockSize: bs)
        _ = fill(&a, tokens(0..<8))
        #expect(a.match([0, 1, 2, 9, 4, 5, 6, 7], maxBlocks: 4).blocks.isEmpty)
        // The second block's tokens after a different first block: the chain differs.
        #expect(a.match([9, 9, 9, 9, 4, 5, 6, 7], maxBlocks: 4).blocks.isEmpty)
        let partial = a.match([0, 1, 2, 3, 4, 5, 6, 9], maxBlocks: 4)
        #expect(partial.blocks.count == 1)
    }

    @Test func sharedBlocksCountTheirOwners() {
        var a = BlockAllocator(totalBlocks: 4, blockSize: bs)
        let blocks = fill(&a, tokens(0..<8))
        let x = a.match(tokens(0..<9), maxBlocks: 2)
        let y = a.match(tokens(0..<9), maxBlocks: 2)
        #expect(x.blocks == y.blocks && x.blocks == blocks)
        #expect(a.owners(of: blocks[0]) == 2)
        #expect(a.usedCount == 2)
        a.release(x.blocks)
        #expect(a.usedCount == 2 && a.cachedIdleCount == 0)
        a.release(y.blocks)
        #expect(a.usedCount == 0 && a.cachedIdleCount == 2)
        // Owned blocks are never evicted: with both taken again only the 2 free blocks remain.
        _ = a.match(tokens(0..<9), maxBlocks: 2)
        #expect(a.allocate(3) == nil)
        #expect(a.allocate(2)?.count == 2)
        #expect(a.evictions == 0)
    }

    @Test func evictionGivesUpTheOldestReleaseAndASequenceTailFirst() {
        var a = BlockAllocator(totalBlocks: 3, blockSize: bs)
        let blocks = fill(&a, tokens(0..<12))
        #expect(a.cachedIdleCount == 3 && a.freeCount == 3)
        // One block needed: the last block of the sequence goes first; its prefix stays.
        #expect(a.allocate(1) == [blocks[2]])
        #expect(a.evictions == 1)
        #expect(a.match(tokens(0..<13), maxBlocks: 3).blocks == Array(blocks.prefix(2)))
    }

    @Test func theSameContentTwiceIsCachedOnce() {
        var a = BlockAllocator(totalBlocks: 4, blockSize: bs)
        let first = fill(&a, tokens(0..<4))
        let again = a.allocate(1) ?? []
        #expect(again != first)  // a free block comes before evicting a cached one
        a.register(again[0], parent: BlockAllocator.rootHash, tokens: tokens(0..<4)[...])
        a.release(again)
        #expect(a.cachedIdleCount == 1)
        #expect(a.match(tokens(0..<5), maxBlocks: 1).blocks == first)
    }
}

/// Greedy outputs with the prefix cache are the outputs without it: after hits, after
/// eviction, after preemption, and for n > 1; on both real models (gemma3-270m, Qwen2.5-Coder-0.5B).
@Suite(.serialized)
struct PrefixCacheTests {
    static let shared = "You are a careful assistant. Answer briefly and exactly. The context below lists facts about the solar system and the planets in order from the sun."

    func prompts(_ lm: LoadedModel, _ suffixes: [String]) -> [[Int32]] {
        let head = lm.tokenizer.encode(Self.shared)
        return suffixes.map { head + lm.tokenizer.encode(" " + $0, addBOS: false) }
    }

    /// Runs `prompts` one after another (each finishes before the next starts).
    func sequential(_ lm: LoadedModel, _ config: SchedulerConfig, _ prompts: [[Int32]], maxTokens: Int) async throws
        -> (outs: [Collected], stats: SchedulerStats) {
        let s = Scheduler(model: lm, config: config)
        s.start()
        defer { s.terminate() }
        var outs: [Collected] = []
        for p in prompts { outs.append(await collect(try s.submit(GenerationRequest(promptIDs: p, maxTokens: maxTokens)))) }
        _ = await waitForFreeKV(s)
        return (outs, s.stats)
    }

    func hitsMatchCacheOff(_ name: String) async throws {
        guard let lm = try TestModels.load(name) else { return }
        let ps = prompts(lm, ["Which planet is third?", "Which planet is largest?", "Which planet is third?"])
        let on = SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64)
        var off = on
        off.prefixCaching = false
        let a = try await sequential(lm, on, ps, maxTokens: 4)
        let b = try await sequential(lm, off, ps, maxTokens: 4)
        #expect(a.outs.map(\.ids) == b.outs.map(\.ids))
        let common = zip(ps[0], ps[1]).prefix(while: { $0 == $1 }).count
        let cached = a.outs.map { $0.completion?.cachedTokens ?? -1 }
        #expect(cached[0] == 0)
        #expect(cached[1] == common / 16 * 16, "the shared start's full blocks: \(cached)")
        #expect(cached[1] >= 32)
        #expect(cached[2] == (ps[2].count - 1) / 16 * 16, "the repeated prompt, all but its last block: \(cached)")
        #expect(b.outs.allSatisfy { $0.completion?.cachedTokens == 0 })
        #expect(a.stats.prefixCacheQueries == ps.map(\.count).reduce(0, +))
        #expect(a.stats.prefixCacheHits == cached.reduce(0, +))
        #expect(b.stats.prefixCacheHits == 0)
    }

    @Test func gemmaHitsMatchCacheOff() async throws { try await hitsMatchCacheOff(TestModels.gemma3) }
    @Test func qwenHitsMatchCacheOff() async throws { try await hitsMatchCacheOff(TestModels.qwen25) }

    /// A second turn that repeats the first turn and its answer reuses all of it.
    @Test func nextTurnReusesTheConversation() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let first = prompts(lm, ["Name the third planet."])[0]
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        let answer = await collect(try s.submit(GenerationRequest(promptIDs: first, maxTokens: 6, ignoreEOS: true)))
        let second = first + answer.ids + lm.tokenizer.encode(" And the fourth?", addBOS: false)
        let c = await collect(try s.submit(GenerationRequest(promptIDs: second, maxTokens: 1)))
        // Every full block of the first turn, including those its answer filled, except a block
        // whose last position was the final answer token (never fed back, so never computed).
        #expect((c.completion?.cachedTokens ?? 0) >= (first.count + answer.ids.count - 1) / 16 * 16)
    }

    /// A budget that holds one sequence: the next prompt evicts the cached blocks, and the first
    /// prompt, run again, is computed again with the same output.
    @Test(arguments: [TestModels.gemma3, TestModels.qwen25])
    func afterEvictionTheOutputIsUnchanged(_ model: String) async throws {
        guard let lm = try TestModels.load(model) else { return }
        let ps = prompts(lm, ["Which planet is third?"]) + [lm.tokenizer.encode(String(repeating: "An unrelated prompt about cooking pasta in salted water until it is done. ", count: 3))]
        let longest = ps.map(\.count).max() ?? 0
        var on = SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, blockSize: 16, kvCacheBlocks: (longest + 4 + 15) / 16)
        let a = try await sequential(lm, on, [ps[0], ps[1], ps[0]], maxTokens: 4)
        on.prefixCaching = false
        let b = try await sequential(lm, on, [ps[0], ps[1], ps[0]], maxTokens: 4)
        #expect(a.outs.map(\.ids) == b.outs.map(\.ids))
        #expect(a.stats.kvEvictions > 0)
        #expect(a.outs[2].completion?.cachedTokens == 0, "the unrelated prompt was meant to evict the first one")
    }

    /// Preemption under a tiny budget with the cache on keeps the outputs of the cache-off run
    /// (the preempted sequence comes back through its own cached blocks where they survived).
    @Test(arguments: [TestModels.gemma3, TestModels.qwen25])
    func afterPreemptionTheOutputIsUnchanged(_ model: String) async throws {
        guard let lm = try TestModels.load(model) else { return }
        let ps = ["The capital of France is", "1, 2, 3, 4,"].map { lm.tokenizer.encode($0) }
        let n = 5
        let longest = ps.map { $0.count + n }.max() ?? 0
        func run(_ caching: Bool) async throws -> ([[Int32]], Int) {
            // Blocks of 2 positions, room for one whole sequence plus a little.
            let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, blockSize: 2,
                                                                 kvCacheBlocks: (longest + 1) / 2 + 2, prefixCaching: caching))
            s.start()
            defer { s.terminate() }
            let hs = try ps.map { try s.submit(GenerationRequest(promptIDs: $0, maxTokens: n)) }
            var ids: [[Int32]] = []
            for h in hs { ids.append(await collect(h).ids) }
            #expect(await waitForFreeKV(s) == 0)
            return (ids, s.stats.preemptions)
        }
        let (on, preempted) = try await run(true)
        let (off, _) = try await run(false)
        #expect(on == off)
        #expect(preempted > 0, "the budget was meant to force a preemption")
    }

    /// n > 1 (one API call, identical prompts): the prompt's blocks are computed once and shared;
    /// each choice equals the cache-off output.
    @Test(arguments: [TestModels.gemma3, TestModels.qwen25])
    func choicesShareThePrompt(_ model: String) async throws {
        guard let lm = try TestModels.load(model) else { return }
        let p = prompts(lm, ["Which planet is third?"])[0]
        func run(_ caching: Bool) async throws -> [Collected] {
            let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 256, kvCacheMB: 64,
                                                                 prefixCaching: caching))
            s.start()
            defer { s.terminate() }
            let hs = try s.submitAll(Array(repeating: GenerationRequest(promptIDs: p, maxTokens: 4), count: 3), maxWaiting: 8)
            var out: [Collected] = []
            for h in hs { out.append(await collect(h)) }
            return out
        }
        let on = try await run(true), off = try await run(false)
        #expect(on.map(\.ids) == off.map(\.ids))
        let cached = on.map { $0.completion?.cachedTokens ?? -1 }
        #expect(cached[0] == 0)
        #expect(cached[1] == (p.count - 1) / 16 * 16 && cached[2] == cached[1], "siblings share the prompt: \(cached)")
    }
}
