import Core
import Foundation
import Grammar

/// Sampling parameters for one sequence. `temperature <= 0` means greedy (argmax).
public struct SamplingParams: Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topK: Int = 0            // 0: off
    public var topP: Float = 1          // 1: off
    public var minP: Float = 0          // 0: off
    public var repetitionPenalty: Float = 1
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// How many recent tokens the penalties look at (0: all).
    public var penaltyWindow: Int = 64
    public var seed: UInt64? = nil

    public init() {}

    public static var greedy: SamplingParams {
        var p = SamplingParams()
        p.temperature = 0
        return p
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast and reproducible for a seed.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Turns logits into the next token under `SamplingParams`.
public struct Sampler: Sendable {
    public let params: SamplingParams
    var rng: Xoshiro256

    public init(_ params: SamplingParams) {
        self.params = params
        rng = Xoshiro256(seed: params.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Applies repetition/presence/frequency penalties for the tokens in `history`.
    func applyPenalties(_ logits: inout [Float], history: [Int32]) {
        let p = params
        guard p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        let recent = p.penaltyWindow > 0 ? history.suffix(p.penaltyWindow) : history[...]
        var counts: [Int32: Int] = [:]
        for t in recent where t >= 0 && Int(t) < logits.count { counts[t, default: 0] += 1 }
        for (t, c) in counts {
            var l = logits[Int(t)]
            if p.repetitionPenalty != 1 { l = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty }
            l -= Float(c) * p.frequencyPenalty + p.presencePenalty
            logits[Int(t)] = l
        }
    }

    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        var bv = -Float.infinity
        for (i, v) in logits.enumerated() where v > bv { bv = v; best = i }
        return Int32(best)
    }

    /// The `k` candidates with the largest logits, in descending order (k < cand.count): one pass
    /// keeping a sorted buffer of k, so the cost is linear in the vocabulary for small k.
    static func largest(_ cand: [(id: Int32, logit: Float)], _ k: Int) -> [(id: Int32, logit: Float)] {
        var best = Array(cand.prefix(k))
        best.sort { $0.logit > $1.logit }
        for c in cand.dropFirst(k) where c.logit > best[k - 1].logit {
            var i = k - 1
            while i > 0, best[i - 1].logit < c.logit { best[i] = best[i - 1]; i -= 1 }
            best[i] = c
        }
        return best
    }

    /// Picks the next token. `logits` may be modified.
    public mutating func sample(_ logits: inout [Float], history: [Int32] = []) -> Int32 {
        applyPenalties(&logits, history: history)
        let p = params
        if p.temperature <= 0 || p.topK == 1 { return Self.argmax(logits) }
        let inv = 1 / p.temperature
        let mx = Self.maximum(logits)
        guard mx.isFinite else { return Self.argmax(logits) }
        if p.topK == 0 && p.topP >= 1 && p.minP <= 0 {
            return drawFromWholeVocabulary(&logits, max: mx, inv: inv)
        }
        let (cand, probs) = truncatedCandidates(logits, max: mx, inv: inv)
        if cand.isEmpty { return Self.argmax(logits) }
        let sum = probs.reduce(0, +)
        var r = rng.nextUnit() * sum
        for (i, q) in probs.enumerated() {
            r -= q
            if r < 0 { return cand[i].id }
        }
        return cand[probs.count - 1].id
    }

    /// The distribution `sample` draws from under top-k / top-p / min-p (penalties already
    /// applied): the kept candidates and their unnormalised weights (`probs[i]` is `cand[i]`'s;
    /// `cand` may be longer than `probs`, top-p cutting its tail). Empty when nothing is kept.
    /// One definition for the draw and for speculative verification (`verify`), so both see the
    /// same distribution.
    func truncatedCandidates(_ logits: [Float], max mx: Float, inv: Float) -> (cand: [(id: Int32, logit: Float)], probs: [Float]) {
        let p = params
        // Candidates whose probability relative to the best is above e^-25 (the rest carry less
        // than 1e-5 of the mass even for a 262k vocabulary) and, with min-p, at least min-p of the
        // best's. min-p keeps a prefix of the descending order, so filtering it first is the same as after top-k.
        let top = mx * inv
        var cand: [(id: Int32, logit: Float)] = []
        for (i, v) in logits.enumerated() where (v - mx) * inv > -25 {
            let s = v * inv
            if p.minP > 0, Foundation.exp(s - top) < p.minP { continue }
            cand.append((Int32(i), s))
        }
        if cand.isEmpty { return ([], []) }
        if p.topK > 0, cand.count > p.topK { cand = Self.largest(cand, p.topK) }
        // Only top-p needs the candidates in descending order; without it the draw samples
        // the same distribution in any order, so a full-vocabulary sort (the cost of a decode step
        // at temperature 1 with no top-k) is skipped.
        if p.topP < 1 { cand.sort { $0.logit > $1.logit } }
        var probs = cand.map { Foundation.exp($0.logit - top) }
        let sum = probs.reduce(0, +)
        if p.topP < 1 {
            var acc: Float = 0
            var keep = probs.count
            for (i, q) in probs.enumerated() {
                acc += q / sum
                if acc >= p.topP { keep = i + 1; break }
            }
            probs.removeSubrange(keep...)
        }
        return (cand, probs)
    }

    /// Plain temperature sampling over every token, in place: logits become e^((l − max)/T) in
    /// one vectorised pass that also sums blocks of 64, then a uniform draw is located through the
    /// block sums and within its block. Exact up to float rounding of the weights (~1e-7 relative).
    mutating func drawFromWholeVocabulary(_ logits: inout [Float], max mx: Float, inv: Float) -> Int32 {
        let n = logits.count
        let blocks = (n + 63) / 64
        return logits.withUnsafeMutableBufferPointer { lp -> Int32 in
            guard let base = lp.baseAddress else { return 0 }
            var blockSums = [Float](repeating: 0, count: blocks)
            var total: Float = 0
            blockSums.withUnsafeMutableBufferPointer { bp in
                let raw = UnsafeMutableRawPointer(base)
                let lo = SIMD8<Float>(repeating: -87)
                let scale = SIMD8<Float>(repeating: inv), top = SIMD8<Float>(repeating: mx)
                for b in 0..<blocks {
                    let start = b * 64, end = min(n, start + 64)
                    var acc = SIMD8<Float>(repeating: 0)
                    var i = start
                    while i + 8 <= end {
                        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                        var z = (v - top) * scale
                        z.replace(with: lo, where: z .< lo)
                        let e = Self.exp8(z)
                        raw.storeBytes(of: e, toByteOffset: i * 4, as: SIMD8<Float>.self)
                        acc += e
                        i += 8
                    }
                    var sum = acc.sum()
                    while i < end {
                        let e = Foundation.exp(Swift.max((base[i] - mx) * inv, -87))
                        base[i] = e
                        sum += e
                        i += 1
                    }
                    bp[b] = sum
                    total += sum
                }
            }
            var r = rng.nextUnit() * total
            var b = 0
            while b < blocks - 1, r >= blockSums[b] { r -= blockSums[b]; b += 1 }
            // Rounding can carry r past the last weighted block: fall back to one that has weight.
            while b > 0, blockSums[b] == 0 { b -= 1 }
            let start = b * 64, end = min(n, start + 64)
            var last = Int32(start)
            for i in start..<end where base[i] > 0 {
                last = Int32(i)
                r -= base[i]
                if r < 0 { return Int32(i) }
            }
            return last
        }
    }

    /// Largest element (vectorised); -inf for an empty array, NaN-free input assumed finite.
    static func maximum(_ v: [Float]) -> Float {
        v.withUnsafeBufferPointer { p -> Float in
            guard let base = p.baseAddress else { return -.infinity }
            let raw = UnsafeRawPointer(base)
            var m8 = SIMD8<Float>(repeating: -.infinity)
            var i = 0
            while i + 8 <= p.count {
                let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                m8.replace(with: v, where: v .> m8)
                i += 8
            }
            var m = m8.max()
            while i < p.count { m = Swift.max(m, base[i]); i += 1 }
            return m
        }
    }

    /// e^x for x in [-87, 88] (8 lanes, ~1e-7 relative): x = k·ln2 + r with |r| ≤ ln2/2, ln2 in two
    /// parts, a degree-7 Taylor polynomial for e^r, and 2^k put into the exponent bits. Built from
    /// adds, multiplies and integer lane operations only, so it vectorises without a target CPU.
    @inline(__always) static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let magic = SIMD8<Float>(repeating: 12_582_912) // 1.5·2^23: adding it rounds to an integer
        let t = x * 1.442_695_04 + magic
        let k = t - magic
        var r = x - k * 0.693_145_751_953_125
        r = r - k * 1.428_606_820_309_417_232_12e-6
        var p = SIMD8<Float>(repeating: 1.984_127e-4)
        p = p * r + 1.388_888_9e-3
        p = p * r + 8.333_333e-3
        p = p * r + 4.166_666_6e-2
        p = p * r + 0.166_666_67
        p = p * r + 0.5
        p = p * (r * r) + r + 1
        let ki = unsafeBitCast(t, to: SIMD8<UInt32>.self) &- 0x4B40_0000
        return unsafeBitCast(unsafeBitCast(p, to: SIMD8<UInt32>.self) &+ (ki &<< 23), to: SIMD8<Float>.self)
    }
}

extension Sampler {
    /// The next token under a grammar; nil when the grammar allows no token at all. The mask
    /// (computed once per grammar state, then cached; `maskSeconds` gets the time) is avoided
    /// where an exact shortcut exists:
    /// - greedy: the unconstrained argmax when the grammar allows it, else the best allowed token;
    /// - temperature only (no top-k, top-p or min-p): one draw from the whole distribution, kept
    ///   when allowed; else a draw from the masked distribution. Exact: an allowed x comes out with
    ///   p(x) + (1 − P(A))·p(x)/P(A) = p(x)/P(A);
    /// - with truncation, the mask first (top-k/top-p/min-p apply to the allowed tokens, as vLLM
    ///   orders its logits processors), then the draw.
    public mutating func sample(_ logits: inout [Float], history: [Int32], matcher m: GrammarMatcher,
                                vocabulary vocab: TokenVocabulary, maskSeconds: inout Double) -> Int32? {
        func timedMask() -> TokenMask {
            let t0 = ContinuousClock.now
            let mask = m.mask(vocab)
            maskSeconds += (ContinuousClock.now - t0).inSeconds
            return mask
        }
        let p = params
        if p.temperature <= 0 || p.topK == 1 {
            let t = sample(&logits, history: history)   // penalties applied in place, argmax
            if m.allows(t, in: vocab) { return t }
            let mask = timedMask()
            guard mask.allowedCount > 0 else { return nil }
            mask.apply(to: &logits)
            return Self.argmax(logits)
        }
        if p.topK == 0 && p.topP >= 1 && p.minP <= 0 {
            var first = logits
            let t = sample(&first, history: history)
            if m.allows(t, in: vocab) { return t }
        }
        let mask = timedMask()
        guard mask.allowedCount > 0 else { return nil }
        mask.apply(to: &logits)
        let t = sample(&logits, history: history)
        // Refused tokens keep a weight of e^-87 in the vectorised draw; never let one through.
        return m.allows(t, in: vocab) ? t : Self.argmax(logits)
    }
}
