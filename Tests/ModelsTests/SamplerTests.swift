import Engine
import Foundation
import Testing

@Suite struct SamplerTests {
    func params(_ f: (inout SamplingParams) -> Void) -> SamplingParams {
        var p = SamplingParams()
        p.seed = 42
        f(&p)
        return p
    }

    @Test func greedyIsArgmax() {
        var s = Sampler(.greedy)
        var l: [Float] = [0.1, 3, -2, 2.9]
        #expect(s.sample(&l) == 1)
    }

    @Test func frequenciesFollowSoftmax() {
        // logits = log(p): sampling at temperature 1 must reproduce p.
        let p: [Float] = [0.5, 0.3, 0.15, 0.05]
        var s = Sampler(params { $0.temperature = 1; $0.topK = 0; $0.topP = 1; $0.minP = 0 })
        var counts = [Int](repeating: 0, count: 4)
        let n = 40000
        for _ in 0..<n {
            var l = p.map { Foundation.log($0) }
            counts[Int(s.sample(&l))] += 1
        }
        for i in 0..<4 {
            #expect(abs(Float(counts[i]) / Float(n) - p[i]) < 0.01, "token \(i): \(counts[i])")
        }
    }

    /// A vocabulary of many blocks (the vectorised whole-vocabulary path, a partial last block):
    /// the frequencies of groups of tokens follow the softmax computed in Double, and a token whose
    /// weight underflows is never drawn.
    @Test func wholeVocabularyFrequenciesFollowSoftmax() {
        let vocab = 1003
        var rng = Xoshiro256(seed: 9)
        var logits = (0..<vocab).map { _ in Float(rng.nextUnit() * 6 - 3) }
        logits[vocab - 1] = 4      // the largest, in the partial last block
        logits[500] = -1e30        // weight 0
        let temperature: Float = 0.7
        let w = logits.map { Foundation.exp(Double($0 - 4) / Double(temperature)) }
        let z = w.reduce(0, +)
        var s = Sampler(params { $0.temperature = temperature; $0.topK = 0; $0.topP = 1; $0.minP = 0 })
        let groups = 10, n = 200_000
        var counts = [Int](repeating: 0, count: groups)
        var last = 0
        for _ in 0..<n {
            var l = logits
            let t = Int(s.sample(&l))
            #expect(t != 500)
            if t == vocab - 1 { last += 1 }
            counts[t * groups / vocab] += 1
        }
        for g in 0..<groups {
            let lo = (g * vocab + groups - 1) / groups, hi = ((g + 1) * vocab + groups - 1) / groups
            let want = w[lo..<hi].reduce(0, +) / z
            // ±5 standard deviations of a binomial frequency
            let sd = (want * (1 - want) / Double(n)).squareRoot()
            #expect(abs(Double(counts[g]) / Double(n) - want) <= 5 * sd + 1e-4, "group \(g): \(counts[g]) of \(n), want \(want)")
        }
        let wantLast = w[vocab - 1] / z
        #expect(abs(Double(last) / Double(n) - wantLast) <= 5 * (wantLast * (1 - wantLast) / Double(n)).squareRoot())
    }

    @Test func temperatureSharpens() {
        // At T = 0.5 probabilities become p^2 / sum(p^2).
        let p: [Float] = [0.6, 0.4]
        var s = Sampler(params { $0.temperature = 0.5; $0.topK = 0; $0.topP = 1; $0.minP = 0 })
        var first = 0
        let n = 40000
        for _ in 0..<n {
            var l = p.map { Foundation.log($0) }
            if s.sample(&l) == 0 { first += 1 }
        }
        let expected: Float = 0.36 / (0.36 + 0.16)
        #expect(abs(Float(first) / Float(n) - expected) < 0.01)
    }

    @Test func sameSeedSameTokens() {
        let logits: [Float] = (0..<1000).map { Float(($0 * 7919) % 101) / 10 }
        var a = Sampler(params { $0.temperature = 1.2 }), b = Sampler(params { $0.temperature = 1.2 })
        var c = Sampler(params { $0.temperature = 1.2; $0.seed = 43 })
        var sa: [Int32] = [], sb: [Int32] = [], sc: [Int32] = []
        for _ in 0..<50 {
            var l1 = logits, l2 = logits, l3 = logits
            sa.append(a.sample(&l1)); sb.append(b.sample(&l2)); sc.append(c.sample(&l3))
        }
        #expect(sa == sb)
        #expect(sa != sc)
    }

    @Test func topKAndTopPAndMinPRestrictCandidates() {
        let logits: [Float] = [5, 4.9, 4.8, 0, 0, 0]
        var k = Sampler(params { $0.temperature = 5; $0.topK = 2; $0.topP = 1; $0.minP = 0 })
        var p = Sampler(params { $0.temperature = 1; $0.topK = 0; $0.topP = 0.3; $0.minP = 0 })
        var m = Sampler(params { $0.temperature = 5; $0.topK = 0; $0.topP = 1; $0.minP = 0.9 })
        for _ in 0..<500 {
            var l = logits
            #expect(k.sample(&l) < 2)
            l = logits
            #expect(p.sample(&l) == 0) // the top token alone holds > 30% of the mass
            l = logits
            // min-p 0.9 at T=5 keeps tokens with p >= 0.9 p_max: ids 0, 1, 2 (ratios 0.98, 0.96)
            #expect(m.sample(&l) < 3)
        }
    }

    @Test func penaltiesChangeTheChoice() {
        var s = Sampler(params { $0.temperature = 0; $0.repetitionPenalty = 2 })
        var l: [Float] = [2, 1.5, -1]
        // token 0 was seen: 2 / 2 = 1 < 1.5
        #expect(s.sample(&l, history: [0]) == 1)
        var f = Sampler(params { $0.temperature = 0; $0.frequencyPenalty = 0.3 })
        l = [2, 1.5]
        // seen twice: 2 - 0.6 = 1.4 < 1.5
        #expect(f.sample(&l, history: [0, 0]) == 1)
        var pr = Sampler(params { $0.temperature = 0; $0.presencePenalty = 0.4 })
        l = [2, 1.7]
        #expect(pr.sample(&l, history: [0, 0, 0]) == 1)
        // Negative logits get more negative under the repetition penalty.
        var r = Sampler(params { $0.temperature = 0; $0.repetitionPenalty = 2 })
        l = [-1, -1.5]
        #expect(r.sample(&l, history: [0]) == 1)
    }
}
