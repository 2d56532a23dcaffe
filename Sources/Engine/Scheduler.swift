import Foundation
import Models
import Tokenizers

// MARK: - Public request / event types

/// One generation request as the scheduler sees it: token ids in, events out.
public struct GenerationRequest: Sendable {
    public var promptIDs: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingParams
    public var ignoreEOS: Bool
    /// Stop strings: generation ends when the detokenized text contains one; it is not emitted.
    public var stop: [String]
    /// Return the chosen token's log-probability plus this many top alternatives (nil: none).
    public var logprobs: Int?

    public init(promptIDs: [Int32], maxTokens: Int, sampling: SamplingParams = .greedy,
                ignoreEOS: Bool = false, stop: [String] = [], logprobs: Int? = nil) {
        self.promptIDs = promptIDs
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.ignoreEOS = ignoreEOS
        self.stop = stop
        self.logprobs = logprobs
    }
}

/// Why a scheduled sequence ended.
public enum SequenceFinishReason: String, Sendable {
    case stop       // end-of-generation token or a stop string
    case length     // max tokens or the context / KV budget reached
    case cancelled  // cancelled by the caller (disconnect, timeout)
    case error      // the forward pass failed
}

/// Log-probability of one generated token and the most likely alternatives.
public struct TokenLogprob: Sendable {
    public var id: Int32
    public var logprob: Float
    public var top: [(id: Int32, logprob: Float)]
}

/// One generated token. `text` is the text released with this token: it may be empty (an
/// incomplete UTF-8 sequence or a possible stop-string prefix is held back) or carry text
/// held back from earlier tokens.
public struct TokenEvent: Sendable {
    public var id: Int32
    public var text: String
    public var logprob: TokenLogprob?
    public var time: ContinuousClock.Instant
}

/// Monotonic timestamps of one sequence; the frontend derives TTFT / ITL / e2e from them.
public struct SequenceTimings: Sendable {
    public var queued: ContinuousClock.Instant
    public var scheduled: ContinuousClock.Instant?
    public var firstToken: ContinuousClock.Instant?
    public var finished: ContinuousClock.Instant?
    public var preemptions: Int = 0
}

/// The end of a sequence.
public struct SequenceCompletion: Sendable {
    public var reason: SequenceFinishReason
    /// Final text released at the end (held-back text that turned out not to be a stop prefix).
    public var text: String
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens whose keys and values came from the prefix cache (not computed).
    public var cachedTokens: Int = 0
    public var timings: SequenceTimings
    /// Set when `reason == .error`.
    public var error: String?
}

public enum GenerationEvent: Sendable {
    case token(TokenEvent)
    case finished(SequenceCompletion)
}

/// A stream of events of one submitted request plus its id (for `cancel`).
public struct GenerationHandle: Sendable {
    public let id: UInt64
    public let events: AsyncStream<GenerationEvent>
}

/// Scheduler limits.
public struct SchedulerConfig: Sendable {
    /// Concurrently running sequences.
    public var maxSeqs: Int = 8
    /// Tokens (decode tokens plus prefill chunks) in one forward pass.
    public var maxBatchedTokens: Int = 512
    /// KV-cache budget in MiB.
    public var kvCacheMB: Int = 512
    /// Positions per KV block.
    public var blockSize: Int = 16
    /// Largest prompt + generated length of one sequence (default: the model context).
    public var contextLength: Int? = nil
    /// Exact number of KV blocks (overrides `kvCacheMB`; for tests and tiny budgets).
    public var kvCacheBlocks: Int? = nil
    /// Precision of the sequences' KV caches (F16 like llama.cpp's default; the KV budget counts its real bytes).
    public var kvPrecision: KVCache.Precision = .f16
    /// Batch wait (like Triton's max queue delay): when no sequence is running and fewer than
    /// `maxSeqs` are waiting, the engine holds the first step until the oldest waiting request is
    /// this old, `maxSeqs` requests (or a full step of prompt tokens) are waiting, or a stop
    /// arrives, so requests arriving together are prefilled in one batch. Never delays a step
    /// while sequences are running. Zero (the default) never waits.
    public var batchWait: Duration = .zero
    /// Automatic prefix caching: full KV blocks are kept after their sequence ends and reused by
    /// any later request whose prompt starts with the same tokens (`serve --no-prefix-cache`: off).
    public var prefixCaching: Bool = true

