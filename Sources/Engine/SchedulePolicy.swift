/// One sequence as the scheduling policy sees it: its tokens, how far its keys and values are
/// computed, and the KV blocks that hold them.
public struct PolicySequence: Sendable {
    public let id: UInt64
    /// Prompt followed by generated tokens: everything known so far.
    public internal(set) var tokens: [Int32]
    public let promptCount: Int
    /// When it was queued (the batch wait counts from the oldest waiting sequence).
    public let queued: ContinuousClock.Instant
    /// Positions whose keys and values are in `blockTable`'s blocks.
    public internal(set) var computed = 0
    public internal(set) var blockTable: [Int32] = []
    /// Chain hashes of the full blocks registered in the prefix cache, in order.
    var hashes: [UInt64] = []
    /// Prompt tokens that came from the prefix cache at first admission.
    public internal(set) var cachedTokens = 0
    /// Set at the first admission.
    public internal(set) var admitted = false
    public internal(set) var preemptions = 0

    public init(id: UInt64, tokens: [Int32], queued: ContinuousClock.Instant) {
        self.id = id
        self.tokens = tokens
        promptCount = tokens.count
        self.queued = queued
    }
}

/// What one engine step runs: for each sequence, the tokens to feed from position `start` on
/// (a prefill chunk or one decode token) over its block table, and whether its logits are wanted
/// (the step completes what is known of the sequence, so a token is sampled).
public struct StepPlan: Sendable {
    public struct Item: Sendable {
        public let id: UInt64
        public let start: Int
        public let count: Int
        public let blockTable: [Int32]
        public let wantsLogits: Bool
        /// Speculative decoding: tokens drafted after the sequence's last known token, fed after
        /// it in this step (counted in `count`) and verified against its logits. Their positions
        /// are not part of `computed` until accepted (`SchedulePolicy.commit`).
        public let drafts: [Int32]

        public init(id: UInt64, start: Int, count: Int, blockTable: [Int32], wantsLogits: Bool, drafts: [Int32] = []) {
            self.id = id
            self.start = start
            self.count = count
            self.blockTable = blockTable
            self.wantsLogits = wantsLogits
            self.drafts = drafts
        }
    }
    public var items: [Item] = []
    /// Sequences sent back to the queue this step (their blocks released; recomputed later).
    public var preempted: [UInt64] = []
    /// Sequences admitted for the first time this step.
    public var admitted: [UInt64] = []
    /// Sequences ended because even the whole budget cannot hold them (cannot happen after
    /// `Scheduler.validate`; kept so the engine never spins).
    public var outOfKV: [UInt64] = []
    public var tokens: Int { items.reduce(0) { $0 + $1.count } }
}

/// The scheduling policy of the engine: which sequences run in a step, how many prompt tokens
/// each prefills, what to preempt, which cached prefix a sequence starts from. A value with no
/// clock, no threads and no model: the engine loop owns one and asks it for a plan each step,
/// and tests drive it directly.
///
/// Rules, in order, each step:
/// 1. Running sequences, oldest first, take their next decode token or prefill chunk within the
///    step's token budget. When the KV blocks run out, the newest running sequence is preempted
///    (its blocks released, its tokens recomputed later) until the older one fits.
/// 2. Waiting sequences are admitted first come first served while there is room (sequence
///    slots, token budget, blocks); each starts from the longest cached prefix of its tokens
///    (always leaving its last token to compute, so the step that finishes it yields logits).
///    One whose next block a running sequence is computing right now waits a step to share it.
/// 3. Speculative decoding (`plan(drafting:)`): each decoding sequence may add drafted tokens
///    after its own, within the token budget left after 1 and 2 and only with KV blocks that are
///    free now — never preempting or evicting for a draft; a draft that does not fit is shortened.
public struct SchedulePolicy: Sendable {
    public var maxSeqs: Int
    public var maxBatchedTokens: Int
    public var prefixCaching: Bool
    public var batchWait: Duration
    public private(set) var allocator: BlockAllocator
    public private(set) var waiting: [PolicySequence] = []
    public private(set) var running: [PolicySequence] = []
    /// Prompt tokens looked up in the prefix cache at first admissions, and those found.
    public private(set) var prefixQueries = 0
    public private(set) var prefixHits = 0
    public private(set) var preemptions = 0

    public init(maxSeqs: Int, maxBatchedTokens: Int, prefixCaching: Bool = true, batchWait: Duration = .zero,
                allocator: BlockAllocator) {
        self.maxSeqs = max(1, maxSeqs)
        self.maxBatchedTokens = max(1, maxBatchedTokens)
        self.prefixCaching = prefixCaching
        self.batchWait = batchWait
        self.allocator = allocator
    }

