import Engine
import Foundation
import Grammar
import Testing

/// The constrained draw's distribution, against the exact one: with logits over a 6-token
/// vocabulary and a grammar that allows some of the tokens, the frequency of each token over many
/// seeded draws matches softmax(logits / T) restricted to the allowed tokens (chi-square at
/// p = 0.001), with and without truncation; greedy picks the best allowed token.
struct ConstrainedSamplingTests {
    static let pieces = ["a", "b", "ab", "c", "ba", ""]
    static let logits: [Float] = [2.0, 1.0, 0.5, 3.0, -0.5, 1.5]

    /// The grammar `"a!" | "ab!" | "ba!"`: tokens a, b, ab, ba may come first; c never.
    static func matcher() throws -> GrammarMatcher {
        var b = GrammarBuilder()
        let root = try b.add("root", [GrammarBuilder.literal("a!"), GrammarBuilder.literal("ab!"), GrammarBuilder.literal("ba!")])
        return GrammarMatcher(try b.build(root: root))
    }

    static let vocab = TokenVocabulary(pieces: pieces.map { Array($0.utf8) }, endOfGeneration: [5])

    func draw(_ params: SamplingParams, n: Int) throws -> [Int] {
        let m = try Self.matcher()
        var sampler = Sampler(params)
        var counts = [Int](repeating: 0, count: Self.pieces.count)
        var seconds = 0.0
        for _ in 0..<n {
            var l = Self.logits
            let t = try #require(sampler.sample(&l, history: [], matcher: m, vocabulary: Self.vocab, maskSeconds: &seconds))
            counts[Int(t)] += 1
        }
        return counts
    }

    func expectMatches(_ counts: [Int], _ probs: [Double]) {
        let n = Double(counts.reduce(0, +))
        var chi = 0.0
        var cells = 0
        for (c, p) in zip(counts, probs) {
            if p == 0 { #expect(c == 0, "a refused token was drawn: \(counts)"); continue }
            chi += pow(Double(c) - n * p, 2) / (n * p)
            cells += 1
        }
        // Critical values at p = 0.001 for 1 and 2 degrees of freedom.
        let critical: Double = [10.83, 13.82, 16.27][max(0, min(2, cells - 2))]
        #expect(chi < critical, "chi-square \(chi) for \(counts) vs \(probs)")
    }

    @Test func temperatureOnlyIsTheRestrictedSoftmax() throws {
        var p = SamplingParams()
        p.temperature = 0.7
        p.seed = 11
        let allowed: Set<Int> = [0, 1, 2, 4]
        let w = Self.logits.enumerated().map { allowed.contains($0.offset) ? exp(Double($0.element) / 0.7) : 0 }
        let z = w.reduce(0, +)
        expectMatches(try draw(p, n: 20_000), w.map { $0 / z })
    }

    /// top-k 2 applies to the allowed tokens (a and b), not to the whole vocabulary (c and a).
    @Test func truncationAppliesToTheAllowedTokens() throws {
        var p = SamplingParams()
        p.temperature = 1.0
        p.topK = 2
        p.seed = 5
        let w = [exp(2.0), exp(1.0), 0, 0, 0, 0]
        let z = w.reduce(0, +)
        expectMatches(try draw(p, n: 20_000), w.map { $0 / z })
    }

    @Test func greedyIsTheBestAllowed() throws {
        let counts = try draw(.greedy, n: 10)
        #expect(counts == [10, 0, 0, 0, 0, 0])
    }
}