    public init(maxSeqs: Int = 8, maxBatchedTokens: Int = 512, kvCacheMB: Int = 512,
                blockSize: Int = 16, contextLength: Int? = nil, kvCacheBlocks: Int? = nil,
                kvPrecision: KVCache.Precision = .f16, batchWait: Duration = .zero,
                prefixCaching: Bool = true) {
        self.prefixCaching = prefixCaching
        self.kvCacheBlocks = kvCacheBlocks
        self.kvPrecision = kvPrecision
        self.batchWait = batchWait
        self.maxSeqs = maxSeqs
        self.maxBatchedTokens = maxBatchedTokens
        self.kvCacheMB = kvCacheMB
        self.blockSize = blockSize
        self.contextLength = contextLength
    }
}

/// What the engine reports about itself (health, readiness, metrics).
public struct SchedulerStats: Sendable {
    public var running: Int = 0
    public var waiting: Int = 0
    public var kvUsage: Double = 0
    public var kvBlocksUsed: Int = 0
    public var kvBlocksTotal: Int = 0
    public var steps: Int = 0
    public var preemptions: Int = 0
    /// Prompt tokens looked up in the prefix cache, and those found there (admissions only).
    public var prefixCacheQueries: Int = 0
    public var prefixCacheHits: Int = 0
    /// Cached KV blocks no running sequence owns (kept for prefix hits, evicted under pressure).
    public var kvBlocksCachedIdle: Int = 0
    /// Cached blocks given up to make room (since start).
    public var kvEvictions: Int = 0
    /// Duration of the last forward step, seconds.
    public var lastStepSeconds: Double = 0
    /// When the loop last went round (or started waiting idle).
    public var lastHeartbeat: ContinuousClock.Instant
    /// When a step last finished.
    public var lastProgress: ContinuousClock.Instant
    /// True while the loop sleeps with nothing to do.
    public var idle: Bool = true
    /// False once the loop has exited (after `shutdown`).
    public var alive: Bool = true
}

/// Per-step facts, handed to an observer on the engine thread (keep it cheap).
public struct StepInfo: Sendable {
    public var sequences: Int
    public var tokens: Int
    public var seconds: Double
}

public enum SchedulerError: Error, CustomStringConvertible, Sendable {
    case emptyPrompt
    case exceedsContext(promptTokens: Int, maxTokens: Int, context: Int)
    case exceedsKVBudget(positions: Int, capacity: Int)
    case shuttingDown
    case invalid(String)
    /// Admitting `asked` more sequences would put more than `limit` in the queue.
    case queueFull(waiting: Int, asked: Int, limit: Int)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty: give at least one token"
        case .exceedsContext(let p, let m, let c):
            return "the prompt has \(p) tokens and max_tokens is \(m); together (\(p + m)) they exceed the context of \(c) tokens: shorten the prompt or lower max_tokens"
        case .exceedsKVBudget(let n, let c):
            return "the sequence needs \(n) KV positions but the whole KV budget holds \(c): raise --kv-cache-mb or lower --ctx"
        case .shuttingDown: return "the engine is shutting down; retry on another replica"
        case .invalid(let m): return m
        case .queueFull(let w, let a, let l):
            return "the server queue is full (\(w) sequences waiting, this request adds \(a), the limit is \(l)); retry shortly"
        }
    }
}

// MARK: - Scheduler

/// Continuous-batching scheduler. Owns one dedicated engine thread which runs every forward
/// pass; all sequence state, KV caches and the block allocator are touched only there.
/// Other threads talk to it through `submit` / `cancel` (a lock-protected inbox + condition
/// variable) and receive results through each request's `AsyncStream`.
public final class Scheduler: @unchecked Sendable {
    public let loaded: LoadedModel
    public let config: SchedulerConfig
    /// Context limit per sequence.
    public let contextLength: Int
    /// Bytes of KV per position: layers × (keyDim + valueDim) × bytes per element of `config.kvPrecision`.
    public let bytesPerPosition: Int

