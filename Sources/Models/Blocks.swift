import Foundation
import Kernels

// Shared building blocks for decoder-only transformers: norms, RoPE, attention over the
// KV cache, activations. Every architecture file composes these in its own forward pass.

/// Float scratch buffer owned by one forward call.
public struct Buffer {
    public let ptr: UnsafeMutablePointer<Float>
    public let count: Int
    init(_ count: Int) {
        self.count = count
        ptr = .allocate(capacity: max(count, 1))
        ptr.initialize(repeating: 0, count: max(count, 1))
    }
    func free() { ptr.deallocate() }
    @inline(__always) func row(_ i: Int, _ width: Int) -> UnsafeMutablePointer<Float> { ptr + i * width }
}

@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 16 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a * x
@inline(__always) func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let av = SIMD8<Float>(repeating: a)
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    while i + 8 <= n {
        let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            + av * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// RMS normalisation of `rows` rows of width `n`, in place or into `out`, times `weight`.
func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
             rows: Int, n: Int, eps: Float) {
    for r in 0..<rows {
        let xr = x + r * n, o = out + r * n
        let ss = dot(xr, xr, n)
        let scale = 1 / (ss / Float(n) + eps).squareRoot()
        for i in 0..<n { o[i] = xr[i] * scale * weight[i] }
    }
}

/// x[r] += y[r] for all elements.
func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int) {
    axpy(1, y, x, count)
}

/// Adds a bias vector of width n to each of `rows` rows.
func addBias(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows { axpy(1, bias, x + r * n, n) }
}

@inline(__always) func silu(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }

/// How rotary embeddings pair the lanes of a head.
public enum RopeStyle: Sendable {
    /// Rotate lane i with lane i + dims/2 (GPT-NeoX; Gemma, Qwen 2/3).
    case neox
    /// Rotate adjacent lanes 2i and 2i+1 (GPT-J; Llama in GGUF order, GLM).
    case normal
}

/// Precomputed inverse frequencies for one RoPE configuration.
public struct Rope: Sendable {
    public let dims: Int          // rotated lanes per head (≤ head dim)
    public let style: RopeStyle
    let invFreq: [Float]

    public init(dims: Int, base: Float, style: RopeStyle, scale: Float = 1, freqFactors: [Float]? = nil) {
        self.dims = dims
        self.style = style
        var f: [Float] = []
        for i in 0..<(dims / 2) {
            var v = scale * Float(Foundation.pow(Double(base), -2.0 * Double(i) / Double(dims)))
            if let ff = freqFactors, i < ff.count { v /= ff[i] }
            f.append(v)
        }
        invFreq = f
    }

    /// cos/sin for every token position of a batch, computed once per forward pass.
    public func table(_ positions: [Int]) -> RopeTable {
        let half = dims / 2
        var cs = [Float](repeating: 0, count: positions.count * half * 2)
        for (t, pos) in positions.enumerated() {
            for i in 0..<half {
                let theta = Double(pos) * Double(invFreq[i])
                cs[(t * half + i) * 2] = Float(Foundation.cos(theta))
                cs[(t * half + i) * 2 + 1] = Float(Foundation.sin(theta))
            }
        }
        return RopeTable(dims: dims, style: style, cosSin: cs)
    }
}

/// Rotation factors for the tokens of one batch.
public struct RopeTable {
    let dims: Int
    let style: RopeStyle
    let cosSin: [Float]

    /// Rotates `heads` heads of width `headDim` of token `t`, in place.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, token t: Int) {
        let half = dims / 2
        cosSin.withUnsafeBufferPointer { cs in
            let base = t * half * 2
            for h in 0..<heads {
                let b = x + h * headDim
                for i in 0..<half {
                    let c = cs[base + 2 * i], s = cs[base + 2 * i + 1]
                    let (a0, a1) = style == .neox ? (i, i + half) : (2 * i, 2 * i + 1)
                    let x0 = b[a0], x1 = b[a1]
                    b[a0] = x0 * c - x1 * s
                    b[a1] = x0 * s + x1 * c
                }
            }
        }
    }
}

/// Token layout of one forward call: which sequence each token belongs to, its position.
public struct BatchLayout {
    public let count: Int
    public let positions: [Int]
    public let sequence: [Int]
    public let caches: [KVCache]

    init(_ entries: [SequenceInput]) {
        var pos: [Int] = [], seq: [Int] = []
        for (s, e) in entries.enumerated() {
            for i in 0..<e.tokens.count { pos.append(e.cache.count + i); seq.append(s) }
        }
        positions = pos
        sequence = seq
        count = pos.count
        caches = entries.map(\.cache)
    }
}

/// Writes the new tokens' keys and values into their caches. `k`/`v` are [tokens × kvDim].
func storeKV(_ layout: BatchLayout, layer: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
             keyDim: Int, valueDim: Int) {
    for t in 0..<layout.count {
        let c = layout.caches[layout.sequence[t]]
        c.store(layer: layer, position: layout.positions[t], key: k + t * keyDim, value: v + t * valueDim)
    }
}

