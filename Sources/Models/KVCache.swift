import Kernels

/// Per-sequence key/value cache: for each layer, keys and values of every position so far,
/// stored row-major as [position][kvHeads × headDim]. `.f16` stores IEEE half-precision values
/// (2 bytes each, like llama.cpp's default cache), `.f32` stores floats. Capacity grows in
/// chunks up to `maxPositions`, so a short conversation does not reserve the whole context.
///
/// Ownership: a cache belongs to exactly one sequence; the engine thread that runs the
/// sequence's forward passes is the only one that touches it.
public final class KVCache: @unchecked Sendable {
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
    public let maxPositions: Int
    /// Positions already stored (the next token goes at this position).
    public internal(set) var count: Int = 0
    public private(set) var capacity: Int = 0
    private var keys: [UnsafeMutableRawPointer]
    private var values: [UnsafeMutableRawPointer]
    static let chunk = 256

    /// Bytes one position occupies over all layers: the single formula the KV budgets
    /// (scheduler blocks, `serve --kv-cache-mb`) and `allocatedBytes` use.
    public static func bytesPerPosition(layers: Int, keyDim: Int, valueDim: Int, precision: Precision) -> Int {
        layers * (keyDim + valueDim) * precision.bytesPerElement
    }

    public init(layers: Int, keyDim: Int, valueDim: Int, maxPositions: Int, precision: Precision = .f16) {
        self.precision = precision
        self.layers = layers
        self.keyDim = keyDim
        self.valueDim = valueDim
        self.maxPositions = maxPositions
        keys = []
        values = []
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Bytes one position occupies in this cache.
    public var bytesPerPosition: Int {
        Self.bytesPerPosition(layers: layers, keyDim: keyDim, valueDim: valueDim, precision: precision)
    }

    /// Bytes currently allocated.
    public var allocatedBytes: Int { capacity * bytesPerPosition }

    /// Makes room for positions up to `needed` (exclusive). Throws past the context limit.
    public func reserve(_ needed: Int) throws {
        guard needed <= maxPositions else { throw ModelError.contextOverflow(needed: needed, limit: maxPositions) }
        guard needed > capacity else { return }
        let newCap = min(maxPositions, max(needed, capacity * 2, Self.chunk).roundedUp(to: Self.chunk))
        let e = precision.bytesPerElement
        var nk: [UnsafeMutableRawPointer] = []
        var nv: [UnsafeMutableRawPointer] = []
        for l in 0..<layers {
            let k = UnsafeMutableRawPointer.allocate(byteCount: max(1, newCap * keyDim * e), alignment: 64)
            let v = UnsafeMutableRawPointer.allocate(byteCount: max(1, newCap * valueDim * e), alignment: 64)
            if precision == .f16 {
                k.bindMemory(to: UInt16.self, capacity: newCap * keyDim)
                v.bindMemory(to: UInt16.self, capacity: newCap * valueDim)
            } else {
                k.bindMemory(to: Float.self, capacity: newCap * keyDim)
                v.bindMemory(to: Float.self, capacity: newCap * valueDim)
            }
            if capacity > 0 {
                k.copyMemory(from: keys[l], byteCount: count * keyDim * e)
                v.copyMemory(from: values[l], byteCount: count * valueDim * e)
                keys[l].deallocate()
                values[l].deallocate()
            }
            nk.append(k)
            nv.append(v)
        }
        keys = nk
        values = nv
        capacity = newCap
    }

    /// Keys of `layer` at `pos` (keyDim floats). Only for a `.f32` cache.
    @inline(__always) public func key(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        keys[layer].assumingMemoryBound(to: Float.self) + pos * keyDim
    }

    /// Values of `layer` at `pos` (valueDim floats). Only for a `.f32` cache.
    @inline(__always) public func value(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        values[layer].assumingMemoryBound(to: Float.self) + pos * valueDim
    }

    /// Keys of `layer` at `pos` (keyDim half-precision bit patterns). Only for a `.f16` cache.
    @inline(__always) public func halfKey(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> {
        keys[layer].assumingMemoryBound(to: UInt16.self) + pos * keyDim
    }

    /// Values of `layer` at `pos` (valueDim half-precision bit patterns). Only for a `.f16` cache.
    @inline(__always) public func halfValue(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> {
        values[layer].assumingMemoryBound(to: UInt16.self) + pos * valueDim
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

extension Int {
    @inline(__always) func roundedUp(to m: Int) -> Int { (self + m - 1) / m * m }
}