    /// KV bytes one position of `c` costs in a cache of `precision`: the one formula every KV
    /// budget uses (scheduler blocks, `serve --kv-cache-mb`).
    public static func kvBytesPerPosition(_ c: ModelConfig, precision: KVCache.Precision) -> Int {
        KVCache.bytesPerPosition(layers: c.layers, keyDim: c.kvHeads * c.headDim,
                                 valueDim: c.kvHeads * c.valueDim, precision: precision)
    }

    // Shared with other threads: guarded by `cond`.
    private let cond = NSCondition()
    private var inbox: [ScheduledSequence] = []
    private var cancels: Set<UInt64> = []
    private var stopping = false
    private var nextID: UInt64 = 1
    private var statsValue: SchedulerStats
    private var observer: (@Sendable (StepInfo) -> Void)?
    private var thread: Thread?
    private var exited = false

    /// Positions a KV budget of `megabytes` MiB holds in blocks of `blockSize` (the pool's rule).
    public static func kvCapacityPositions(megabytes: Int, bytesPerPosition: Int,
                                           blockSize: Int = SchedulerConfig().blockSize) -> Int {
        KVPool.blocks(megabytes: megabytes, bytesPerPosition: bytesPerPosition, blockSize: blockSize) * max(1, blockSize)
    }

    /// Positions the whole KV budget holds (fixed at init; read by `validate` on any thread).
    public let kvCapacityPositions: Int
    /// The KV memory: one pool of `allocator.totalBlocks` blocks, allocated once.
    let pool: KVPool

    // Engine-thread state.
    private var allocator: BlockAllocator
    private var waiting: [ScheduledSequence] = []
    private var running: [ScheduledSequence] = []
    private var prefixQueries = 0
    private var prefixHits = 0
    private let clock = ContinuousClock()

    public init(model loaded: LoadedModel, config: SchedulerConfig = SchedulerConfig()) {
        self.loaded = loaded
        self.config = config
        let c = loaded.model.config
        bytesPerPosition = Self.kvBytesPerPosition(c, precision: config.kvPrecision)
        contextLength = min(config.contextLength ?? c.contextLength, c.contextLength)
        if let blocks = config.kvCacheBlocks {
            allocator = BlockAllocator(totalBlocks: blocks, blockSize: config.blockSize)
        } else {
            allocator = BlockAllocator(megabytes: config.kvCacheMB, bytesPerPosition: bytesPerPosition,
                                       blockSize: config.blockSize)
        }
        kvCapacityPositions = allocator.capacityPositions
        pool = KVPool(layers: c.layers, keyDim: c.kvHeads * c.headDim, valueDim: c.kvHeads * c.valueDim,
                      blockSize: allocator.blockSize, blocks: allocator.totalBlocks, precision: config.kvPrecision)
        let now = ContinuousClock.now
        statsValue = SchedulerStats(lastHeartbeat: now, lastProgress: now)
        statsValue.kvBlocksTotal = allocator.totalBlocks
    }

    /// Starts the engine thread.
    public func start() {
        cond.lock()
        defer { cond.unlock() }
        guard thread == nil else { return }
        let t = Thread { [self] in self.loop() }
        t.name = "autoglm-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Called on the engine thread after every step.
    public func setStepObserver(_ f: @escaping @Sendable (StepInfo) -> Void) {
        cond.lock(); observer = f; cond.unlock()
    }

    public var stats: SchedulerStats {
        cond.lock(); defer { cond.unlock() }
        return statsValue
    }

    /// Checks a request against the context and the KV budget without submitting it.
    public func validate(_ r: GenerationRequest) throws(SchedulerError) {
        guard !r.promptIDs.isEmpty else { throw .emptyPrompt }
        guard r.maxTokens >= 0 else { throw .invalid("max_tokens must be ≥ 0 (got \(r.maxTokens))") }
        let vocab = loaded.model.config.vocabulary
        if let bad = r.promptIDs.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw .invalid("prompt token id \(bad) is outside the vocabulary 0..<\(vocab)")
        }
        let (total, overflow) = r.promptIDs.count.addingReportingOverflow(r.maxTokens)
        guard !overflow, total <= contextLength else {
            throw .exceedsContext(promptTokens: r.promptIDs.count, maxTokens: r.maxTokens, context: contextLength)
        }
        guard total <= kvCapacityPositions else {
            throw .exceedsKVBudget(positions: total, capacity: kvCapacityPositions)
        }
    }

