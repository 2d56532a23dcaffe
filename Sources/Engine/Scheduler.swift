import Core
import Foundation
import Grammar
import Synchronization
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
    /// Constrained decoding: every token is one the grammar allows, and the sequence ends
    /// (`stop`) once the grammar is complete. Build it off the engine thread.
    public var grammar: Grammar?

    public init(promptIDs: [Int32], maxTokens: Int, sampling: SamplingParams = .greedy,
                ignoreEOS: Bool = false, stop: [String] = [], logprobs: Int? = nil, grammar: Grammar? = nil) {
        self.promptIDs = promptIDs
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.ignoreEOS = ignoreEOS
        self.stop = stop
        self.logprobs = logprobs
        self.grammar = grammar
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
    /// Each forward pass that computed part of this sequence's prompt (recorded on the engine
    /// thread as plain timestamps; the server turns them into trace spans off that thread).
    public var prefillChunks: [PrefillChunk] = []

    public init(queued: ContinuousClock.Instant, scheduled: ContinuousClock.Instant? = nil,
                firstToken: ContinuousClock.Instant? = nil, finished: ContinuousClock.Instant? = nil) {
        self.queued = queued
        self.scheduled = scheduled
        self.firstToken = firstToken
        self.finished = finished
    }
}

/// One prefill chunk of a sequence: the forward pass's start and end, and the prompt positions it computed.
public struct PrefillChunk: Sendable {
    public var start: ContinuousClock.Instant
    public var end: ContinuousClock.Instant
    public var tokens: Int

    public init(start: ContinuousClock.Instant, end: ContinuousClock.Instant, tokens: Int) {
        self.start = start
        self.end = end
        self.tokens = tokens
    }
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
    /// Constrained decoding: token masks computed (cache misses) and the seconds they took.
    public var grammarMasks: Int = 0
    public var grammarMaskSeconds: Double = 0
    /// Speculative decoding: draft tokens verified for this sequence, and those accepted.
    public var draftTokens: Int = 0
    public var acceptedDraftTokens: Int = 0
    /// Set when `reason == .error`.
    public var error: String?

    public init(reason: SequenceFinishReason, text: String, promptTokens: Int, completionTokens: Int, cachedTokens: Int = 0,
                timings: SequenceTimings, grammarMasks: Int = 0, grammarMaskSeconds: Double = 0,
                draftTokens: Int = 0, acceptedDraftTokens: Int = 0, error: String? = nil) {
        self.reason = reason
        self.text = text
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
        self.timings = timings
        self.grammarMasks = grammarMasks
        self.grammarMaskSeconds = grammarMaskSeconds
        self.draftTokens = draftTokens
        self.acceptedDraftTokens = acceptedDraftTokens
        self.error = error
    }
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
    /// Speculative decoding (nil: off, the default). A decoding sequence feeds its last token plus
    /// up to `k` drafts in one forward pass and keeps the drafts the model agrees with: greedy
    /// output is bit-identical to decoding without it, sampled output has the same distribution.
    /// Drafts take only KV blocks that are free (never preempting or evicting for them) and only
    /// the step's token budget left after every sequence's own token and the admissions.
    public var speculative: SpeculativeConfig? = nil

    /// KV blocks that hold `positions` positions (rounded up to whole blocks of `blockSize`).
    public func kvBlocks(holding positions: Int) -> Int {
        let bs = max(1, blockSize)
        return (max(0, positions) + bs - 1) / bs
    }

