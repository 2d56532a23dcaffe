import Foundation
import GGUF
import Kernels
import Testing

@Suite struct MatmulTests {
    static let tokenCounts = [1, 2, 3, 5, 8, 13]
    static let threadCounts = [1, 2, 3]

    /// Columns for a type: a few blocks, and an odd count for element-wise types.
    static func columnChoices(_ t: GGMLType) -> [Int] {
        switch t.blockSize {
        case 1: return [37, 200]
        case 32: return [96, 320]
        default: return [256, 768]
        }
    }

    struct Reference {
        /// Float result from dequantized weights and unquantized activations.
        var value: [Float]
        /// Bound on the activation-quantization error for each output.
        var quantTolerance: [Float]
        /// Σ|w·x| for each output (scale for float-ordering tolerances).
        var magnitude: [Float]
    }

    static func reference(_ w: WeightMatrix, _ x: [Float], nTokens: Int) -> Reference {
        let rows = w.rows, cols = w.cols, ab = activationBlock(w.type)
        var dq = [Float](repeating: 0, count: cols)
        var ref = Reference(value: .init(repeating: 0, count: rows * nTokens),
                            quantTolerance: .init(repeating: 0, count: rows * nTokens),
                            magnitude: .init(repeating: 0, count: rows * nTokens))
        for r in 0..<rows {
            dq.withUnsafeMutableBufferPointer { dequantizeRow(w, row: r, into: $0.baseAddress!) }
            for t in 0..<nTokens {
                var s: Double = 0, mag: Double = 0, tol: Double = 0
                for c in 0..<cols {
                    let xv = Double(x[t * cols + c]), wv = Double(dq[c])
                    s += wv * xv
                    mag += abs(wv * xv)
                }
                if ab > 1 {
                    for b in 0..<cols / ab {
                        var amax: Double = 0, wsum: Double = 0
                        for c in b * ab..<(b + 1) * ab {
                            amax = max(amax, Double(abs(x[t * cols + c])))
                            wsum += Double(abs(dq[c]))
                        }
                        tol += wsum * amax / 127 * 0.5
                        // 32-element activation blocks carry an F16 scale (as llama.cpp's Q8_0):
                        // its rounding moves the block's sum by at most 2^-11 · 127 · d · Σ|w|.
                        if ab == 32 { tol += wsum * amax * 0x1p-11 }
                    }
                }
                ref.value[t * rows + r] = Float(s)
                ref.magnitude[t * rows + r] = Float(mag)
                ref.quantTolerance[t * rows + r] = Float(tol * 1.02 + mag * 1e-5) + 1e-6
            }
        }
        return ref
    }