    /// Queues a request. Thread-safe; never blocks on compute.
    public func submit(_ r: GenerationRequest) throws(SchedulerError) -> GenerationHandle {
        try submitAll([r], maxWaiting: Int.max)[0]
    }

    /// Queues every request of one API call, or none: admission counts sequences, and the
    /// check and the enqueue happen under one lock, so concurrent callers cannot together push
    /// the queue past `maxWaiting` sequences.
    public func submitAll(_ rs: [GenerationRequest], maxWaiting: Int) throws(SchedulerError) -> [GenerationHandle] {
        for r in rs { try validate(r) }
        let streams = rs.map { _ in AsyncStream<GenerationEvent>.makeStream(bufferingPolicy: .unbounded) }
        cond.lock()
        if stopping {
            cond.unlock()
            throw .shuttingDown
        }
        let queued = statsValue.waiting
        if rs.count > maxWaiting - min(queued, maxWaiting) {
            cond.unlock()
            throw .queueFull(waiting: queued, asked: rs.count, limit: maxWaiting)
        }
        var handles: [GenerationHandle] = []
        for (r, (stream, cont)) in zip(rs, streams) {
            let id = nextID
            nextID += 1
            let seq = ScheduledSequence(id: id, request: r, tokenizer: loaded.tokenizer, continuation: cont,
                                        queued: clock.now)
            inbox.append(seq)
            statsValue.waiting += 1
            handles.append(GenerationHandle(id: id, events: stream))
        }
        cond.signal()
        cond.unlock()
        for (h, (_, cont)) in zip(handles, streams) {
            let id = h.id
            cont.onTermination = { [weak self] reason in
                if case .cancelled = reason { self?.cancel(id) }
            }
        }
        return handles
    }

    /// Cancels a request (its KV blocks are freed at the start of the next step).
    public func cancel(_ id: UInt64) {
        cond.lock()
        cancels.insert(id)
        cond.signal()
        cond.unlock()
    }

    /// Stops accepting work; the thread exits once the in-flight sequences finished (drain).
    public func shutdown() {
        cond.lock()
        stopping = true
        cond.signal()
        cond.unlock()
    }

    /// Blocks until the engine thread has exited (after `shutdown`), at most `timeout` seconds.
    public func join(timeout: Double) {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        while !exited && thread != nil { if !cond.wait(until: deadline) { break } }
        cond.unlock()
    }

    // MARK: engine thread

    private func loop() {
        while true {
            // Take new work and cancellations; sleep when there is nothing to do.
            cond.lock()
            while inbox.isEmpty && cancels.isEmpty && waiting.isEmpty && running.isEmpty && !stopping {
                statsValue.idle = true
                statsValue.lastHeartbeat = clock.now
                cond.wait()
            }
            let newSeqs = inbox
            inbox.removeAll()
            let cancelled = cancels
            cancels.removeAll()
            let stop = stopping
            let obs = observer
            statsValue.idle = false
            statsValue.lastHeartbeat = clock.now
            cond.unlock()

            waiting.append(contentsOf: newSeqs)
            if !cancelled.isEmpty { applyCancels(cancelled) }
            if stop && waiting.isEmpty && running.isEmpty {
                publishStats(step: nil)
                break
            }
            if stop && shutdownHard {
                for s in running + waiting { finish(s, .cancelled) }
                running.removeAll(); waiting.removeAll()
                publishStats(step: nil)
                break
            }
            if waiting.isEmpty && running.isEmpty { publishStats(step: nil); continue }
            if !stop, let deadline = batchWaitDeadline() {
                holdForBatch(until: deadline)
                continue  // take what arrived (new requests, cancels, a stop) and decide again
            }
            let info = step()
            publishStats(step: info)
            if let info, let obs { obs(info) }
        }
        cond.lock()
        statsValue.alive = false
        statsValue.running = 0
        statsValue.waiting = 0
        exited = true
        cond.broadcast()
        cond.unlock()
        // Anything submitted in the race before `stopping` was seen.
        cond.lock()
        let late = inbox
        inbox.removeAll()
        cond.unlock()
        for s in late { finish(s, .cancelled) }
    }

    /// Set by `shutdown` (hard) vs `stopAccepting` (drain).
    private var shutdownHard: Bool {
        cond.lock(); defer { cond.unlock() }
        return hardStop
    }
    private var hardStop = false