    public init(maxSeqs: Int = 8, maxBatchedTokens: Int = 512, kvCacheMB: Int = 512,
                blockSize: Int = 16, contextLength: Int? = nil, kvCacheBlocks: Int? = nil,
                kvPrecision: KVCache.Precision = .f16, batchWait: Duration = .zero,
                prefixCaching: Bool = true, speculative: SpeculativeConfig? = nil) {
        self.prefixCaching = prefixCaching
        self.speculative = speculative
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
    /// Speculative decoding (since start): draft tokens verified, and those accepted.
    public var specDraftTokens: Int = 0
    public var specAcceptedTokens: Int = 0
    /// `cancel` calls received (since start; counted when asked, before the engine acts on them).
    public var cancelRequests: Int = 0
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
/// pass. Other threads talk to it through `submit` / `cancel` / `shutdown` and read `stats`:
/// that shared state is one lock-protected value (`Shared`). Everything else — the policy
/// (sequences, KV blocks), the KV pool, each sequence's output processing — belongs to the
/// `EngineLoop`, which is created on the engine thread and reachable from nowhere else.
/// Results come back through each request's `AsyncStream`.
public final class Scheduler: Sendable {
    public let loaded: LoadedModel
    public let config: SchedulerConfig
    /// Context limit per sequence.
    public let contextLength: Int
    /// Bytes of KV per position: layers × (keyDim + valueDim) × bytes per element of `config.kvPrecision`.
    public let bytesPerPosition: Int
    /// Positions the whole KV budget holds.
    public let kvCapacityPositions: Int
    /// The block budget the engine starts from.
    let blocks: BlockAllocator

    /// KV bytes one position of `c` costs in a cache of `precision`: the one formula every KV
    /// budget uses (scheduler blocks, `serve --kv-cache-mb`).
    public static func kvBytesPerPosition(_ c: ModelConfig, precision: KVCache.Precision) -> Int {
        KVCache.bytesPerPosition(layers: c.layers, keyDim: c.kvHeads * c.headDim,
                                 valueDim: c.kvHeads * c.valueDim, precision: precision)
    }

    /// Positions a KV budget of `megabytes` MiB holds in blocks of `blockSize` (the pool's rule).
    public static func kvCapacityPositions(megabytes: Int, bytesPerPosition: Int,
                                           blockSize: Int = SchedulerConfig().blockSize) -> Int {
        KVPool.blocks(megabytes: megabytes, bytesPerPosition: bytesPerPosition, blockSize: blockSize) * max(1, blockSize)
    }

    /// A request handed to the engine thread.
    struct Submission: Sendable {
        var id: UInt64
        var request: GenerationRequest
        var continuation: AsyncStream<GenerationEvent>.Continuation
        var queued: ContinuousClock.Instant
    }

    /// Everything other threads share with the engine thread.
    struct Shared: Sendable {
        var inbox: [Submission] = []
        var cancels: Set<UInt64> = []
        var stopping = false
        var hardStop = false
        var nextID: UInt64 = 1
        var stats: SchedulerStats
        var observer: (@Sendable (StepInfo) -> Void)?
        var started = false
        var exited = false
    }
    let shared: Mutex<Shared>
    /// Signalled on every submit, cancel and stop; the engine sleeps on it when idle.
    let wake = DispatchSemaphore(value: 0)
    /// Signalled once when the engine thread exits.
    private let exitedSignal = DispatchSemaphore(value: 0)

    public init(model loaded: LoadedModel, config: SchedulerConfig = SchedulerConfig()) {
        self.loaded = loaded
        self.config = config
        let c = loaded.model.config
        bytesPerPosition = Self.kvBytesPerPosition(c, precision: config.kvPrecision)
        contextLength = min(config.contextLength ?? c.contextLength, c.contextLength)
        let allocator: BlockAllocator
        if let blocks = config.kvCacheBlocks {
            allocator = BlockAllocator(totalBlocks: blocks, blockSize: config.blockSize)
        } else {
            allocator = BlockAllocator(megabytes: config.kvCacheMB, bytesPerPosition: bytesPerPosition,
                                       blockSize: config.blockSize)
        }
        blocks = allocator
        kvCapacityPositions = allocator.capacityPositions
        let now = ContinuousClock.now
        var stats = SchedulerStats(lastHeartbeat: now, lastProgress: now)
        stats.kvBlocksTotal = allocator.totalBlocks
        shared = Mutex(Shared(stats: stats))
    }

    /// Starts the engine thread (once).
    public func start() {
        let first = shared.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        guard first else { return }
        let t = Thread { [self] in
            EngineLoop(self).run()
            shared.withLock { $0.exited = true }
            exitedSignal.signal()
        }
        t.name = "autoglm-engine"
        t.stackSize = 8 << 20
        t.start()
    }

    /// Called on the engine thread after every step.
    public func setStepObserver(_ f: @escaping @Sendable (StepInfo) -> Void) {
        shared.withLock { $0.observer = f }
    }

    public var stats: SchedulerStats { shared.withLock { $0.stats } }

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
        let now = ContinuousClock.now
        let ids = shared.withLock { s -> Result<[UInt64], SchedulerError> in
            if s.stopping { return .failure(.shuttingDown) }
            let queued = s.stats.waiting
            if rs.count > maxWaiting - min(queued, maxWaiting) {
                return .failure(.queueFull(waiting: queued, asked: rs.count, limit: maxWaiting))
            }
            var ids: [UInt64] = []
            for (r, (_, cont)) in zip(rs, streams) {
                ids.append(s.nextID)
                s.inbox.append(Submission(id: s.nextID, request: r, continuation: cont, queued: now))
                s.nextID += 1
                s.stats.waiting += 1
            }
            return .success(ids)
        }
        let got: [UInt64]
        switch ids {
        case .success(let v): got = v
        case .failure(let e): throw e
        }
        wake.signal()
        var handles: [GenerationHandle] = []
        for (id, (stream, cont)) in zip(got, streams) {
            cont.onTermination = { [weak self] reason in
                if case .cancelled = reason { self?.cancel(id) }
            }
            handles.append(GenerationHandle(id: id, events: stream))
        }
        return handles
    }

    /// Cancels a request (its KV blocks are freed at the start of the next step).
    public func cancel(_ id: UInt64) {
        shared.withLock { s in
            s.cancels.insert(id)
            s.stats.cancelRequests += 1
        }
        wake.signal()
    }

    /// Stops accepting work; the thread exits once the in-flight sequences finished (drain).
    public func shutdown() {
        shared.withLock { $0.stopping = true }
        wake.signal()
    }

    /// Stops now: cancels all sequences and exits the loop.
    public func terminate() {
        shared.withLock { $0.stopping = true; $0.hardStop = true }
        wake.signal()
    }

    /// Blocks until the engine thread has exited (after `shutdown`), at most `timeout` seconds.
    public func join(timeout: Double) {
        let (started, exited) = shared.withLock { ($0.started, $0.exited) }
        guard started, !exited else { return }
        if exitedSignal.wait(timeout: .now() + max(0, timeout)) == .success { exitedSignal.signal() }
    }
}

// MARK: - Engine loop

/// The engine thread's state and work: takes submissions and cancellations, asks the policy for
/// each step, runs it on the model, hands logits to the sequences' output processing, publishes
/// stats. Created on the engine thread; nothing outside that thread can reach it.
final class EngineLoop {
    let scheduler: Scheduler
    let loaded: LoadedModel
    let contextLength: Int
    /// The KV memory: one pool of the budget's blocks, allocated once.
    let pool: KVPool
    var policy: SchedulePolicy
    var outputs: [UInt64: SequenceOutput] = [:]
    let clock = ContinuousClock()
    let speculative: SpeculativeConfig?
    /// Draft tokens verified and accepted since start (published in `SchedulerStats`).
    var draftedTotal = 0, acceptedTotal = 0

