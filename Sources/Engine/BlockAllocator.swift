/// KV-cache accounting in fixed-size blocks of positions against a byte budget.
///
/// Ownership: one allocator belongs to one `Scheduler` and is touched only by its engine
/// thread. Blocks are ids in `0..<totalBlocks`; a sequence holds the blocks that cover the
/// positions it has computed (or is about to compute this step). The per-sequence `KVCache`
/// stores the actual floats; the allocator is the budget that decides who may grow.
public struct BlockAllocator: Sendable {
    public let blockSize: Int
    public let totalBlocks: Int
    private var free: [Int]

    public init(totalBlocks: Int, blockSize: Int) {
        self.blockSize = max(1, blockSize)
        self.totalBlocks = max(0, totalBlocks)
        free = Array((0..<self.totalBlocks).reversed())
    }

    /// Blocks for a budget of `megabytes` MiB where one position costs `bytesPerPosition`.
    public init(megabytes: Int, bytesPerPosition: Int, blockSize: Int) {
        let bytes = max(0, megabytes) * 1_048_576
        let per = max(1, bytesPerPosition * max(1, blockSize))
        self.init(totalBlocks: bytes / per, blockSize: blockSize)
    }

    public var freeCount: Int { free.count }
    public var usedCount: Int { totalBlocks - free.count }
    public var usage: Double { totalBlocks == 0 ? 0 : Double(usedCount) / Double(totalBlocks) }
    /// Positions the whole budget holds.
    public var capacityPositions: Int { totalBlocks * blockSize }

    /// Blocks needed to hold `positions` positions.
    public func blocks(for positions: Int) -> Int { (max(0, positions) + blockSize - 1) / blockSize }

    /// Takes `n` blocks, or returns nil (taking nothing) when fewer are free.
    public mutating func allocate(_ n: Int) -> [Int]? {
        guard n >= 0, n <= free.count else { return nil }
        let taken = Array(free.suffix(n))
        free.removeLast(n)
        return taken
    }

    /// Returns blocks to the pool.
    public mutating func release(_ ids: [Int]) {
        free.append(contentsOf: ids)
    }
}