    /// Stops now: cancels all sequences and exits the loop.
    public func terminate() {
        cond.lock()
        stopping = true
        hardStop = true
        cond.signal()
        cond.unlock()
    }

    /// When the first step should wait for more requests: nothing runs, some (but fewer than
    /// `maxSeqs`, and less than a step's token budget) are waiting, and the oldest of them has
    /// waited less than `batchWait`. Returns the instant the wait ends, or nil to step now.
    private func batchWaitDeadline() -> ContinuousClock.Instant? {
        guard config.batchWait > .zero, running.isEmpty, !waiting.isEmpty,
              waiting.count < max(1, config.maxSeqs) else { return nil }
        let pending = waiting.reduce(0) { $0 + ($1.tokens.count - $1.computed) }
        guard pending < max(1, config.maxBatchedTokens) else { return nil }
        guard let oldest = waiting.map(\.timings.queued).min() else { return nil }
        let deadline = oldest + config.batchWait
        return clock.now < deadline ? deadline : nil
    }

    /// Sleeps until `deadline` or until a submit, cancel or stop signals the condition.
    private func holdForBatch(until deadline: ContinuousClock.Instant) {
        let remaining = deadline - clock.now
        let secs = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) * 1e-18
        cond.lock()
        if inbox.isEmpty && cancels.isEmpty && !stopping && secs > 0 {
            // Holding is deliberate, bounded work: /readyz must not read it as a stalled engine
            // (its "no progress with work queued" clock would otherwise run from the last step,
            // which may be long ago on an idle server).
            statsValue.lastHeartbeat = clock.now
            statsValue.lastProgress = clock.now
            _ = cond.wait(until: Date().addingTimeInterval(secs))
        }
        cond.unlock()
        publishStats(step: nil)
    }

    private func applyCancels(_ ids: Set<UInt64>) {
        running.removeAll { s in
            guard ids.contains(s.id) else { return false }
            finish(s, .cancelled)
            return true
        }
        waiting.removeAll { s in
            guard ids.contains(s.id) else { return false }
            finish(s, .cancelled)
            return true
        }
    }

    private func publishStats(step: StepInfo?) {
        cond.lock()
        statsValue.running = running.count
        statsValue.waiting = waiting.count + inbox.count
        statsValue.kvUsage = allocator.usage
        statsValue.kvBlocksUsed = allocator.usedCount
        statsValue.kvBlocksTotal = allocator.totalBlocks
        statsValue.kvBlocksCachedIdle = allocator.cachedIdleCount
        statsValue.kvEvictions = allocator.evictions
        statsValue.prefixCacheQueries = prefixQueries
        statsValue.prefixCacheHits = prefixHits
        statsValue.lastHeartbeat = clock.now
        if let step {
            statsValue.steps += 1
            statsValue.lastStepSeconds = step.seconds
            statsValue.lastProgress = clock.now
        }
        cond.unlock()
    }

    /// Frees a sequence's KV and ends its stream.
    private func finish(_ s: ScheduledSequence, _ reason: SequenceFinishReason, error: String? = nil) {
        dropKV(s)
        var text = ""
        if reason == .stop || reason == .length {
            text = s.flushText()
        }
        s.timings.finished = clock.now
        s.continuation.yield(.finished(SequenceCompletion(
            reason: reason, text: text, promptTokens: s.request.promptIDs.count,
            completionTokens: s.generated, cachedTokens: s.cachedTokens, timings: s.timings, error: error)))
        s.continuation.finish()
    }

    /// Drops a running sequence's KV; it goes back to the front of the queue and is recomputed
    /// later from its prompt and generated tokens.
    private func preempt(_ s: ScheduledSequence) {
        dropKV(s)
        s.timings.preemptions += 1
        cond.lock(); statsValue.preemptions += 1; cond.unlock()
        waiting.insert(s, at: 0)
    }

    /// Lets go of a sequence's KV blocks (cached ones stay for later prefix hits); it will
    /// start again from position 0 if it runs again.
    private func dropKV(_ s: ScheduledSequence) {
        if let c = s.cache { allocator.release(c.blockTable) }
        s.cache = nil
        s.computed = 0
        s.hashes.removeAll()
    }

    /// Grows `s`'s block table to cover `positions`; false when the budget is short.
    private func grow(_ s: ScheduledSequence, to positions: Int) -> Bool {
        guard let cache = s.cache else { return false }
        let need = allocator.blocks(for: positions) - cache.blockTable.count
        if need <= 0 { return true }
        guard let b = allocator.allocate(need) else { return false }
        cache.blockTable.append(contentsOf: b)
        return true
    }

    /// Gives a sequence that starts (or restarts after preemption) its cache, with the cached
    /// blocks that hold the start of its tokens. At least its last token is left to compute, so
    /// the step that finishes its prompt yields logits.
    private func attachCache(_ s: ScheduledSequence) {
        let cache = KVCache(pool: pool, maxPositions: contextLength)
        s.cache = cache
        s.computed = 0
        s.hashes.removeAll()
        guard config.prefixCaching else { return }
        let bs = allocator.blockSize
        let hit = allocator.match(s.tokens, maxBlocks: (s.tokens.count - 1) / bs)
        cache.blockTable = hit.blocks
        cache.setCount(hit.blocks.count * bs)
        s.computed = cache.count
        s.hashes = hit.hashes
    }

    /// Registers the blocks of `s` that its last step filled, so later prompts can share them.
    private func registerFullBlocks(_ s: ScheduledSequence) {
        guard config.prefixCaching, let cache = s.cache else { return }
        let bs = allocator.blockSize
        while s.hashes.count < s.computed / bs {
            let i = s.hashes.count
            let h = allocator.register(cache.blockTable[i], parent: s.hashes.last ?? BlockAllocator.rootHash,
                                       tokens: s.tokens[(i * bs)..<((i + 1) * bs)])
            s.hashes.append(h)
        }
    }

    /// True when a running sequence is about to compute the next block `s` could share (the
    /// same tokens from position 0 to that block's end): `s` waits a step and takes it as a hit
    /// (n > 1 choices and identical concurrent prompts compute their prompt once).
    private func waitsForSharedPrefix(_ s: ScheduledSequence) -> Bool {
        guard config.prefixCaching else { return false }
        let bs = allocator.blockSize
        let end = (s.computed / bs + 1) * bs
        guard end <= s.tokens.count - 1 else { return false }
        for r in running where r.computed < end && r.tokens.count >= end {
            if r.tokens[0..<end] == s.tokens[0..<end] { return true }
        }
        return false
    }

    /// One scheduling decision and one forward pass. Returns nil when nothing ran.
    private func step() -> StepInfo? {
        var budget = max(1, config.maxBatchedTokens)
        var batch: [(ScheduledSequence, Int)] = []  // sequence, tokens to feed

        // 1. Running sequences, oldest first: decode tokens (1) or the next prefill chunk.
        var i = 0
        while i < running.count {
            let s = running[i]
            let remaining = s.tokens.count - s.computed
            let n = min(remaining, budget)
            if n <= 0 { i += 1; continue }
            if grow(s, to: s.computed + n) {
                batch.append((s, n))
                budget -= n
                i += 1
                continue
            }
            // Out of KV: preempt the newest running sequence (possibly this one) and retry.
            guard let victim = running.last else { break }
            running.removeLast()
            if victim === s {
                if running.isEmpty && waiting.isEmpty && (s.cache?.blockTable.count ?? 0) == allocator.totalBlocks {
                    finish(s, .length)  // cannot happen after validate(); defensive
                } else {
                    preempt(s)
                }
                continue  // `i` now points past the end or at the next sequence
            }
            batch.removeAll { $0.0 === victim }
            preempt(victim)
        }

        // 2. Admit waiting sequences while there is room (FCFS; stop at the first that does not
        // fit). Each starts from its longest cached prefix; one whose next block a running
        // sequence is computing right now waits for it instead of computing it twice.
        var w = 0
        while budget > 0, running.count < max(1, config.maxSeqs), w < waiting.count {
            let s = waiting[w]
            attachCache(s)
            if waitsForSharedPrefix(s) { dropKV(s); w += 1; continue }
            let n = min(s.tokens.count - s.computed, budget)
            guard n > 0, grow(s, to: s.computed + n) else { dropKV(s); break }
            waiting.remove(at: w)
            if s.timings.scheduled == nil {
                s.timings.scheduled = clock.now
                s.cachedTokens = s.computed
                prefixQueries += s.request.promptIDs.count
                prefixHits += s.computed
            }
            running.append(s)
            batch.append((s, n))
            budget -= n
        }
        guard !batch.isEmpty else { return nil }

        // 3. One forward over the mixed batch.
        var inputs: [SequenceInput] = []
        inputs.reserveCapacity(batch.count)
        for (s, n) in batch {
            guard let cache = s.cache else { continue }
            let done = s.computed + n == s.tokens.count
            inputs.append(SequenceInput(cache: cache, tokens: Array(s.tokens[s.computed..<(s.computed + n)]),
                                        logits: done ? .last : .none))
        }
        let t0 = clock.now
        var out: [[Float]]
        do {
            out = try loaded.model.forward(inputs, pool: loaded.pool)
        } catch {
            let msg = "forward pass failed: \(error)"
            for (s, _) in batch { finish(s, .error, error: msg) }
            let ids = Set(batch.map { ObjectIdentifier($0.0) })
            running.removeAll { ids.contains(ObjectIdentifier($0)) }
            return StepInfo(sequences: batch.count, tokens: 0, seconds: seconds(clock.now - t0))
        }
        let now = clock.now
        var tokens = 0

        // 4. Sample, detokenize, check stop conditions: each sequence touches only its own state
        // (sampler, detokenizer, stream), so they run in parallel on the engine's pool.
        var sampling: [(seq: ScheduledSequence, out: Int)] = []
        for (k, (s, n)) in batch.enumerated() {
            tokens += n
            s.computed += n
            registerFullBlocks(s)
            guard s.computed == s.tokens.count, !out[k].isEmpty else { continue }
            sampling.append((s, k))
        }
        let reasons = UnsafeMutableBufferPointer<SequenceFinishReason?>.allocate(capacity: sampling.count)
        defer { reasons.deallocate() }
        _ = reasons.initialize(from: repeatElement(nil, count: sampling.count))
        // Each task owns its logits array outright, so sampling in place copies nothing.
        let logits = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: sampling.count)
        _ = logits.initialize(from: sampling.map { out[$0.out] })
        out = []
        defer { logits.deinitialize().deallocate() }
        let eog = loaded.tokenizer.endOfGenerationIDs, context = contextLength
        loaded.pool.parallelFor(sampling.count) { j in
            reasons[j] = sampling[j].seq.accept(logits: &logits[j], time: now, eog: eog, contextLength: context)
        }
        var finished: Set<ObjectIdentifier> = []
        for (j, item) in sampling.enumerated() {
            if let reason = reasons[j] {
                finish(item.seq, reason)
                finished.insert(ObjectIdentifier(item.seq))
            }
        }
        if !finished.isEmpty { running.removeAll { finished.contains(ObjectIdentifier($0)) } }
        return StepInfo(sequences: batch.count, tokens: tokens, seconds: seconds(now - t0))
    }
}

