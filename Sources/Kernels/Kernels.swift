import CKernels
import GGUF

/// Why a weight matrix cannot be used by the kernels.
public enum KernelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The tensor type has no matmul kernel.
    case unsupportedType(GGMLType)
    /// `cols` is not a positive whole number of the type's blocks.
    case badColumns(type: GGMLType, cols: Int, blockSize: Int)
    /// `rows` is negative.
    case badRows(Int)

    public var description: String {
        switch self {
        case .unsupportedType(let t):
            let names = supportedTypes.map(\.description).joined(separator: ", ")
            return "tensor type \(t) is not supported by the kernels (supported: \(names))"
        case .badColumns(let t, let cols, let bs):
            return "column count \(cols) is not a positive multiple of the \(t) block size \(bs)"
        case .badRows(let r):
            return "row count \(r) is negative"
        }
    }
}

/// The weight types matmul and dequantize handle.
public let supportedTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q5_0, .q4_K, .q5_K, .q6_K]

public func isSupported(_ type: GGMLType) -> Bool { ck_type_supported(Int32(type.rawValue)) != 0 }

/// Instruction-set level of the integer kernels.
public enum SIMDLevel: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Portable C, the reference the others are tested against.
    case scalar = 0
    /// AVX2 + FMA + F16C.
    case avx2 = 1
    /// AVX-512 VNNI (vpdpbusd on 256-bit vectors).
    case avx512vnni = 2

    /// Best level this CPU supports.
    public static var supported: SIMDLevel { SIMDLevel(rawValue: Int(ck_supported_level())) ?? .scalar }
    /// Level used by `matmul` without an explicit level: `supported`, capped by the
    /// environment variable `CKERNELS_LEVEL=0|1|2` read at first use.
    public static var active: SIMDLevel { SIMDLevel(rawValue: Int(ck_default_level())) ?? .scalar }
    /// Every level runnable here, lowest first.
    public static var available: [SIMDLevel] { allCases.filter { $0 <= supported } }

    public static func < (a: SIMDLevel, b: SIMDLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .scalar: return "scalar"
        case .avx2: return "avx2"
        case .avx512vnni: return "avx512vnni"
        }
    }
}

/// A persistent pool of worker threads (C pthreads that spin briefly, then sleep).
///
/// `parallelFor` runs on `threadCount - 1` workers plus the calling thread. It may be
/// called from any thread; concurrent calls on one pool are serialized, and a call made
/// from inside a `parallelFor` body of the same pool runs serially on that thread.
public final class ThreadPool: @unchecked Sendable {
    let raw: OpaquePointer
    public let threadCount: Int

    public init(threads: Int) {
        guard let p = ck_pool_create(Int32(clamping: max(1, threads))) else {
            fatalError("ThreadPool: out of memory")
        }
        raw = p
        threadCount = Int(ck_pool_threads(p))
    }

    deinit { ck_pool_destroy(raw) }

    /// Runs `body(i)` for every i in 0..<n across the pool; returns when all are done.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        guard n > 0 else { return }
        if n == 1 || threadCount == 1 {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            var fn = escaping
            withUnsafeMutablePointer(to: &fn) { ptr in
                ck_pool_run(raw, n, { ctx, i in
                    ctx.unsafelyUnwrapped.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                }, UnsafeMutableRawPointer(ptr))
            }
        }
    }
}

/// A `rows × cols` weight matrix (rows = outputs, cols = inputs) in GGUF row-major blocks.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    /// Row-interleaved copy for the SIMD kernels (`withPackedCopy`), or nil.
    public private(set) var packed: PackedWeights?

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer) throws(KernelError) {
        guard isSupported(type) else { throw .unsupportedType(type) }
        guard cols > 0, cols % type.blockSize == 0 else {
            throw .badColumns(type: type, cols: cols, blockSize: type.blockSize)
        }
        guard rows >= 0 else { throw .badRows(rows) }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
    }

    /// Bytes of one row.
    public var rowBytes: Int { cols / type.blockSize * type.typeSize }

    /// Whether `withPackedCopy` makes a packed copy for this type and shape (Q8_0, Q4_0, Q5_0
    /// with at least 8 rows).
    public var canPack: Bool { ck_pack_size(Int32(type.rawValue), rows, cols) > 0 }

    /// This matrix with a row-interleaved copy of its whole 8-row groups, which the AVX2 and
    /// AVX-512 kernels multiply several times faster (same size as the rows it covers; the scalar
    /// level and rows past the last group keep reading `data`). Itself when `canPack` is false.
    /// Packs in parallel on `pool`; `progress(rowsDone)` runs on the calling thread between pieces
    /// (e.g. to release the source pages already packed).
    public func withPackedCopy(pool: ThreadPool, progress: ((_ rowsDone: Int) -> Void)? = nil) -> WeightMatrix {
        let bytes = Int(ck_pack_size(Int32(type.rawValue), rows, cols))
        guard bytes > 0 else { return self }
        let storage = PackedWeights(bytes: bytes)
        let groupRows = Int(ck_pack_group_rows())
        let groups = rows / groupRows
        // Pieces of ~4 MiB of source, so progress can release memory as it goes.
        let perPiece = max(1, (4 << 20) / max(1, groupRows * rowBytes))
        var g = 0
        while g < groups {
            let n = min(perPiece, groups - g)
            let tasks = pool.threadCount
            let per = (n + tasks - 1) / tasks
            let start = g
            pool.parallelFor(tasks) { i in
                let lo = start + i * per, cnt = min(per, start + n - lo)
                if cnt > 0 { ck_pack(Int32(type.rawValue), data, rows, cols, storage.raw, lo, cnt) }
            }
            g += n
            progress?(g * groupRows)
        }
        var m = self
        m.packed = storage
        return m
    }
}

