import Engine
import Foundation
import Testing
import Synchronization

/// The scheduler against the real gemma3 model. Prompts and token counts are small because the
/// reference kernels are slow; all assertions are about tokens, never about time.
@Suite(.serialized)
struct SchedulerTests {
    static let prompts = ["The capital of France is", "1, 2, 3, 4,", "Once upon a time"]

    func alone(_ lm: LoadedModel, _ prompt: String, maxTokens: Int) throws -> [Int32] {
        let ids = lm.tokenizer.encode(prompt)
        return try referenceGreedy(lm, ids, maxTokens: maxTokens)
    }

    @Test func concurrentGreedyMatchesAlone() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let n = 4
        let expected = try Self.prompts.map { try alone(lm, $0, maxTokens: n) }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 8, maxBatchedTokens: 64, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        let handles = try Self.prompts.map {
            try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode($0), maxTokens: n))
        }
        var got: [[Int32]] = []
        for h in handles { got.append(await collect(h).ids) }
        #expect(got == expected)
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test func chunkedPrefillMatchesAlone() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let prompt = "A list of fruits: apple, banana, cherry, date,"
        let expected = try alone(lm, prompt, maxTokens: 3)
        // 5 tokens per step forces the prompt through several chunks.
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 5, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        let h = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode(prompt), maxTokens: 3))
        let c = await collect(h)
        #expect(c.ids == expected)
        #expect(c.completion?.reason == .length)
        #expect(c.completion?.completionTokens == 3)
    }

    @Test func preemptionUnderTinyKVBudgetKeepsOutput() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let n = 5
        let prompts = Array(Self.prompts.prefix(2))
        let expected = try prompts.map { try alone(lm, $0, maxTokens: n) }
        let longest = prompts.map { lm.tokenizer.encode($0).count + n }.max() ?? 0
        // Blocks of 2 positions; room for one whole sequence plus a little: the second one must be
        // preempted (and recomputed) when the first grows.
        let blocks = (longest + 1) / 2 + 2
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64,
                                                             blockSize: 2, kvCacheBlocks: blocks))
        s.start()
        defer { s.terminate() }
        let handles = try prompts.map {
            try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode($0), maxTokens: n))
        }
        var got: [[Int32]] = []
        var preemptions = 0
        for h in handles {
            let c = await collect(h)
            got.append(c.ids)
            preemptions += c.completion?.timings.preemptions ?? 0
        }
        #expect(got == expected)
        #expect(preemptions > 0, "the budget was meant to force a preemption")
        #expect(s.stats.preemptions > 0)
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test func cancellationFreesBlocks() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        let h = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode("Tell me a story"),
                                               maxTokens: 200, ignoreEOS: true))
        var tokens = 0
        var reason: SequenceFinishReason?
        for await e in h.events {
            switch e {
            case .token:
                tokens += 1
                if tokens == 1 {
                    // Stats are published right after the step that produced this token.
                    var used = 0
                    for _ in 0..<200 where used == 0 {
                        used = s.stats.kvBlocksUsed
                        if used == 0 { try? await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(used > 0)
                    s.cancel(h.id)
                }
            case .finished(let f): reason = f.reason
            }
        }
        #expect(reason == .cancelled)
        #expect(tokens < 200)
        #expect(await waitForFreeKV(s) == 0)
        #expect(s.stats.running == 0)
    }

    @Test func stopStringAcrossTokenBoundary() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let prompt = "1, 2, 3, 4,"
        let n = 8
        let ids = try alone(lm, prompt, maxTokens: n)
        let eog = lm.tokenizer.endOfGenerationIDs
        let pieces = ids.filter { !eog.contains($0) }.map { lm.tokenizer.decode([$0]) }
        // A stop string made of the end of one token and the start of the next.
        guard let k = (1..<pieces.count).first(where: { !pieces[$0 - 1].isEmpty && !pieces[$0].isEmpty }) else {
            Issue.record("the model produced no two adjacent non-empty pieces: \(pieces)")
            return
        }
        let stop = String(pieces[k - 1].suffix(1)) + String(pieces[k].prefix(1))
        let full = lm.tokenizer.decode(ids.filter { !eog.contains($0) })
        guard let r = full.range(of: stop) else { Issue.record("stop \(stop) not in \(full)"); return }
        let expectedText = String(full[..<r.lowerBound])

        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        let h = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode(prompt), maxTokens: n,
                                               stop: ["never-appears-\u{1F600}", stop]))
        let c = await collect(h)
        #expect(c.completion?.reason == .stop)
        #expect(c.streamedText == expectedText)
        #expect(!c.streamedText.contains(stop))
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test func rejectsOverContextAndKVBudget() throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(kvCacheMB: 64, contextLength: 32))
        #expect(throws: SchedulerError.self) { _ = try s.submit(GenerationRequest(promptIDs: [2, 3, 4], maxTokens: 30)) }
        #expect(throws: SchedulerError.self) { _ = try s.submit(GenerationRequest(promptIDs: [], maxTokens: 1)) }
        #expect(throws: SchedulerError.self) { _ = try s.submit(GenerationRequest(promptIDs: [-1], maxTokens: 1)) }
        let tiny = Scheduler(model: lm, config: SchedulerConfig(blockSize: 4, kvCacheBlocks: 2))
        #expect(throws: SchedulerError.self) { _ = try tiny.submit(GenerationRequest(promptIDs: [2, 3, 4], maxTokens: 8)) }
    }

    @Test func seededSamplingIsReproducible() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64))
        s.start()
        defer { s.terminate() }
        var p = SamplingParams()
        p.temperature = 1.0
        p.seed = 42
        let prompt = lm.tokenizer.encode("Hello")
        let a = try s.submit(GenerationRequest(promptIDs: prompt, maxTokens: 4, sampling: p, logprobs: 2))
        let b = try s.submit(GenerationRequest(promptIDs: prompt, maxTokens: 4, sampling: p))
        let ca = await collect(a)
        let cb = await collect(b)
        #expect(ca.ids == cb.ids)
    }
}

