import Foundation
import Kernels
import Testing

/// GeGLU with the tanh GELU against a double-precision oracle, and level agreement.
@Suite struct ActivationTests {
    /// gelu_tanh(x) = 0.5·x·(1 + tanh(u)) evaluated in double (the tanh form directly, away from
    /// its cancellation region, and the algebraically equal x / (1 + e^(-2u)) beyond it).
    static func oracle(_ xf: Float) -> Double {
        let x = Double(xf), u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        return x > -3 ? 0.5 * x * (1 + Foundation.tanh(u)) : x / (1 + Foundation.exp(-2 * u))
    }

    @Test func gegluMatchesDoubleOracleAndLevelsAgree() {
        var rng = SplitMix(seed: 5)
        var g: [Float] = [0, -0, 1, -1, 3, -3, 10, -10, 50, -50, 1e-7, -1e-7, 1e30, -1e30, 88, -88]
        for _ in 0..<30_000 { g.append(Float.random(in: -8...8, using: &rng)) }
        for _ in 0..<2_000 { g.append(Float.random(in: -1e4...1e4, using: &rng)) }
        let u = g.indices.map { _ in Float.random(in: -2...2, using: &rng) }
        var scalar: [Float] = []
        for level in SIMDLevel.available {
            var out = [Float](repeating: .nan, count: g.count)
            g.withUnsafeBufferPointer { gp in
                u.withUnsafeBufferPointer { up in
                    out.withUnsafeMutableBufferPointer { op in
                        gegluTanh(gp.baseAddress!, up.baseAddress!, into: op.baseAddress!, count: g.count, level: level)
                    }
                }
            }
            if level == .scalar {
                scalar = out
                var worst = 0.0
                for i in g.indices {
                    let want = Self.oracle(g[i]) * Double(u[i])
                    // A few float ulps relative, plus the float rounding of the argument of exp
                    // (a few ulps of 2u, relative) for strongly negative x, plus denormal-level absolute.
                    let x = Double(g[i]), arg = abs(2 * 0.7978845608028654 * (x + 0.044715 * x * x * x))
                    let tol = abs(want) * (1e-6 + arg * 4e-7) + 1e-37
                    worst = max(worst, abs(Double(out[i]) - want) / tol)
                    #expect(abs(Double(out[i]) - want) <= tol, "x=\(g[i]) u=\(u[i]): \(out[i]) vs \(want)")
                }
                #expect(worst <= 1)
            } else {
                #expect(out.map(\.bitPattern) == scalar.map(\.bitPattern), "\(level) differs from scalar")
            }
        }
        // In place (out aliases g) gives the same values.
        var inPlace = g
        inPlace.withUnsafeMutableBufferPointer { gp in
            u.withUnsafeBufferPointer { up in gegluTanh(gp.baseAddress!, up.baseAddress!, into: gp.baseAddress!, count: g.count) }
        }
        #expect(inPlace.map(\.bitPattern) == scalar.map(\.bitPattern))
    }
}
