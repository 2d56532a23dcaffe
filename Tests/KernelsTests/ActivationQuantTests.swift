import GGUF
import Kernels
import Testing

/// The 8-bit activation blocks: every SIMD level writes the scalar path's bytes, and those bytes
/// follow llama.cpp's rules, recomputed here independently (Swift's Float16 for the F16-rounded
/// Q8_0 scale, `rounded(.toNearestOrEven)` for the quants).
@Suite struct ActivationQuantTests {
    /// Inputs with edge cases: an all-zero block, exact .5 ties after scaling, a block whose
    /// extreme is positive and one whose extreme is negative, tiny (subnormal-scale) values.
    static func inputs(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        var x = randomActivations(count, rng: &rng)
        for i in 0..<32 { x[i] = 0 }
        // amax = 127 → scale 1: halves land exactly on ties.
        x[32] = 127
        for i in 33..<64 { x[i] = Float(i - 48) + 0.5 }
        x[64] = -3e-6
        for i in 65..<96 { x[i] = Float(i % 7) * 1e-7 }
        return x
    }

    @Test(arguments: [GGMLType.q8_0, .q5_0, .q4_K])
    func levelsWriteTheSameBytes(_ type: GGMLType) {
        let x = Self.inputs(type.blockSize == 32 ? 32 * 70 : 256 * 6, seed: 42)
        let scalar = quantizeActivations(x, for: type, level: .scalar)
        #expect(!scalar.isEmpty)
        for level in SIMDLevel.available where level != .scalar {
            #expect(quantizeActivations(x, for: type, level: level) == scalar, "level \(level)")
        }
    }

    @Test func q8_0RuleRecomputedIndependently() {
        let x = Self.inputs(32 * 40, seed: 7)
        let bytes = quantizeActivations(x, for: .q8_0)
        let nb = x.count / 32
        #expect(bytes.count == nb * 40)
        bytes.withUnsafeBytes { raw in
            for b in 0..<nb {
                let block = x[(32 * b)..<(32 * b + 32)]
                let amax = block.map { abs($0) }.max() ?? 0
                let id: Float = amax != 0 ? 127 / amax : 0
                let d = raw.load(fromByteOffset: 4 * b, as: Float.self)
                #expect(d == Float(Float16(amax / 127)), "block \(b) scale")
                var sum: Int32 = 0
                for (j, v) in block.enumerated() {
                    let q = Int8(max(-127, min(127, (v * id).rounded(.toNearestOrEven))))
                    let got = raw.load(fromByteOffset: 8 * nb + 32 * b + j, as: Int8.self)
                    #expect(got == q, "block \(b) value \(j)")
                    sum += Int32(q)
                }
                #expect(raw.load(fromByteOffset: 4 * nb + 4 * b, as: Int32.self) == sum)
            }
        }
    }

    @Test func q8_KRuleRecomputedIndependently() {
        let x = Self.inputs(256 * 4, seed: 9)
        let bytes = quantizeActivations(x, for: .q6_K)
        #expect(bytes.count == 4 * 292)
        bytes.withUnsafeBytes { raw in
            for b in 0..<4 {
                let base = 292 * b
                let block = x[(256 * b)..<(256 * b + 256)]
                let amax = block.map { abs($0) }.max() ?? 0
                let id: Float = amax != 0 ? 127 / amax : 0
                #expect(raw.load(fromByteOffset: base, as: Float.self) == (amax != 0 ? 1 / id : 0))
                for g in 0..<16 {
                    var sum = 0
                    for j in (16 * g)..<(16 * g + 16) {
                        let q = Int8(max(-127, min(127, (block[block.startIndex + j] * id).rounded(.toNearestOrEven))))
                        #expect(raw.load(fromByteOffset: base + 4 + j, as: Int8.self) == q)
                        sum += Int(q)
                    }
                    #expect(Int(raw.load(fromByteOffset: base + 260 + 2 * g, as: Int16.self)) == sum)
                }
            }
        }
    }

    @Test func floatTypesAndPartialBlocksGiveNothing() {
        #expect(quantizeActivations([1, 2, 3], for: .f32).isEmpty)
        #expect(quantizeActivations([Float](repeating: 1, count: 33), for: .q8_0).isEmpty)
    }
}
