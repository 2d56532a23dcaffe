import Foundation
import GGUF
import Kernels
import Testing

/// The row-interleaved (packed) copies of Q8_0 / Q4_0 / Q5_0 weights: at every SIMD level the
/// packed kernels equal the scalar kernel on the original blocks (which MatmulTests ties to a
/// float reference), including rows past the last 8-row group, several token tiles and threads.
@Suite struct PackedMatmulTests {
    @Test(arguments: [GGMLType.q8_0, .q4_0, .q5_0])
    func packedEqualsScalarOnOriginal(_ type: GGMLType) throws {
        var rng = SplitMix(seed: 0xBADC0DE &+ UInt64(type.rawValue))
        let pools = [1, 2, 3].map { ThreadPool(threads: $0) }
        for (rows, cols) in [(8, 32), (131, 96), (64, 320), (200, 64)] {
            let m = try OwnedMatrix(type: type, rows: rows, cols: cols, rng: &rng)
            let packed = m.matrix.withPackedCopy(pool: pools[1])
            #expect(packed.canPack && packed.packed != nil)
            #expect(packed.packed?.bytes == rows / 8 * 8 * m.matrix.rowBytes)
            let x = randomActivations(cols * 17, rng: &rng)
            for n in [1, 3, 8, 17] {
                let scalar = MatmulTests.run(m.matrix, x, nTokens: n, pool: pools[0], level: .scalar)
                // Magnitude scale for the float-ordering tolerance: Σ|w·x| per output.
                let ref = MatmulTests.reference(m.matrix, x, nTokens: n)
                for level in SIMDLevel.available {
                    for pool in pools {
                        let got = MatmulTests.run(packed, x, nTokens: n, pool: pool, level: level)
                        for i in got.indices {
                            let tol = ref.magnitude[i] * 2e-5 + 1e-6
                            if !(abs(got[i] - scalar[i]) <= tol) {
                                Issue.record("\(type) \(level) threads=\(pool.threadCount) \(rows)x\(cols) n=\(n) out[\(i)]: packed \(got[i]) vs scalar \(scalar[i])")
                                break
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rows read back from the packed copy (embedding lookups of a tied output matrix) equal the
    /// original rows bit for bit, including rows past the last group.
    @Test(arguments: [GGMLType.q8_0, .q4_0, .q5_0])
    func rowsReadFromThePackedCopyEqualTheOriginal(_ type: GGMLType) throws {
        var rng = SplitMix(seed: 77 &+ UInt64(type.rawValue))
        let m = try OwnedMatrix(type: type, rows: 21, cols: 96, rng: &rng)
        let packed = m.matrix.withPackedCopy(pool: ThreadPool(threads: 2))
        var a = [Float](repeating: 0, count: 96), b = [Float](repeating: .nan, count: 96)
        for r in 0..<21 {
            a.withUnsafeMutableBufferPointer { dequantizeRow(m.matrix, row: r, into: $0.baseAddress!) }
            b.withUnsafeMutableBufferPointer { dequantizeRow(packed, row: r, into: $0.baseAddress!) }
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(type) row \(r)")
        }
    }

    @Test func typesAndShapesWithoutPacking() throws {
        var rng = SplitMix(seed: 3)
        let small = try OwnedMatrix(type: .q8_0, rows: 7, cols: 64, rng: &rng)
        #expect(!small.matrix.canPack)
        #expect(small.matrix.withPackedCopy(pool: ThreadPool(threads: 1)).packed == nil)
        let kq = try OwnedMatrix(type: .q4_K, rows: 16, cols: 256, rng: &rng)
        #expect(!kq.matrix.canPack)
        let f = try OwnedMatrix(type: .f32, rows: 16, cols: 32, rng: &rng)
        #expect(!f.matrix.canPack)
    }

    /// Packing in pieces reports progress up to every packed row, in order.
    @Test func progressCoversEveryGroup() throws {
        var rng = SplitMix(seed: 11)
        let m = try OwnedMatrix(type: .q5_0, rows: 4099, cols: 4096, rng: &rng)
        var seen: [Int] = []
        _ = m.matrix.withPackedCopy(pool: ThreadPool(threads: 2)) { seen.append($0) }
        #expect(seen.count > 1)
        #expect(seen == seen.sorted())
        #expect(seen.last == 4096)
    }
}
