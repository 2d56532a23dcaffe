import Foundation
import Kernels
import Testing

/// The half-precision KV helpers against independent oracles: Swift's `Float16` conversion
/// (IEEE nearest-even) for the rounding, double-precision sums for the two attention products,
/// and bit equality of every SIMD level with the scalar path.
@Suite struct HalfKVTests {
    static func halves(_ n: Int, rng: inout SplitMix) -> [UInt16] {
        (0..<n).map { _ in Float16(Float.random(in: -2...2, using: &rng)).bitPattern }
    }

    static func h2d(_ h: UInt16) -> Double { Double(Float(Float16(bitPattern: h))) }

    /// Every float class: normals, ties at the half rounding point, subnormal halves,
    /// overflow to infinity, zeros, infinities — equal to Float16(x) bit for bit at every level.
    @Test func conversionMatchesFloat16() {
        var rng = SplitMix(seed: 11)
        var xs: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 70000, -1e9, .infinity, -.infinity,
                           6.1035156e-05, 6.1e-05, 5.96e-08, 2.98e-08, 2.99e-08, 1e-10, -3e-06,
                           Float.leastNonzeroMagnitude, Float.greatestFiniteMagnitude]
        // Exact ties: a half value plus half its ulp, in the normal and subnormal ranges.
        for e in [-24, -20, -15, -14, -3, 0, 7, 14] {
            for m in [0, 1, 2, 3, 1021, 1022] {
                let h = Float(m + 1024) * Float(sign: .plus, exponent: e - 10, significand: 1)
                let ulp = Float(sign: .plus, exponent: max(e, -14) - 10, significand: 1)
                xs.append(h + ulp / 2)
                xs.append(-(h + ulp / 2))
            }
        }
        for _ in 0..<20_000 {
            xs.append(Float(bitPattern: UInt32.random(in: 0x3000_0000...0x4800_0000, using: &rng)) * (Bool.random(using: &rng) ? 1 : -1))
        }
        let want = xs.map { Float16($0).bitPattern }
        for level in SIMDLevel.available {
            var got = [UInt16](repeating: 0, count: xs.count)
            xs.withUnsafeBufferPointer { x in
                got.withUnsafeMutableBufferPointer { y in
                    convertToHalf(x.baseAddress!, y.baseAddress!, count: xs.count, level: level)
                }
            }
            let bad = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(bad == nil, "\(level): x=\(bad.map { xs[$0.offset] } ?? 0) got \(bad?.element.0 ?? 0) want \(bad?.element.1 ?? 0)")
        }
    }

    /// Scores q·k over strided half rows: within float rounding of the double-precision sum,
    /// and identical bits at every level; dims with and without a 16-lane tail.
    @Test(arguments: [256, 64, 37])
    func scoresMatchDoubleReference(_ dim: Int) {
        var rng = SplitMix(seed: UInt64(dim))
        let n = 19, stride = dim * 2 + 3
        let k = Self.halves(n * stride, rng: &rng)
        let q = (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) }
        var scalar: [Float] = []
        for level in SIMDLevel.available {
            var out = [Float](repeating: .nan, count: n)
            q.withUnsafeBufferPointer { qp in
                k.withUnsafeBufferPointer { kp in
                    out.withUnsafeMutableBufferPointer { op in
                        halfDotRows(qp.baseAddress!, kp.baseAddress! + 1, stride: stride, count: n, dim: dim,
                                    into: op.baseAddress!, level: level)
                    }
                }
            }
            if level == .scalar {
                scalar = out
                for j in 0..<n {
                    var s = 0.0, mag = 0.0
                    for i in 0..<dim {
                        let p = Double(q[i]) * Self.h2d(k[1 + j * stride + i])
                        s += p
                        mag += abs(p)
                    }
                    // float rounding bound: 16 striped lanes of dim/16 terms, then 8 lane sums
                    let bound = mag * Double(dim / 16 + dim % 16 + 10) * 0x1p-24
                    #expect(abs(Double(out[j]) - s) <= bound + 1e-12, "row \(j): \(out[j]) vs \(s)")
                }
            } else {
                #expect(out.map(\.bitPattern) == scalar.map(\.bitPattern), "\(level) differs from scalar")
            }
        }
    }

    /// out += Σ w[j]·v[j]: within float rounding of the double-precision sum, identical bits at
    /// every level; widths with 32-, 8- and 1-lane remainders.
    @Test(arguments: [256, 72, 13])
    func accumulateMatchesDoubleReference(_ dim: Int) {
        var rng = SplitMix(seed: 100 + UInt64(dim))
        let n = 23, stride = dim + 5
        let v = Self.halves(n * stride, rng: &rng)
        let w = (0..<n).map { _ in Float.random(in: 0...1, using: &rng) }
        let start = (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) }
        var scalar: [Float] = []
        for level in SIMDLevel.available {
            var out = start
            w.withUnsafeBufferPointer { wp in
                v.withUnsafeBufferPointer { vp in
                    out.withUnsafeMutableBufferPointer { op in
                        halfAccumulateRows(wp.baseAddress!, vp.baseAddress!, stride: stride, count: n, dim: dim,
                                           into: op.baseAddress!, level: level)
                    }
                }
            }
            if level == .scalar {
                scalar = out
                for i in 0..<dim {
                    var s = Double(start[i]), mag = abs(Double(start[i]))
                    for j in 0..<n {
                        let p = Double(w[j]) * Self.h2d(v[j * stride + i])
                        s += p
                        mag += abs(p)
                    }
                    // float rounding bound for n sequential products and sums
                    let bound = mag * Double(2 * n + 2) * 0x1p-24
                    #expect(abs(Double(out[i]) - s) <= bound + 1e-12, "lane \(i): \(out[i]) vs \(s)")
                }
            } else {
                #expect(out.map(\.bitPattern) == scalar.map(\.bitPattern), "\(level) differs from scalar")
            }
        }
    }
}