    init(_ s: Scheduler) {
        scheduler = s
        loaded = s.loaded
        contextLength = s.contextLength
        speculative = s.config.speculative
        let c = s.loaded.model.config
        pool = KVPool(layers: c.layers, keyDim: c.kvHeads * c.headDim, valueDim: c.kvHeads * c.valueDim,
                      blockSize: s.blocks.blockSize, blocks: s.blocks.totalBlocks, precision: s.config.kvPrecision)
        policy = SchedulePolicy(maxSeqs: s.config.maxSeqs, maxBatchedTokens: s.config.maxBatchedTokens,
                                prefixCaching: s.config.prefixCaching, batchWait: s.config.batchWait, allocator: s.blocks)
    }

    func run() {
        while true {
            // Take new work and cancellations; sleep when there is nothing to do.
            let idle = policy.isIdle, now = clock.now
            let (subs, cancelled, stop, hard, obs) = scheduler.shared.withLock { s in
                defer { s.inbox.removeAll(); s.cancels.removeAll() }
                let nothing = s.inbox.isEmpty && s.cancels.isEmpty && idle && !s.stopping
                s.stats.idle = nothing
                s.stats.lastHeartbeat = now
                return (s.inbox, s.cancels, s.stopping, s.hardStop, s.observer)
            }
            if subs.isEmpty && cancelled.isEmpty && idle && !stop {
                scheduler.wake.wait()
                continue
            }
            for sub in subs {
                outputs[sub.id] = SequenceOutput(id: sub.id, request: sub.request, loaded: loaded,
                                                 continuation: sub.continuation, queued: sub.queued,
                                                 speculativeK: speculative?.k)
                policy.enqueue(PolicySequence(id: sub.id, tokens: sub.request.promptIDs, queued: sub.queued))
            }
            if !cancelled.isEmpty { applyCancels(cancelled) }
            if stop && policy.isIdle {
                publishStats(step: nil)
                break
            }
            if stop && hard {
                for id in Array(outputs.keys) { end(id, .cancelled) }
                publishStats(step: nil)
                break
            }
            if policy.isIdle { publishStats(step: nil); continue }
            if !stop, let deadline = policy.batchWaitDeadline(now: clock.now) {
                holdForBatch(until: deadline)
                continue  // take what arrived (new requests, cancels, a stop) and decide again
            }
            let info = step()
            publishStats(step: info)
            if let info, let obs { obs(info) }
        }
        // Anything submitted in the race before `stopping` was seen.
        let late = scheduler.shared.withLock { s in
            defer { s.inbox.removeAll() }
            s.stats.alive = false
            s.stats.running = 0
            s.stats.waiting = 0
            return s.inbox
        }
        for sub in late {
            let out = SequenceOutput(id: sub.id, request: sub.request, loaded: loaded,
                                     continuation: sub.continuation, queued: sub.queued)
            out.finish(.cancelled, promptTokens: sub.request.promptIDs.count, cachedTokens: 0, now: clock.now)
        }
    }

