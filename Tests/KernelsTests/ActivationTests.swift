import Foundation
import Kernels
import Testing

/// GeGLU through llama.cpp's half-precision GELU table, against an independent Swift evaluation
/// of the same rule (Swift's Float16 conversions, Foundation's tanh), a double-precision GELU, and
/// level agreement.
@Suite struct ActivationTests {
    /// The rule, written independently: 0 at or below -10, x at or above 10, else
    /// half(gelu(half(x))) with gelu computed in Float (the inner 1 + a·x·x fused).
    static func rule(_ x: Float) -> Float {
        if x <= -10 { return 0 }
        if x >= 10 { return x }
        let h = Float(Float16(x))
        let inner = Float(1).addingProduct(0.044715 * h, h)
        let t = Foundation.tanh(Float(0.79788456080286535587989211986876) * h * inner)
        return Float(Float16(0.5 * h * (1 + t)))
    }

    static func run(_ g: [Float], _ u: [Float], level: SIMDLevel?) -> [Float] {
        var out = [Float](repeating: .nan, count: g.count)
        g.withUnsafeBufferPointer { gp in
            u.withUnsafeBufferPointer { up in
                out.withUnsafeMutableBufferPointer { op in
                    gegluTable(gp.baseAddress!, up.baseAddress!, into: op.baseAddress!, count: g.count, level: level)
                }
            }
        }
        return out
    }

    @Test func tableRuleMatchesIndependentEvaluationAndLevelsAgree() {
        var rng = SplitMix(seed: 5)
        var g: [Float] = [0, -0, 1, -1, 3, -3, 9.99, -9.99, 10, -10, 10.001, -10.001, 50, -50, 1e-7, -1e-7,
                          6e-8, 1e30, -1e30, 65504, -65519]
        for _ in 0..<30_000 { g.append(Float.random(in: -12...12, using: &rng)) }
        for _ in 0..<2_000 { g.append(Float.random(in: -1e4...1e4, using: &rng)) }
        let u = g.indices.map { _ in Float.random(in: -2...2, using: &rng) }
        let scalar = Self.run(g, u, level: .scalar)
        for i in g.indices {
            let want = Self.rule(g[i]) * u[i]
            #expect(scalar[i].bitPattern == want.bitPattern, "x=\(g[i]) u=\(u[i]): \(scalar[i]) vs \(want)")
            // And the rule is GELU to half precision: within 2^-10 relative plus a half ulp near 0.
            let x = Double(g[i]), exact = 0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
            if abs(x) < 10 {
                #expect(abs(Double(Self.rule(g[i])) - exact) <= abs(exact) * 2e-3 + 1e-4, "x=\(x)")
            }
        }
        for level in SIMDLevel.available where level != .scalar {
            #expect(Self.run(g, u, level: level).map(\.bitPattern) == scalar.map(\.bitPattern), "\(level) differs from scalar")
        }
        // In place (out aliases g) gives the same values.
        var inPlace = g
        inPlace.withUnsafeMutableBufferPointer { gp in
            u.withUnsafeBufferPointer { up in gegluTable(gp.baseAddress!, up.baseAddress!, into: gp.baseAddress!, count: g.count) }
        }
        #expect(inPlace.map(\.bitPattern) == scalar.map(\.bitPattern))
    }
}
