import Models

/// The engine's KV blocks: which sequence owns which block of the `KVPool`, and which blocks
/// hold a known prompt prefix (automatic prefix caching).
///
/// A full block whose keys and values have been computed is registered under its content key:
/// the chained hash of everything before it plus its own token ids (compared exactly, so only
/// the parent chain relies on the 64-bit hash). A block is shared by every running sequence that
/// reached it through the same tokens (reference counts); when the last owner lets go, a
/// registered block stays in the cache, least recently released first out, until its memory is
/// needed; an unregistered one goes straight back to the free list. A sequence's blocks are
/// released tail first, so the cache gives up the end of a conversation before its beginning.
///
/// Ownership: one allocator belongs to one `Scheduler` and is touched only by its engine
/// thread. Blocks are ids in `0..<totalBlocks`.
public struct BlockAllocator: Sendable {
    public let blockSize: Int
    public let totalBlocks: Int
    /// Blocks with no owner and no cached content.
    private var free: [Int32]
    private var refs: [Int32]
    private var keyOf: [BlockKey?]
    private var byKey: [BlockKey: Int32] = [:]
    /// Cached blocks with no owner, oldest release first (an intrusive doubly-linked list).
    private var lru = LRUList(0)

    /// The content of one full block: the chain hash of the blocks before it and its tokens.
    struct BlockKey: Hashable, Sendable {
        var parent: UInt64
        var tokens: [Int32]
    }

    /// The chain hash of the empty prefix.
    public static let rootHash: UInt64 = 0xcbf2_9ce4_8422_2325

    public init(totalBlocks: Int, blockSize: Int) {
        self.blockSize = max(1, blockSize)
        self.totalBlocks = max(0, totalBlocks)
        free = (0..<Int32(self.totalBlocks)).reversed()
        refs = Array(repeating: 0, count: self.totalBlocks)
        keyOf = Array(repeating: nil, count: self.totalBlocks)
        lru = LRUList(self.totalBlocks)
    }

    /// Blocks for a budget of `megabytes` MiB where one position costs `bytesPerPosition`.
    public init(megabytes: Int, bytesPerPosition: Int, blockSize: Int) {
        self.init(totalBlocks: Models.KVPool.blocks(megabytes: megabytes, bytesPerPosition: bytesPerPosition,
                                                    blockSize: blockSize), blockSize: blockSize)
    }

    /// Blocks a new sequence can take now: free ones plus cached ones nobody owns.
    public var freeCount: Int { free.count + lru.count }
    /// Blocks owned by running sequences.
    public var usedCount: Int { totalBlocks - freeCount }
    /// Cached blocks nobody owns (reusable by a prefix hit, evicted when memory is needed).
    public var cachedIdleCount: Int { lru.count }
    public var usage: Double { totalBlocks == 0 ? 0 : Double(usedCount) / Double(totalBlocks) }
    /// Positions the whole budget holds.
    public var capacityPositions: Int { totalBlocks * blockSize }
    /// Cached blocks given up to make room.
    public private(set) var evictions = 0

    /// Blocks needed to hold `positions` positions.
    public func blocks(for positions: Int) -> Int { (max(0, positions) + blockSize - 1) / blockSize }

    /// References held on `block` (0: free or cached idle).
    public func owners(of block: Int32) -> Int { Int(refs[Int(block)]) }

    /// Takes `n` blocks, or returns nil (taking nothing) when fewer are free. Free blocks go
    /// first, then the least recently released cached ones (their content is forgotten);
    /// `evicting: false` takes only free blocks (for speculative drafts, which must not cost a
    /// cached prefix).
    public mutating func allocate(_ n: Int, evicting: Bool = true) -> [Int32]? {
        guard n >= 0, n <= (evicting ? freeCount : free.count) else { return nil }
        var taken: [Int32] = []
        taken.reserveCapacity(n)
        while taken.count < n, let b = free.popLast() { taken.append(b) }
        while taken.count < n, let b = lru.popFirst() {
            if let k = keyOf[Int(b)] { byKey[k] = nil; keyOf[Int(b)] = nil }
            evictions += 1
            taken.append(b)
        }
        for b in taken { refs[Int(b)] = 1 }
        return taken
    }