    public var isIdle: Bool { waiting.isEmpty && running.isEmpty }

    /// The running sequence `id` (nil when it is not running).
    public func runningSequence(_ id: UInt64) -> PolicySequence? { running.first { $0.id == id } }

    public mutating func enqueue(_ s: PolicySequence) { waiting.append(s) }

    /// Removes a sequence (finished or cancelled), releasing its blocks; nil if unknown.
    @discardableResult
    public mutating func remove(_ id: UInt64) -> PolicySequence? {
        if let i = running.firstIndex(where: { $0.id == id }) {
            var s = running.remove(at: i)
            dropKV(&s)
            return s
        }
        if let i = waiting.firstIndex(where: { $0.id == id }) { return waiting.remove(at: i) }
        return nil
    }

    /// Appends a sampled token to a running sequence.
    public mutating func append(_ id: UInt64, token: Int32) {
        guard let i = running.firstIndex(where: { $0.id == id }) else { return }
        running[i].tokens.append(token)
    }

    /// When the first step should wait for more requests: nothing runs, some (but fewer than
    /// `maxSeqs`, and less than a step's token budget) are waiting, and the oldest of them has
    /// waited less than `batchWait`. The instant the wait ends, or nil to step now.
    public func batchWaitDeadline(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard batchWait > .zero, running.isEmpty, !waiting.isEmpty, waiting.count < maxSeqs else { return nil }
        let pending = waiting.reduce(0) { $0 + ($1.tokens.count - $1.computed) }
        guard pending < maxBatchedTokens, let oldest = waiting.map(\.queued).min() else { return nil }
        let deadline = oldest + batchWait
        return now < deadline ? deadline : nil
    }

    /// Decides one step (see the type's rules). The plan's blocks are taken; call `completed`
    /// after running it.
    public mutating func plan() -> StepPlan { plan(drafting: nil) }

    /// `plan()`, then rule 3: `drafting(sequence, limit)` proposes at most `limit` drafts for a
    /// decoding sequence (its last token is the one this step computes); as many of them as the
    /// leftover token budget and the free KV blocks allow ride along. After the step, `completed`
    /// then `commit` (with the tokens that came out) settle the sequence.
    public mutating func plan(drafting: ((PolicySequence, Int) -> [Int32])?) -> StepPlan {
        var plan = StepPlan()
        var budget = maxBatchedTokens
        var batch: [(id: UInt64, count: Int)] = []

        // 1. Running sequences, oldest first.
        var i = 0
        while i < running.count {
            let remaining = running[i].tokens.count - running[i].computed
            let n = min(remaining, budget)
            if n <= 0 { i += 1; continue }
            var s = running[i]
            let fits = grow(&s, to: s.computed + n)
            running[i] = s
            if fits {
                batch.append((s.id, n))
                budget -= n
                i += 1
                continue
            }
            // Out of KV: preempt the newest running sequence (possibly this one) and retry.
            var victim = running.removeLast()
            if i == running.count {  // the victim is this sequence
                if running.isEmpty && waiting.isEmpty && victim.blockTable.count == allocator.totalBlocks {
                    dropKV(&victim)
                    plan.outOfKV.append(victim.id)
                } else {
                    preempt(&victim, &plan)
                }
                continue
            }
            batch.removeAll { $0.id == victim.id }
            preempt(&victim, &plan)
        }

        // 2. Admit waiting sequences while there is room.
        var w = 0
        while budget > 0, running.count < maxSeqs, w < waiting.count {
            var s = waiting[w]
            attachCachedPrefix(&s)
            if waitsForSharedPrefix(s) { dropKV(&s); w += 1; continue }
            let n = min(s.tokens.count - s.computed, budget)
            guard n > 0, grow(&s, to: s.computed + n) else { dropKV(&s); break }
            waiting.remove(at: w)
            if !s.admitted {
                s.admitted = true
                s.cachedTokens = s.computed
                prefixQueries += s.promptCount
                prefixHits += s.computed
                plan.admitted.append(s.id)
            }
            running.append(s)
            batch.append((s.id, n))
            budget -= n
        }

        // 3. Drafts, in the room that is left.
        var drafts: [UInt64: [Int32]] = [:]
        if let drafting {
            for (id, n) in batch where budget > 0 {
                guard let i = running.firstIndex(where: { $0.id == id }) else { continue }
                var s = running[i]
                guard n == 1, s.computed + 1 == s.tokens.count else { continue }
                var d = Array(drafting(s, budget).prefix(budget))
                while !d.isEmpty && !grow(&s, to: s.computed + 1 + d.count, evicting: false) { d.removeLast() }
                guard !d.isEmpty else { continue }
                running[i] = s
                drafts[id] = d
                budget -= d.count
            }
        }

        for (id, n) in batch {
            guard let s = runningSequence(id) else { continue }
            let d = drafts[id] ?? []
            plan.items.append(StepPlan.Item(id: id, start: s.computed, count: n + d.count, blockTable: s.blockTable,
                                            wantsLogits: s.computed + n == s.tokens.count, drafts: d))
        }
        return plan
    }

