import Kernels

/// Storage for keys and values in fixed-size blocks of positions: for each layer one array of
/// `blockCount × blockSize` rows of keys (keyDim elements each) and one of values. A block id
/// names the same rows in every layer. The serving engine allocates one pool from its KV budget
/// (`serve --kv-cache-mb`) and never grows it, so KV memory is bounded by the budget; sequences
/// reach their rows through a block table (`KVCache`). A standalone cache (tests, `logits`)
/// has a private pool that grows as its sequence does.
///
/// Ownership: a pool belongs to one engine; only the engine thread (and the workers it runs a
/// forward pass on, each writing its own rows) touches the memory.
public final class KVPool: @unchecked Sendable {
    /// Precision of the stored keys and values. `.f16` stores them as half precision (and, in
    /// attention, the queries and attention weights meet them in half precision) exactly as
    /// llama.cpp's default F16 cache does, so results match it; `.f32` keeps full precision.
    public enum Precision: String, Sendable {
        case f16, f32
        /// Bytes of one stored key or value element.
        public var bytesPerElement: Int { self == .f16 ? 2 : 4 }
    }
    public let precision: Precision
    public let layers: Int
    public let keyDim: Int
    public let valueDim: Int
    public let blockSize: Int
    public private(set) var blockCount: Int
    private var keys: [UnsafeMutableRawPointer]
    private var values: [UnsafeMutableRawPointer]

    /// Bytes one position occupies over all layers: the single formula the KV budgets
    /// (engine pool, `serve --kv-cache-mb`, `optimize`) and `allocatedBytes` use.
    public static func bytesPerPosition(layers: Int, keyDim: Int, valueDim: Int, precision: Precision) -> Int {
        layers * (keyDim + valueDim) * precision.bytesPerElement
    }

    /// Blocks of `blockSize` positions that `megabytes` MiB hold when one position costs
    /// `bytesPerPosition`.
    public static func blocks(megabytes: Int, bytesPerPosition: Int, blockSize: Int) -> Int {
        let per = max(1, bytesPerPosition * max(1, blockSize))
        return max(0, megabytes) * 1_048_576 / per
    }

    /// A pool of `blocks` blocks. The memory is reserved at once; pages become resident as
    /// blocks are first written.
    public init(layers: Int, keyDim: Int, valueDim: Int, blockSize: Int, blocks: Int, precision: Precision = .f16) {
        self.precision = precision
        self.layers = layers
        self.keyDim = keyDim
        self.valueDim = valueDim
        self.blockSize = max(1, blockSize)
        blockCount = 0
        keys = []
        values = []
        grow(toBlocks: blocks)
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Bytes one position occupies in this pool.
    public var bytesPerPosition: Int {
        Self.bytesPerPosition(layers: layers, keyDim: keyDim, valueDim: valueDim, precision: precision)
    }

    /// Bytes the pool holds.
    public var allocatedBytes: Int { blockCount * blockSize * bytesPerPosition }

    /// Grows the pool to `n` blocks, keeping the stored rows (only for private pools: the rows
    /// move, so nothing may hold a pointer into the pool across this call).
    func grow(toBlocks n: Int) {
        guard n > blockCount || keys.isEmpty else { return }
        let rows = max(n, 0) * blockSize, old = blockCount * blockSize
        let e = precision.bytesPerElement
        var nk: [UnsafeMutableRawPointer] = [], nv: [UnsafeMutableRawPointer] = []
        for l in 0..<layers {
            let k = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * keyDim * e), alignment: 64)
            let v = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * valueDim * e), alignment: 64)
            if precision == .f16 {
                k.bindMemory(to: UInt16.self, capacity: rows * keyDim)
                v.bindMemory(to: UInt16.self, capacity: rows * valueDim)
            } else {
                k.bindMemory(to: Float.self, capacity: rows * keyDim)
                v.bindMemory(to: Float.self, capacity: rows * valueDim)
            }
            if !keys.isEmpty {
                k.copyMemory(from: keys[l], byteCount: old * keyDim * e)
                v.copyMemory(from: values[l], byteCount: old * valueDim * e)
                keys[l].deallocate()
                values[l].deallocate()
            }
            nk.append(k)
            nv.append(v)
        }
        keys = nk
        values = nv
        blockCount = max(n, 0)
    }

    /// Start of `layer`'s key rows (row r = block × blockSize + offset at r × keyDim elements).
    @inline(__always) public func keyBase(_ layer: Int) -> UnsafeMutableRawPointer { keys[layer] }

    /// Start of `layer`'s value rows.
    @inline(__always) public func valueBase(_ layer: Int) -> UnsafeMutableRawPointer { values[layer] }

    /// Raw key row `row` (= block × blockSize + offset) of `layer`.
    @inline(__always) func keyRow(_ layer: Int, _ row: Int) -> UnsafeMutableRawPointer {
        keys[layer] + row * keyDim * precision.bytesPerElement
    }

    @inline(__always) func valueRow(_ layer: Int, _ row: Int) -> UnsafeMutableRawPointer {
        values[layer] + row * valueDim * precision.bytesPerElement
    }
}