    /// Lets go of one reference on each block, last block first.
    public mutating func release(_ ids: [Int32]) {
        for b in ids.reversed() {
            let i = Int(b)
            precondition(refs[i] > 0, "block \(b) released more often than taken")
            refs[i] -= 1
            guard refs[i] == 0 else { continue }
            if keyOf[i] != nil { lru.append(b) } else { free.append(b) }
        }
    }

    /// The cached blocks that hold the start of `tokens`, at most `maxBlocks` of them, each now
    /// referenced once more by the caller, with the chain hash after each.
    public mutating func match(_ tokens: [Int32], maxBlocks: Int) -> (blocks: [Int32], hashes: [UInt64]) {
        var blocks: [Int32] = [], hashes: [UInt64] = []
        var parent = Self.rootHash
        var i = 0
        while blocks.count < maxBlocks, i + blockSize <= tokens.count {
            let slice = Array(tokens[i..<(i + blockSize)])
            guard let b = byKey[BlockKey(parent: parent, tokens: slice)] else { break }
            if refs[Int(b)] == 0 { lru.remove(b) }
            refs[Int(b)] += 1
            parent = Self.chain(parent, slice)
            blocks.append(b)
            hashes.append(parent)
            i += blockSize
        }
        return (blocks, hashes)
    }

    /// Records that `block`, owned by the caller, now holds the full block `tokens` after the
    /// prefix whose chain hash is `parent`. Returns the chain hash after this block. When another
    /// block already holds the same content, this one stays unregistered (freed, not cached).
    @discardableResult
    public mutating func register(_ block: Int32, parent: UInt64, tokens: ArraySlice<Int32>) -> UInt64 {
        let slice = Array(tokens)
        let key = BlockKey(parent: parent, tokens: slice)
        if byKey[key] == nil, keyOf[Int(block)] == nil {
            byKey[key] = block
            keyOf[Int(block)] = key
        }
        return Self.chain(parent, slice)
    }

    /// The chain hash after a block of `tokens` that follows a prefix hashing to `parent`
    /// (SplitMix64 finalizer over each token, mixed into the running value).
    public static func chain<C: Collection>(_ parent: UInt64, _ tokens: C) -> UInt64 where C.Element == Int32 {
        var h = parent
        for t in tokens {
            var z = (h ^ UInt64(UInt32(bitPattern: t))) &+ 0x9e37_79b9_7f4a_7c15
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            h = z ^ (z >> 31)
        }
        return h
    }
}

/// A doubly-linked list over block ids 0..<n (arrays of neighbours; O(1) append, remove, pop).
struct LRUList: Sendable {
    private var prev: [Int32], next: [Int32], member: [Bool]
    private var head: Int32 = -1, tail: Int32 = -1
    private(set) var count = 0

    init(_ n: Int) {
        prev = Array(repeating: -1, count: n)
        next = Array(repeating: -1, count: n)
        member = Array(repeating: false, count: n)
    }

    mutating func append(_ b: Int32) {
        let i = Int(b)
        guard !member[i] else { return }
        member[i] = true
        prev[i] = tail
        next[i] = -1
        if tail >= 0 { next[Int(tail)] = b } else { head = b }
        tail = b
        count += 1
    }

    mutating func remove(_ b: Int32) {
        let i = Int(b)
        guard member[i] else { return }
        member[i] = false
        let p = prev[i], n = next[i]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { prev[Int(n)] = p } else { tail = p }
        count -= 1
    }

    mutating func popFirst() -> Int32? {
        guard head >= 0 else { return nil }
        let b = head
        remove(b)
        return b
    }
}