/// Memory of a packed weight copy (freed with the last matrix that uses it).
public final class PackedWeights: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public let bytes: Int
    init(bytes: Int) {
        self.bytes = bytes
        raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }
    deinit { raw.deallocate() }
}

/// out[t*rows + r] = dot(row r of w, x[t*cols ..< (t+1)*cols]) for t in 0..<nTokens,
/// at the active SIMD level.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                   _ out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    ck_matmul_packed(pool.raw, -1, Int32(w.type.rawValue), w.data, w.packed.map { UnsafeRawPointer($0.raw) },
                     w.rows, w.cols, x, nTokens, out)
}

/// `matmul` at an explicit SIMD level (capped at `SIMDLevel.supported`); for tests and benchmarks.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                   _ out: UnsafeMutablePointer<Float>, pool: ThreadPool, level: SIMDLevel) {
    ck_matmul_packed(pool.raw, Int32(level.rawValue), Int32(w.type.rawValue), w.data,
                     w.packed.map { UnsafeRawPointer($0.raw) }, w.rows, w.cols, x, nTokens, out)
}

/// Dequantizes row `row` of `w` (cols floats) into dst.
/// Reads the packed copy when the matrix has one, so a packed matrix never touches its original
/// bytes (whose pages were released after packing).
public func dequantizeRow(_ w: WeightMatrix, row: Int, into dst: UnsafeMutablePointer<Float>) {
    if let p = w.packed {
        ck_dequantize_packed_row(Int32(w.type.rawValue), w.data, p.raw, w.rows, w.cols, row, dst)
    } else {
        ck_dequantize(Int32(w.type.rawValue), w.data + row * w.rowBytes, w.cols, dst)
    }
}

/// Dequantizes the `count / type.blockSize` whole blocks at src into dst. Unsupported types
/// write nothing.
public func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    ck_dequantize(Int32(type.rawValue), src, count, dst)
}

// MARK: - Half-precision KV helpers

/// Rounds `count` floats to IEEE half precision (nearest, ties to even) and stores their bit
/// patterns; at the active SIMD level unless `level` is given (every level gives the same bits).
public func convertToHalf(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<UInt16>, count: Int,
                          level: SIMDLevel? = nil) {
    ck_f32_to_f16(Int32(level?.rawValue ?? -1), x, y, count)
}

/// out[j] = Σᵢ q[i]·k[j·stride + i] for j in 0..<count, i in 0..<dim, with half-precision k
/// (the attention scores of one query over a run of cached keys). Every level gives the same bits.
public func halfDotRows(_ q: UnsafePointer<Float>, _ k: UnsafePointer<UInt16>, stride: Int, count: Int,
                        dim: Int, into out: UnsafeMutablePointer<Float>, level: SIMDLevel? = nil) {
    ck_attn_scores_f16(Int32(level?.rawValue ?? -1), q, k, stride, count, dim, out)
}

/// out[i] += Σⱼ w[j]·v[j·stride + i] for i in 0..<dim, j in 0..<count (in order of j), with
/// half-precision v (the attention-weighted sum of cached values). Every level gives the same bits.
public func halfAccumulateRows(_ w: UnsafePointer<Float>, _ v: UnsafePointer<UInt16>, stride: Int, count: Int,
                               dim: Int, into out: UnsafeMutablePointer<Float>, level: SIMDLevel? = nil) {
    ck_attn_accum_f16(Int32(level?.rawValue ?? -1), w, v, stride, count, dim, out)
}

// MARK: - Activations

// MARK: - Activation quantization (exposed for tests)

/// The 8-bit activation blocks `matmul` makes from `x` for weights of `type` (llama.cpp's
/// q8_0 rule for 32-element types, q8_K for the K-quants), as raw bytes; at the active SIMD
/// level unless `level` is given (every level writes the same bytes). Empty for float types or
/// when `x.count` is not a whole number of blocks.
public func quantizeActivations(_ x: [Float], for type: GGMLType, level: SIMDLevel? = nil) -> [UInt8] {
    let per = Int(ck_activation_block_bytes(Int32(type.rawValue)))
    let bs = type.blockSize
    guard per > 0, !x.isEmpty, x.count % bs == 0 else { return [] }
    var out = [UInt8](repeating: 0, count: x.count / bs * per)
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBytes { op in
            ck_quantize_activations(Int32(level?.rawValue ?? -1), Int32(type.rawValue), xp.baseAddress,
                                    x.count, op.baseAddress)
        }
    }
    return out
}

/// out[i] = gelu(g[i]) · u[i] with llama.cpp's half-precision GELU table (its CPU default):
/// 0 for g ≤ -10, g for g ≥ 10, otherwise the table entry of g rounded to half precision, the
/// table holding half(gelu_tanh(h)) for every half h. The same bits at every level; `out` may
/// alias `g` or `u`.
public func gegluTable(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                       count: Int, level: SIMDLevel? = nil) {
    ck_geglu_table(Int32(level?.rawValue ?? -1), g, u, out, count)
}