// MARK: - Sequence (engine-thread only)

final class ScheduledSequence {
    let id: UInt64
    let request: GenerationRequest
    let continuation: AsyncStream<GenerationEvent>.Continuation
    /// Prompt followed by generated tokens: everything known so far.
    var tokens: [Int32]
    /// Positions whose KV has been computed into `cache`.
    var computed = 0
    var cache: KVCache?
    /// Chain hashes of the full blocks registered in the prefix cache, in order.
    var hashes: [UInt64] = []
    /// Prompt tokens that came from the prefix cache at first admission.
    var cachedTokens = 0
    var generated = 0
    var sampler: Sampler
    var detok: StreamingDetokenizer
    /// Detokenized text not yet released (could be the start of a stop string), as UTF-8.
    var held: [UInt8] = []
    let stops: [[UInt8]]
    let maxStop: Int
    var timings: SequenceTimings
    var stopped = false

    init(id: UInt64, request: GenerationRequest, tokenizer: Tokenizer,
         continuation: AsyncStream<GenerationEvent>.Continuation, queued: ContinuousClock.Instant) {
        self.id = id
        self.request = request
        self.continuation = continuation
        tokens = request.promptIDs
        sampler = Sampler(request.sampling)
        detok = StreamingDetokenizer(tokenizer: tokenizer)
        stops = request.stop.map { Array($0.utf8) }.filter { !$0.isEmpty }
        maxStop = stops.map(\.count).max() ?? 0
        timings = SequenceTimings(queued: queued)
    }