/// Rounds each value to the nearest half-precision number (kept as Float).
@inline(__always) func roundToHalf(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { x[i] = halfRounded(x[i]) }
}

/// The nearest half-precision value (ties to even), as Float. Values in the normal half range
/// are rounded by bit arithmetic (no conversion call); the rest go through Float16.
@inline(__always) func halfRounded(_ v: Float) -> Float {
    let b = v.bitPattern
    let e = (b >> 23) & 0xFF
    // Normal halves: float exponents 113 ... 142 (2^-14 ... 2^15), leaving room for a carry.
    if e >= 113 && e <= 141 {
        let r = (b &+ 0x0FFF &+ ((b >> 13) & 1)) & ~UInt32(0x1FFF)
        return Float(bitPattern: r)
    }
    return Float(Float16(v))
}

/// Causal multi-head attention with grouped KV heads over each token's own sequence cache.
/// q: [tokens × heads × headDim] (already rotated); out: [tokens × heads × valueDim].
/// `window`: attend only to the last `window` positions (sliding-window layers).
func attention(_ layout: BatchLayout, layer: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
               heads: Int, kvHeads: Int, headDim: Int, valueDim: Int, scale: Float, window: Int?,
               softcap: Float? = nil, pool: ThreadPool) {
    // Preconditions the hyperparameter ranges guarantee (checked in debug builds).
    assert(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "heads \(heads) not a multiple of kvHeads \(kvHeads)")
    assert(headDim > 0 && valueDim > 0, "head sizes \(headDim)/\(valueDim)")
    assert(window.map { $0 > 0 } ?? true, "sliding window \(String(describing: window))")
    assert(layout.positions.allSatisfy { $0 >= 0 }, "negative position")
    assert(zip(layout.sequence, layout.positions).allSatisfy { layout.caches[$0].capacity > $1 }, "position past the KV cache")
    let group = heads / kvHeads
    let maxLen = (layout.positions.max() ?? 0) + 1
    let work = layout.count * heads
    pool.parallelFor(work) { item in
        let t = item / heads, h = item % heads, kvh = h / group
        let cache = layout.caches[layout.sequence[t]]
        let p = layout.positions[t]
        let start = window.map { max(0, p - $0 + 1) } ?? 0
        let n = p - start + 1
        let half = cache.precision == .f16
        let o = out + (t * heads + h) * valueDim
        withUnsafeTemporaryAllocation(of: Float.self, capacity: min(n, maxLen) + headDim) { sc in
            let s = sc.baseAddress.unsafelyUnwrapped
            // With an F16 cache the query meets the keys in half precision, as in llama.cpp.
            let qh = s + min(n, maxLen)
            qh.update(from: q + (t * heads + h) * headDim, count: headDim)
            if half { roundToHalf(qh, headDim) }
            var mx = -Float.infinity
            // The sequence's rows are contiguous within a KV block: one kernel call per run.
            let kvPool = cache.pool, table = cache.blockTable, bs = kvPool.blockSize
            let keyDim = kvPool.keyDim, vDim = kvPool.valueDim
            var j0 = 0
            if half {
                let kb = kvPool.keyBase(layer).assumingMemoryBound(to: UInt16.self) + kvh * headDim
                while j0 < n {
                    let p0 = start + j0, len = min(n - j0, bs - p0 % bs)
                    let row = Int(table[p0 / bs]) * bs + p0 % bs
                    halfDotRows(qh, kb + row * keyDim, stride: keyDim, count: len, dim: headDim, into: s + j0)
                    j0 += len
                }
            } else {
                while j0 < n {
                    let len = cache.run(from: start + j0, limit: n - j0)
                    for j in 0..<len { s[j0 + j] = dot(qh, cache.key(layer, start + j0 + j) + kvh * headDim, headDim) }
                    j0 += len
                }
            }
            for j in 0..<n {
                var v = s[j] * scale
                if let cap = softcap { v = cap * Foundation.tanh(v / cap) }
                s[j] = v
                mx = max(mx, v)
            }
            var sum: Float = 0
            for j in 0..<n { let e = Foundation.exp(s[j] - mx); s[j] = e; sum += e }
            let inv = 1 / sum
            o.initialize(repeating: 0, count: valueDim)
            if half { for j in 0..<n { s[j] = halfRounded(s[j] * inv) } }
            j0 = 0
            if half {
                let vb = kvPool.valueBase(layer).assumingMemoryBound(to: UInt16.self) + kvh * valueDim
                while j0 < n {
                    let p0 = start + j0, len = min(n - j0, bs - p0 % bs)
                    let row = Int(table[p0 / bs]) * bs + p0 % bs
                    halfAccumulateRows(s + j0, vb + row * vDim, stride: vDim, count: len, dim: valueDim, into: o)
                    j0 += len
                }
            } else {
                while j0 < n {
                    let len = cache.run(from: start + j0, limit: n - j0)
                    for j in 0..<len { axpy(s[j0 + j] * inv, cache.value(layer, start + j0 + j) + kvh * valueDim, o, valueDim) }
                    j0 += len
                }
            }
        }
    }
}