    /// Records that `plan` ran: its tokens' keys and values are computed; newly full blocks
    /// join the prefix cache.
    /// A speculative item's drafted positions are not counted: `commit` adds the accepted ones.
    public mutating func completed(_ plan: StepPlan) {
        for item in plan.items {
            guard let i = running.firstIndex(where: { $0.id == item.id }) else { continue }
            var s = running[i]
            s.computed = item.start + item.count - item.drafts.count
            registerFullBlocks(&s)
            running[i] = s
        }
    }

    /// Settles a speculative step of `id` (after `completed`): `tokens` — the accepted drafts
    /// followed by the token after them — join the sequence; the accepted drafts' positions
    /// (`acceptedDrafts`, computed in the step with exactly those tokens) count as computed; the
    /// rejected drafts' positions are forgotten (rewritten when the sequence gets there), and the
    /// blocks only they used go back to the allocator. Blocks join the prefix cache only up to
    /// the computed positions, so none holding a rejected position is ever registered.
    public mutating func commit(_ id: UInt64, tokens: [Int32], acceptedDrafts: Int) {
        guard let i = running.firstIndex(where: { $0.id == id }) else { return }
        var s = running[i]
        let kept = max(0, min(acceptedDrafts, tokens.count - 1))
        s.tokens.append(contentsOf: tokens)
        s.computed += kept
        let need = allocator.blocks(for: s.computed)
        if s.blockTable.count > need {
            allocator.release(Array(s.blockTable[need...]))
            s.blockTable.removeSubrange(need...)
        }
        registerFullBlocks(&s)
        running[i] = s
    }

    // MARK: blocks

    private mutating func dropKV(_ s: inout PolicySequence) {
        allocator.release(s.blockTable)
        s.blockTable.removeAll()
        s.hashes.removeAll()
        s.computed = 0
    }

    private mutating func preempt(_ s: inout PolicySequence, _ plan: inout StepPlan) {
        dropKV(&s)
        s.preemptions += 1
        preemptions += 1
        plan.preempted.append(s.id)
        waiting.insert(s, at: 0)
    }

    /// Grows the block table to cover `positions`; false (taking nothing) when the budget is short.
    /// `evicting: false` takes only blocks that hold nothing (no cached prefix is given up).
    private mutating func grow(_ s: inout PolicySequence, to positions: Int, evicting: Bool = true) -> Bool {
        let need = allocator.blocks(for: positions) - s.blockTable.count
        if need <= 0 { return true }
        guard let b = allocator.allocate(need, evicting: evicting) else { return false }
        s.blockTable.append(contentsOf: b)
        return true
    }

    private mutating func attachCachedPrefix(_ s: inout PolicySequence) {
        guard prefixCaching, s.blockTable.isEmpty else { return }
        let bs = allocator.blockSize
        let hit = allocator.match(s.tokens, maxBlocks: (s.tokens.count - 1) / bs)
        s.blockTable = hit.blocks
        s.hashes = hit.hashes
        s.computed = hit.blocks.count * bs
    }

    private mutating func registerFullBlocks(_ s: inout PolicySequence) {
        guard prefixCaching else { return }
        let bs = allocator.blockSize
        while s.hashes.count < s.computed / bs {
            let i = s.hashes.count
            s.hashes.append(allocator.register(s.blockTable[i], parent: s.hashes.last ?? BlockAllocator.rootHash,
                                               tokens: s.tokens[(i * bs)..<((i + 1) * bs)]))
        }
    }

    /// True when a running sequence is about to compute the next block `s` could share (the same
    /// tokens from position 0 to that block's end).
    private func waitsForSharedPrefix(_ s: PolicySequence) -> Bool {
        guard prefixCaching else { return false }
        let bs = allocator.blockSize
        let end = (s.computed / bs + 1) * bs
        guard end <= s.tokens.count - 1 else { return false }
        return running.contains { r in r.computed < end && r.tokens.count >= end && r.tokens[0..<end] == s.tokens[0..<end] }
    }
}