    /// Samples the next token from `logits`; returns a finish reason when the sequence ends.
    func accept(logits: inout [Float], time: ContinuousClock.Instant, eog: Set<Int32>,
                contextLength: Int) -> SequenceFinishReason? {
        if request.maxTokens == 0 { return .length }
        var lp: TokenLogprob?
        let wantLP = request.logprobs
        var logZ: Float = 0
        if wantLP != nil { logZ = Self.logSumExp(logits) }
        var raw: [Float] = []
        if wantLP != nil { raw = logits }
        let next = sampler.sample(&logits, history: tokens)
        tokens.append(next)
        generated += 1
        if timings.firstToken == nil { timings.firstToken = time }
        if let k = wantLP {
            lp = TokenLogprob(id: next, logprob: raw[Int(next)] - logZ,
                              top: Self.top(raw, k: k).map { ($0, raw[Int($0)] - logZ) })
        }
        let isEOG = !request.ignoreEOS && eog.contains(next)
        var text = ""
        var reason: SequenceFinishReason?
        if isEOG {
            reason = .stop
        } else {
            held.append(contentsOf: detok.append(next).utf8)
            if let cut = stopMatch() {
                text = String(decoding: held[0..<cut], as: UTF8.self)
                held.removeAll()
                stopped = true
                reason = .stop
            } else {
                let keep = stopPrefixSuffix()
                let emit = held.count - keep
                if emit > 0 {
                    text = String(decoding: held[0..<emit], as: UTF8.self)
                    held.removeFirst(emit)
                }
            }
        }
        continuation.yield(.token(TokenEvent(id: next, text: text, logprob: lp, time: time)))
        if reason != nil { return reason }
        if generated >= request.maxTokens || tokens.count >= contextLength { return .length }
        return nil
    }