/// `SchedulerConfig.batchWait`: an idle engine holds its first step for company. The wait is an
/// hour, so every test below can only finish if the wait ends for the reason it checks (the time
/// limit turns a wait that does not end into a failure instead of a hang).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BatchWaitTests {
    static let hour = Duration.seconds(3600)

    final class Steps: Sendable {
        let sizes = Mutex<[Int]>([])
        /// Records a step's size; returns how many steps there were before it.
        @discardableResult func add(_ n: Int) -> Int { sizes.withLock { $0.append(n); return $0.count - 1 } }
        var all: [Int] { sizes.withLock { $0 } }
    }

    /// A handle submitted from the step observer (on the engine thread).
    final class Late: Sendable {
        let handle = Mutex<Result<GenerationHandle, SchedulerError>?>(nil)
    }

    @Test func requestsArrivingApartArePrefilledTogetherOnceMaxSeqsWait() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let prompts = ["The capital of France is", "1, 2, 3, 4,"]
        let n = 3
        let expected = try prompts.map { try referenceGreedy(lm, lm.tokenizer.encode($0), maxTokens: n) }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, kvCacheMB: 64,
                                                             batchWait: Self.hour))
        let steps = Steps()
        s.setStepObserver { steps.add($0.sequences) }
        s.start()
        defer { s.terminate() }
        let a = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode(prompts[0]), maxTokens: n))
        try await Task.sleep(for: .milliseconds(100))
        // A alone is held: one waiting request is fewer than maxSeqs and it is far younger than an hour.
        #expect(s.stats.steps == 0)
        #expect(steps.all.isEmpty)
        let b = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode(prompts[1]), maxTokens: n))
        let ca = await collect(a)
        let cb = await collect(b)
        // The hour did not pass: the wait ended because maxSeqs (2) requests were waiting, and the
        // first forward pass carried both prompts.
        #expect(steps.all.first == 2)
        #expect(ca.ids == expected[0])
        #expect(cb.ids == expected[1])
        #expect(ca.completion?.reason == .length)
        #expect(await waitForFreeKV(s) == 0)
    }

    @Test func cancellingTheOnlyWaitingRequestFreesIt() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64,
                                                             batchWait: Self.hour))
        s.start()
        defer { s.terminate() }
        let submitted = ContinuousClock.now
        let h = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode("Hello there"), maxTokens: 4))
        // Let the engine take it and start holding it (it then counts as waiting, with no step run).
        var held = false
        for _ in 0..<200 where !held {
            held = s.stats.waiting == 1 && !s.stats.idle
            if !held { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(held)
        try await Task.sleep(for: .milliseconds(50))
        #expect(s.stats.steps == 0)
        // A deliberate hold counts as progress for /readyz (no step has run, yet the engine is not stalled).
        #expect(s.stats.lastProgress >= submitted)
        s.cancel(h.id)
        let c = await collect(h)
        #expect(c.completion?.reason == .cancelled)
        #expect(c.ids.isEmpty)
        var waiting = -1
        for _ in 0..<200 {
            waiting = s.stats.waiting
            if waiting == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(waiting == 0)
        #expect(s.stats.steps == 0)
        #expect(s.stats.kvBlocksUsed == 0)
    }

    @Test func drainingShutdownEndsTheWaitAndServesTheRequest() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64,
                                                             batchWait: Self.hour))
        s.start()
        let prompt = lm.tokenizer.encode("Once upon a time")
        let expected = try referenceGreedy(lm, prompt, maxTokens: 2)
        let h = try s.submit(GenerationRequest(promptIDs: prompt, maxTokens: 2))
        try await Task.sleep(for: .milliseconds(50))
        s.shutdown()
        let c = await collect(h)
        #expect(c.completion?.reason == .length)
        #expect(c.ids == expected)
        s.join(timeout: 60)
        #expect(s.stats.alive == false)
    }

    @Test func terminateDuringTheWaitCancelsAndExits() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64,
                                                             batchWait: Self.hour))
        s.start()
        let h = try s.submit(GenerationRequest(promptIDs: lm.tokenizer.encode("Hi"), maxTokens: 2))
        try await Task.sleep(for: .milliseconds(50))
        s.terminate()
        let c = await collect(h)
        #expect(c.completion?.reason == .cancelled)
        s.join(timeout: 60)
        #expect(s.stats.alive == false)
        #expect(s.stats.steps == 0)
    }

    @Test func aFullStepOfPromptTokensIsNotHeldNorAreRunningSequences() async throws {
        guard let lm = try TestModels.load(TestModels.gemma3) else { return }
        // A's prompt alone fills a step (8 tokens), so it starts at once; B arrives while A runs
        // and joins it. Neither would finish within the test's time limit if a step were held.
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 8, kvCacheMB: 64,
                                                             batchWait: Self.hour))
        let steps = Steps(), late = Late()
        let hi = GenerationRequest(promptIDs: lm.tokenizer.encode("Hi"), maxTokens: 4, ignoreEOS: true)
        // B is submitted right after A's first step, from the engine thread itself, so it arrives
        // while A still runs however late the test's own task gets to run on a loaded machine.
        s.setStepObserver { [weak s] info in
            guard steps.add(info.sequences) == 0, let s else { return }
            let r = Result { () throws(SchedulerError) in try s.submit(hi) }
            late.handle.withLock { $0 = r }
        }
        s.start()
        defer { s.terminate() }
        let long = lm.tokenizer.encode("A list of fruits: apple, banana, cherry, date,")
        #expect(long.count >= 8)
        let a = try s.submit(GenerationRequest(promptIDs: long, maxTokens: 12, ignoreEOS: true))
        let ca = await collect(a)
        #expect(ca.completion?.reason == .length)
        #expect(ca.ids.count == 12)
        let cb = try #require(late.handle.withLock { $0 }).get()
        let c = await collect(cb)
        #expect(c.completion?.reason == .length)
        #expect(c.ids.count == 4)
        #expect(steps.all.first == 1)
        #expect(steps.all.contains(2), "B was meant to join A's running batch")
    }
}

@Suite struct BlockAllocatorTests {
    @Test func allocateAndRelease() {
        var a = BlockAllocator(totalBlocks: 4, blockSize: 16)
        #expect(a.blocks(for: 0) == 0)
        #expect(a.blocks(for: 17) == 2)
        let x = a.allocate(3)
        #expect(x?.count == 3)
        #expect(a.allocate(2) == nil)
        #expect(a.freeCount == 1)
        a.release(x ?? [])
        #expect(a.usedCount == 0)
        #expect(a.usage == 0)
    }

    @Test func budgetInMegabytes() {
        let a = BlockAllocator(megabytes: 1, bytesPerPosition: 1024, blockSize: 16)
        #expect(a.totalBlocks == 64)
        #expect(a.capacityPositions == 1024)
    }
}
