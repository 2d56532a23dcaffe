import Engine
import Testing

/// The scheduling policy alone: no model, no threads, instants chosen by the test.
@Suite struct SchedulePolicyTests {
    let t0 = ContinuousClock.now

    func policy(maxSeqs: Int = 4, tokens: Int = 64, blocks: Int = 64, bs: Int = 4, caching: Bool = true,
                wait: Duration = .zero) -> SchedulePolicy {
        SchedulePolicy(maxSeqs: maxSeqs, maxBatchedTokens: tokens, prefixCaching: caching, batchWait: wait,
                       allocator: BlockAllocator(totalBlocks: blocks, blockSize: bs))
    }

    func seq(_ id: UInt64, _ tokens: [Int32]) -> PolicySequence { PolicySequence(id: id, tokens: tokens, queued: t0) }

    /// Runs one step as the engine would: plan, compute, one new token per sequence that wanted logits.
    @discardableResult
    func step(_ p: inout SchedulePolicy, token: Int32 = 7) -> StepPlan {
        let plan = p.plan()
        p.completed(plan)
        for item in plan.items where item.wantsLogits { p.append(item.id, token: token) }
        return plan
    }

    func summary(_ plan: StepPlan) -> [String] { plan.items.map { "\($0.id):\($0.start)+\($0.count)\($0.wantsLogits ? "*" : "")" } }

    @Test func promptsArePrefilledInChunksOfTheStepBudget() {
        var p = policy(tokens: 5)
        p.enqueue(seq(1, Array(0..<12)))
        #expect(summary(step(&p)) == ["1:0+5"])
        #expect(summary(step(&p)) == ["1:5+5"])
        #expect(summary(step(&p)) == ["1:10+2*"])
        #expect(summary(step(&p)) == ["1:12+1*"])  // decode
    }

    @Test func runningSequencesGoFirstAndAdmissionIsFirstComeFirstServed() {
        var p = policy(maxSeqs: 2, tokens: 8)
        p.enqueue(seq(1, Array(0..<6)))
        p.enqueue(seq(2, Array(100..<104)))
        p.enqueue(seq(3, Array(200..<202)))
        // 1 takes 6 tokens, 2 gets the remaining 2 of the budget; 3 waits for a sequence slot.
        #expect(summary(step(&p)) == ["1:0+6*", "2:0+2"])
        #expect(summary(step(&p)) == ["1:6+1*", "2:2+2*"])
        #expect(p.waiting.map(\.id) == [3])
        p.remove(1)
        #expect(summary(step(&p)) == ["2:4+1*", "3:0+2*"])
    }

    @Test func outOfBlocksTheNewestRunningSequenceIsPreemptedAndComesBackFirst() {
        // 4 blocks of 2 positions: two 3-token prompts fit (2 blocks each) until both grow.
        var p = policy(tokens: 64, blocks: 4, bs: 2, caching: false)
        p.enqueue(seq(1, [1, 2, 3]))
        p.enqueue(seq(2, [4, 5, 6]))
        #expect(summary(step(&p, token: 7)) == ["1:0+3*", "2:0+3*"])
        #expect(summary(step(&p, token: 8)) == ["1:3+1*", "2:3+1*"])
        let plan = step(&p, token: 9)  // 1 needs a third block for position 4: 2 is preempted
        #expect(plan.preempted == [2])
        #expect(summary(plan) == ["1:4+1*"])
        #expect(p.waiting.map(\.id) == [2] && p.waiting[0].computed == 0 && p.waiting[0].blockTable.isEmpty)
        #expect(p.waiting[0].tokens == [4, 5, 6, 7, 8], "its generated tokens are kept and recomputed")
        #expect(p.preemptions == 1)
        #expect(p.allocator.usedCount == 3)
        p.remove(1)
        #expect(summary(step(&p)) == ["2:0+5*"])
    }

    @Test func aPromptStartsAfterItsCachedPrefix() {
        var p = policy(bs: 4)
        p.enqueue(seq(1, Array(0..<10)))
        step(&p)
        p.remove(1)
        #expect(p.allocator.cachedIdleCount == 2)
        p.enqueue(seq(2, Array(0..<8) + [50, 51, 52]))
        let plan = step(&p)
        #expect(summary(plan) == ["2:8+3*"])
        #expect(p.runningSequence(2)?.cachedTokens == 8)
        #expect(p.prefixQueries == 21 && p.prefixHits == 8)
        // The same prompt again: all but its last block (its last token must be computed).
        p.enqueue(seq(3, Array(0..<8)))
        #expect(summary(step(&p)) == ["2:11+1*", "3:4+4*"])
    }

    @Test func noCachingMeansNoHits() {
        var p = policy(caching: false)
        p.enqueue(seq(1, Array(0..<10)))
        step(&p)
        p.remove(1)
        p.enqueue(seq(2, Array(0..<10)))
        #expect(summary(step(&p)) == ["2:0+10*"])
        #expect(p.prefixHits == 0 && p.allocator.cachedIdleCount == 0)
    }

    @Test func identicalPromptsTogetherComputeTheirSharedBlocksOnce() {
        var p = policy(bs: 4)
        for id in 1...3 { p.enqueue(seq(UInt64(id), Array(0..<10))) }
        #expect(summary(step(&p)) == ["1:0+10*"])
        #expect(p.waiting.map(\.id) == [2, 3])
        let plan = step(&p)
        #expect(summary(plan) == ["1:10+1*", "2:8+2*", "3:8+2*"])
        #expect(plan.admitted == [2, 3])
        #expect(p.runningSequence(3)?.cachedTokens == 8)
        #expect(p.allocator.owners(of: p.runningSequence(1)?.blockTable[0] ?? -1) == 3)
    }

    @Test func theBatchWaitEndsAtTheOldestRequestPlusTheWait() {
        var p = policy(maxSeqs: 3, tokens: 64, wait: .milliseconds(50))
        #expect(p.batchWaitDeadline(now: t0) == nil)  // nothing waiting
        p.enqueue(seq(1, [1, 2, 3]))
        #expect(p.batchWaitDeadline(now: t0) == t0 + .milliseconds(50))
        #expect(p.batchWaitDeadline(now: t0 + .milliseconds(50)) == nil)
        p.enqueue(seq(2, [4, 5]))
        p.enqueue(seq(3, [6]))
        #expect(p.batchWaitDeadline(now: t0) == nil, "maxSeqs requests are waiting")
        p.remove(3)
        step(&p)
        p.enqueue(seq(4, [9]))
        #expect(p.batchWaitDeadline(now: t0) == nil, "never delays running sequences")
        var big = policy(maxSeqs: 8, tokens: 4, wait: .seconds(1))
        big.enqueue(seq(1, Array(0..<4)))
        #expect(big.batchWaitDeadline(now: t0) == nil, "a full step of prompt tokens is waiting")
    }

    @Test func removingAWaitingOrUnknownSequence() {
        var p = policy()
        p.enqueue(seq(1, [1, 2]))
        #expect(p.remove(1)?.id == 1)
        #expect(p.remove(1) == nil)
        #expect(p.isIdle)
    }
}