    /// Releases held text at the end (length / EOS), checking stop strings once more.
    func flushText() -> String {
        guard !stopped else { return "" }
        held.append(contentsOf: detok.flush().utf8)
        var out = held
        if let cut = stopMatch() { out = Array(held[0..<cut]) }
        held.removeAll()
        return String(decoding: out, as: UTF8.self)
    }

    /// Byte offset of the earliest stop-string match in `held`.
    func stopMatch() -> Int? {
        guard !stops.isEmpty, !held.isEmpty else { return nil }
        var best: Int?
        for s in stops where s.count <= held.count {
            if let r = Self.find(s, in: held), r < (best ?? Int.max) { best = r }
        }
        return best
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    func stopPrefixSuffix() -> Int {
        guard !stops.isEmpty else { return 0 }
        let maxLen = min(held.count, maxStop - 1)
        guard maxLen > 0 else { return 0 }
        for len in stride(from: maxLen, through: 1, by: -1) {
            let start = held.count - len
            for s in stops where s.count > len {
                var ok = true
                for j in 0..<len where held[start + j] != s[j] { ok = false; break }
                if ok { return len }
            }
        }
        return 0
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        let n = needle.count
        guard n > 0, n <= hay.count else { return nil }
        let first = needle[0]
        var i = 0
        while i <= hay.count - n {
            if hay[i] == first {
                var j = 1
                while j < n && hay[i + j] == needle[j] { j += 1 }
                if j == n { return i }
            }
            i += 1
        }
        return nil
    }

    static func logSumExp(_ x: [Float]) -> Float {
        var m = -Float.infinity
        for v in x where v > m { m = v }
        guard m.isFinite else { return m }
        var s: Float = 0
        for v in x { s += Foundation.exp(v - m) }
        return m + Foundation.log(s)
    }

    /// Ids of the `k` largest values, largest first.
    static func top(_ x: [Float], k: Int) -> [Int32] {
        guard k > 0 else { return [] }
        var best: [(Int32, Float)] = []
        best.reserveCapacity(k + 1)
        for (i, v) in x.enumerated() {
            if best.count < k || v > best[best.count - 1].1 {
                var pos = best.count
                while pos > 0 && best[pos - 1].1 < v { pos -= 1 }
                best.insert((Int32(i), v), at: pos)
                if best.count > k { best.removeLast() }
            }
        }
        return best.map(\.0)
    }
}