    /// Sleeps until `deadline` or until a submit, cancel or stop wakes the engine.
    private func holdForBatch(until deadline: ContinuousClock.Instant) {
        let remaining = deadline - clock.now
        let secs = remaining.inSeconds
        let now = clock.now
        let hold = scheduler.shared.withLock { s -> Bool in
            guard s.inbox.isEmpty && s.cancels.isEmpty && !s.stopping && secs > 0 else { return false }
            // Holding is deliberate, bounded work: /readyz must not read it as a stalled engine
            // (its "no progress with work queued" clock would otherwise run from the last step,
            // which may be long ago on an idle server).
            s.stats.lastHeartbeat = now
            s.stats.lastProgress = now
            return true
        }
        if hold { _ = scheduler.wake.wait(timeout: .now() + secs) }
        publishStats(step: nil)
    }

    private func applyCancels(_ ids: Set<UInt64>) {
        for id in ids where outputs[id] != nil { end(id, .cancelled) }
    }

    private func publishStats(step: StepInfo?) {
        let a = policy.allocator
        let running = policy.running.count, waiting = policy.waiting.count, preemptions = policy.preemptions
        let queries = policy.prefixQueries, hits = policy.prefixHits
        let drafted = draftedTotal, accepted = acceptedTotal
        let now = clock.now
        scheduler.shared.withLock { s in
            s.stats.running = running
            s.stats.waiting = waiting + s.inbox.count
            s.stats.kvUsage = a.usage
            s.stats.kvBlocksUsed = a.usedCount
            s.stats.kvBlocksTotal = a.totalBlocks
            s.stats.kvBlocksCachedIdle = a.cachedIdleCount
            s.stats.kvEvictions = a.evictions
            s.stats.prefixCacheQueries = queries
            s.stats.prefixCacheHits = hits
            s.stats.specDraftTokens = drafted
            s.stats.specAcceptedTokens = accepted
            s.stats.preemptions = preemptions
            s.stats.lastHeartbeat = now
            if let step {
                s.stats.steps += 1
                s.stats.lastStepSeconds = step.seconds
                s.stats.lastProgress = now
            }
        }
    }
    /// Ends a sequence: the policy releases its KV (cached blocks stay for later prefix hits)
    /// and its stream gets the completion.
    private func end(_ id: UInt64, _ reason: SequenceFinishReason, error: String? = nil) {
        guard let out = outputs.removeValue(forKey: id) else { return }
        let s = policy.remove(id)
        out.finish(reason, promptTokens: s?.promptCount ?? 0, cachedTokens: s?.cachedTokens ?? 0, now: clock.now, error: error)
    }

    /// Drafts for sequence `s` (decoding, its last token not yet computed), at most `limit`:
    /// none when speculation is off or the sequence does not draft (grammar, pause), else the
    /// drafter's proposal capped by the sequence's adaptive k, its remaining max tokens and the
    /// context.
    private func drafts(for s: PolicySequence, limit: Int) -> [Int32] {
        guard let spec = speculative, limit > 0, let o = outputs[s.id], o.speculation != nil else { return [] }
        // Emitted tokens are at most drafts + 1; positions written are computed...computed + drafts.
        let remaining = o.request.maxTokens - o.generated - 1
        let room = contextLength - 1 - s.computed
        let cap = min(limit, remaining, room)
        guard cap > 0, let k = o.speculation?.next(), k > 0 else { return [] }
        return spec.propose(s.tokens, max: min(k, cap))
    }