/// One sequence's keys and values: a block table into a `KVPool` plus the number of positions
/// stored. Position p lives in block `blockTable[p / blockSize]`, row `p % blockSize`; rows of
/// one block are contiguous, so attention reads a sequence in runs of up to `blockSize` rows.
///
/// A cache made with `init(layers:…)` owns a private pool and takes blocks as it grows (the
/// standalone path: tests, `logits`). A cache made with `init(pool:…)` shares the engine's pool;
/// the engine puts the blocks in its table before each forward pass, and `reserve` only checks
/// that it did.
///
/// Ownership: a cache belongs to exactly one sequence; the engine thread that runs the
/// sequence's forward passes is the only one that touches it.
public final class KVCache: @unchecked Sendable {
    public typealias Precision = KVPool.Precision
    public let pool: KVPool
    public let maxPositions: Int
    /// Pool blocks holding this sequence's positions, in order.
    public var blockTable: [Int32] = []
    /// Positions already stored (the next token goes at this position).
    public internal(set) var count: Int = 0
    private let ownsPool: Bool
    /// Positions per block of a private pool (the growth step of a standalone cache).
    static let privateBlock = 256

    public var precision: Precision { pool.precision }
    public var layers: Int { pool.layers }
    public var keyDim: Int { pool.keyDim }
    public var valueDim: Int { pool.valueDim }
    public var blockSize: Int { pool.blockSize }
    /// Positions the block table covers.
    public var capacity: Int { blockTable.count * pool.blockSize }

    /// Bytes one position occupies over all layers (see `KVPool.bytesPerPosition`).
    public static func bytesPerPosition(layers: Int, keyDim: Int, valueDim: Int, precision: Precision) -> Int {
        KVPool.bytesPerPosition(layers: layers, keyDim: keyDim, valueDim: valueDim, precision: precision)
    }

    /// A standalone cache with its own pool, growing in blocks of 256 positions up to `maxPositions`.
    public init(layers: Int, keyDim: Int, valueDim: Int, maxPositions: Int, precision: Precision = .f16) {
        pool = KVPool(layers: layers, keyDim: keyDim, valueDim: valueDim, blockSize: Self.privateBlock,
                      blocks: 0, precision: precision)
        self.maxPositions = maxPositions
        ownsPool = true
    }

    /// A cache in a shared pool over `blockTable`, with `count` positions already stored.
    public init(pool: KVPool, maxPositions: Int, blockTable: [Int32] = [], count: Int = 0) {
        precondition(count >= 0 && count <= blockTable.count * pool.blockSize, "count \(count) outside the block table")
        self.pool = pool
        self.maxPositions = maxPositions
        self.blockTable = blockTable
        self.count = count
        ownsPool = false
    }

    /// Bytes one position occupies in this cache.
    public var bytesPerPosition: Int { pool.bytesPerPosition }

    /// Bytes of the blocks this cache holds.
    public var allocatedBytes: Int { capacity * bytesPerPosition }

    /// Makes room for positions up to `needed` (exclusive). Throws past the context limit, and,
    /// for a cache in a shared pool, when its owner has not given it the blocks.
    public func reserve(_ needed: Int) throws {
        guard needed <= maxPositions else { throw ModelError.contextOverflow(needed: needed, limit: maxPositions) }
        guard needed > capacity else { return }
        let blocks = (needed + pool.blockSize - 1) / pool.blockSize
        guard ownsPool else { throw ModelError.kvBlocksMissing(needed: needed, covered: capacity) }
        // A private pool grows by doubling (bounded by the context), like a growable array.
        let target = min(max(blocks, pool.blockCount * 2, 1),
                         (maxPositions + pool.blockSize - 1) / pool.blockSize)
        if target > pool.blockCount { pool.grow(toBlocks: target) }
        while blockTable.count < blocks { blockTable.append(Int32(blockTable.count)) }
    }

    /// Pool row of position `pos`.
    @inline(__always) func row(_ pos: Int) -> Int {
        let bs = pool.blockSize
        return Int(blockTable[pos / bs]) * bs + pos % bs
    }

    /// Positions from `pos` on that sit in the same block (contiguous rows), at most `limit`.
    @inline(__always) public func run(from pos: Int, limit: Int) -> Int {
        min(limit, pool.blockSize - pos % pool.blockSize)
    }

    /// Keys of `layer` at `pos` (keyDim floats). Only for a `.f32` cache. Rows after `pos`
    /// are contiguous up to the end of its block (`run(from:limit:)`).
    @inline(__always) public func key(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        pool.keyRow(layer, row(pos)).assumingMemoryBound(to: Float.self)
    }

    /// Values of `layer` at `pos` (valueDim floats). Only for a `.f32` cache.
    @inline(__always) public func value(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        pool.valueRow(layer, row(pos)).assumingMemoryBound(to: Float.self)
    }

    /// Keys of `layer` at `pos` (keyDim half-precision bit patterns). Only for a `.f16` cache.
    @inline(__always) public func halfKey(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> {
        pool.keyRow(layer, row(pos)).assumingMemoryBound(to: UInt16.self)
    }

    /// Values of `layer` at `pos` (valueDim half-precision bit patterns). Only for a `.f16` cache.
    @inline(__always) public func halfValue(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> {
        pool.valueRow(layer, row(pos)).assumingMemoryBound(to: UInt16.self)
    }

    /// Stores one position's key and value rows (floats), converting to the cache precision
    /// (`.f16`: nearest half, ties to even).
    public func store(layer: Int, position p: Int, key k: UnsafePointer<Float>, value v: UnsafePointer<Float>) {
        switch precision {
        case .f32:
            key(layer, p).update(from: k, count: keyDim)
            value(layer, p).update(from: v, count: valueDim)
        case .f16:
            convertToHalf(k, halfKey(layer, p), count: keyDim)
            convertToHalf(v, halfValue(layer, p), count: valueDim)
        }
    }

    /// Forget positions from `position` on (used to roll back or reuse a prefix).
    public func truncate(to position: Int) {
        count = max(0, min(count, position))
    }

    public func reset() { count = 0 }
}
