/// Per-sequence key/value cache: for each layer, keys and values of every position so far,
/// stored row-major as [position][kvHeads × headDim] floats. Capacity grows in chunks up to
/// `maxPositions`, so a short conversation does not reserve the whole context.
///
/// Ownership: a cache belongs to exactly one sequence; the engine thread that runs the
/// sequence's forward passes is the only one that touches it.
public final class KVCache: @unchecked Sendable {
    /// Precision of the stored keys and values. `.f16` rounds them (and, in attention, the
    /// queries and attention weights) to half precision exactly as llama.cpp's default F16 cache
    /// does, so results match it; `.f32` keeps full precision.
    public enum Precision: String, Sendable { case f16, f32 }
    public let precision: Precision
    public let layers: Int
    public let keyDim: Int
    public let valueDim: Int
    public let maxPositions: Int
    /// Positions already stored (the next token goes at this position).
    public internal(set) var count: Int = 0
    public private(set) var capacity: Int = 0
    private var keys: [UnsafeMutablePointer<Float>]
    private var values: [UnsafeMutablePointer<Float>]
    static let chunk = 256

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

    /// Bytes currently allocated.
    public var allocatedBytes: Int { capacity * layers * (keyDim + valueDim) * 4 }

    /// Makes room for positions up to `needed` (exclusive). Throws past the context limit.
    public func reserve(_ needed: Int) throws {
        guard needed <= maxPositions else { throw ModelError.contextOverflow(needed: needed, limit: maxPositions) }
        guard needed > capacity else { return }
        let newCap = min(maxPositions, max(needed, capacity * 2, Self.chunk).roundedUp(to: Self.chunk))
        var nk: [UnsafeMutablePointer<Float>] = []
        var nv: [UnsafeMutablePointer<Float>] = []
        for l in 0..<layers {
            let k = UnsafeMutablePointer<Float>.allocate(capacity: newCap * keyDim)
            let v = UnsafeMutablePointer<Float>.allocate(capacity: newCap * valueDim)
            if capacity > 0 {
                k.update(from: keys[l], count: count * keyDim)
                v.update(from: values[l], count: count * valueDim)
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

    @inline(__always) public func key(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        keys[layer] + pos * keyDim
    }

    @inline(__always) public func value(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        values[layer] + pos * valueDim
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