    /// Asks the policy for a step, runs it on the model, hands the logits to the sequences'
    /// output processing. Returns nil when nothing ran.
    private func step() -> StepInfo? {
        let plan = speculative == nil ? policy.plan() : policy.plan(drafting: { s, limit in self.drafts(for: s, limit: limit) })
        let now0 = clock.now
        for id in plan.preempted { outputs[id]?.timings.preemptions += 1 }
        for id in plan.admitted { outputs[id]?.timings.scheduled = now0 }
        for id in plan.outOfKV { end(id, .length) }
        guard !plan.items.isEmpty else { return nil }

        // One forward over the mixed batch, each sequence through a view of its blocks. A
        // speculative item feeds its last token and its drafts, with logits for each.
        var inputs: [SequenceInput] = []
        inputs.reserveCapacity(plan.items.count)
        for item in plan.items {
            guard let s = policy.runningSequence(item.id) else { continue }
            let cache = KVCache(pool: pool, maxPositions: contextLength, blockTable: item.blockTable, count: item.start)
            let known = item.count - item.drafts.count
            inputs.append(SequenceInput(cache: cache, tokens: Array(s.tokens[item.start..<(item.start + known)]) + item.drafts,
                                        logits: !item.wantsLogits ? .none : item.drafts.isEmpty ? .last : .all))
        }
        let t0 = clock.now
        var out: [[Float]]
        do {
            out = try loaded.model.forward(inputs, pool: loaded.pool)
        } catch {
            let msg = "forward pass failed: \(error)"
            for item in plan.items { end(item.id, .error, error: msg) }
            return StepInfo(sequences: plan.items.count, tokens: 0, seconds: (clock.now - t0).inSeconds)
        }
        let now = clock.now
        // Prefill chunks (positions before the prompt's end): two timestamps per sequence and step.
        for item in plan.items {
            guard let s = policy.runningSequence(item.id), item.start < s.promptCount else { continue }
            outputs[item.id]?.timings.prefillChunks.append(PrefillChunk(start: t0, end: now, tokens: item.count))
        }
        policy.completed(plan)

        // Sample, detokenize, check stop conditions: each sequence touches only its own output
        // state (sampler, detokenizer, stream), so they run in parallel on the engine's pool.
        var sampling: [(out: SequenceOutput, history: [Int32], logits: Int, id: UInt64, drafts: [Int32])] = []
        for (k, item) in plan.items.enumerated() where item.wantsLogits && !out[k].isEmpty {
            guard let o = outputs[item.id], let s = policy.runningSequence(item.id) else { continue }
            sampling.append((o, s.tokens, k, item.id, item.drafts))
        }
        typealias Outcome = (tokens: [Int32], accepted: Int, reason: SequenceFinishReason?)
        let results = UnsafeMutableBufferPointer<Outcome>.allocate(capacity: sampling.count)
        defer { results.deinitialize().deallocate() }
        _ = results.initialize(from: repeatElement((tokens: [Int32](), accepted: 0, reason: SequenceFinishReason?.none),
                                                   count: sampling.count))
        // Each task owns its logits array outright, so sampling in place copies nothing.
        let logits = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: sampling.count)
        _ = logits.initialize(from: sampling.map { out[$0.logits] })
        out = []
        defer { logits.deinitialize().deallocate() }
        let eog = loaded.tokenizer.endOfGenerationIDs, context = contextLength
        loaded.pool.parallelFor(sampling.count) { j in
            let task = sampling[j]
            if task.drafts.isEmpty {
                let r = task.out.accept(logits: &logits[j], history: task.history, time: now, eog: eog, contextLength: context)
                results[j] = ([r.token], 0, r.reason)
            } else {
                // One row of logits per fed token: the last known one and each draft.
                results[j] = logits[j].withUnsafeBufferPointer { rows in
                    task.out.acceptSpeculative(rows: rows, vocabulary: rows.count / (task.drafts.count + 1), drafts: task.drafts, history: task.history,
                                               time: now, eog: eog, contextLength: context)
                }
            }
        }
        for (j, item) in sampling.enumerated() {
            let r = results[j]
            if item.drafts.isEmpty {
                if let t = r.tokens.first { policy.append(item.id, token: t) }
            } else {
                draftedTotal += item.drafts.count
                acceptedTotal += r.accepted
                policy.commit(item.id, tokens: r.tokens, acceptedDrafts: r.accepted)
            }
            if let reason = r.reason { end(item.id, reason) }
        }
        return StepInfo(sequences: plan.items.count, tokens: plan.tokens, seconds: (now - t0).inSeconds)
    }
}