    static func run(_ w: WeightMatrix, _ x: [Float], nTokens: Int, pool: ThreadPool, level: SIMDLevel?) -> [Float] {
        var out = [Float](repeating: .nan, count: w.rows * nTokens)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                if let level {
                    matmul(w, xp.baseAddress!, nTokens: nTokens, op.baseAddress!, pool: pool, level: level)
                } else {
                    matmul(w, xp.baseAddress!, nTokens: nTokens, op.baseAddress!, pool: pool)
                }
            }
        }
        return out
    }

    /// Every SIMD level equals the scalar path tightly, and the scalar path equals the float
    /// reference within the activation-quantization bound, for several token counts, odd
    /// row counts and thread counts.
    @Test(arguments: typesUnderTest)
    func levelsAgreeWithScalarAndReference(_ type: GGMLType) throws {
        var rng = SplitMix(seed: 0xC0FFEE &+ UInt64(type.rawValue))
        let pools = Self.threadCounts.map { ThreadPool(threads: $0) }
        for (shapeIndex, cols) in Self.columnChoices(type).enumerated() {
            let rows = shapeIndex == 0 ? 7 : 131
            let m = try OwnedMatrix(type: type, rows: rows, cols: cols, rng: &rng)
            let x = randomActivations(cols * Self.tokenCounts.max()!, rng: &rng)
            for n in Self.tokenCounts {
                let ref = Self.reference(m.matrix, x, nTokens: n)
                let scalar = Self.run(m.matrix, x, nTokens: n, pool: pools[0], level: .scalar)
                var worst: Float = 0
                for i in scalar.indices {
                    let err = abs(scalar[i] - ref.value[i])
                    worst = max(worst, err / ref.quantTolerance[i])
                    if !(err <= ref.quantTolerance[i]) {
                        Issue.record("\(type) \(rows)x\(cols) n=\(n) out[\(i)]: scalar \(scalar[i]) vs reference \(ref.value[i]) (tolerance \(ref.quantTolerance[i]))")
                        break
                    }
                }
                for level in SIMDLevel.available {
                    for pool in pools {
                        let got = Self.run(m.matrix, x, nTokens: n, pool: pool, level: level)
                        for i in got.indices {
                            let tol = ref.magnitude[i] * 2e-5 + 1e-6
                            if !(abs(got[i] - scalar[i]) <= tol) {
                                Issue.record("\(type) \(level) threads=\(pool.threadCount) \(rows)x\(cols) n=\(n) out[\(i)]: \(got[i]) vs scalar \(scalar[i])")
                                break
                            }
                        }
                    }
                }
            }
        }
    }

    /// The default-level entry point is the active level's kernel.
    @Test func defaultLevelIsActiveLevel() throws {
        var rng = SplitMix(seed: 42)
        let pool = ThreadPool(threads: 2)
        let m = try OwnedMatrix(type: .q4_K, rows: 45, cols: 512, rng: &rng)
        let x = randomActivations(512 * 3, rng: &rng)
        let a = Self.run(m.matrix, x, nTokens: 3, pool: pool, level: nil)
        let b = Self.run(m.matrix, x, nTokens: 3, pool: pool, level: SIMDLevel.active)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(SIMDLevel.available.contains(SIMDLevel.active))
    }

    /// Many tokens (parallel activation quantization, a full token tile plus a partial one) match the
    /// token-at-a-time results exactly.
    @Test(arguments: [GGMLType.q8_0, .q5_0, .q4_K, .q6_K, .f32])
    func batchEqualsOneTokenAtATime(_ type: GGMLType) throws {
        var rng = SplitMix(seed: 7 &+ UInt64(type.rawValue))
        let pool = ThreadPool(threads: 3)
        let cols = type.blockSize == 32 ? 128 : 256
        let m = try OwnedMatrix(type: type, rows: 67, cols: cols, rng: &rng)
        let n = 13
        let x = randomActivations(cols * n, rng: &rng)
        for level in SIMDLevel.available {
            let batch = Self.run(m.matrix, x, nTokens: n, pool: pool, level: level)
            for t in 0..<n {
                let one = Self.run(m.matrix, Array(x[t * cols..<(t + 1) * cols]), nTokens: 1, pool: pool, level: level)
                let slice = Array(batch[t * 67..<(t + 1) * 67])
                // Float kernels may group tokens differently; integer ones are exact per token.
                for i in 0..<67 {
                    #expect(abs(slice[i] - one[i]) <= 1e-5 * (abs(one[i]) + 1), "\(type) \(level) t=\(t) row \(i)")
                }
            }
        }
    }

    /// A zero-token call writes nothing; a large matrix splits across all workers.
    @Test func edgeCases() throws {
        var rng = SplitMix(seed: 99)
        let pool = ThreadPool(threads: 2)
        let m = try OwnedMatrix(type: .q8_0, rows: 5, cols: 64, rng: &rng)
        var out: [Float] = [1, 2]
        let x = randomActivations(64, rng: &rng)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { matmul(m.matrix, xp.baseAddress!, nTokens: 0, $0.baseAddress!, pool: pool) }
        }
        #expect(out == [1, 2])
    }

    /// matmul may be called from inside a parallelFor body of the same pool (runs serially there).
    @Test func nestedMatmulInsideParallelFor() throws {
        var rng = SplitMix(seed: 5)
        let pool = ThreadPool(threads: 2)
        let m = try OwnedMatrix(type: .q6_K, rows: 19, cols: 256, rng: &rng)
        let x = randomActivations(256, rng: &rng)
        let expected = Self.run(m.matrix, x, nTokens: 1, pool: pool, level: nil)
        let results = UnsafeMutablePointer<Float>.allocate(capacity: 4 * 19)
        defer { results.deallocate() }
        x.withUnsafeBufferPointer { xp in
            pool.parallelFor(4) { k in
                matmul(m.matrix, xp.baseAddress!, nTokens: 1, results + 19 * k, pool: pool)
            }
        }
        for k in 0..<4 {
            #expect(Array(UnsafeBufferPointer(start: results + 19 * k, count: 19)).map(\.bitPattern) == expected.map(\.bitPattern))
        }
    }
}
