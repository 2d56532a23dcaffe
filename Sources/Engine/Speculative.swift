import Core
import Foundation

// MARK: - Configuration

/// Speculative decoding in the engine loop (`SchedulerConfig.speculative`): each decoding
/// sequence may feed its last token plus up to `k` drafted tokens in one forward pass, with logits
/// for every one of those positions, and keep the drafts the target model agrees with.
public struct SpeculativeConfig: Sendable {
    /// Where drafts come from.
    public enum Drafter: Sendable {
        /// Prompt lookup over the sequence's own tokens (`NGramDrafter`).
        case ngram(NGramDrafter)
        /// Any function of (the sequence's tokens, the most drafts wanted) — tests and experiments;
        /// its drafts are verified exactly like n-gram ones.
        case custom(@Sendable (_ tokens: [Int32], _ k: Int) -> [Int32])
    }

    /// Most draft tokens per sequence and step (the adaptive k of each sequence stays at or below it).
    public var k: Int
    public var drafter: Drafter

    public init(k: Int = SpeculativeSyntax.defaultK, drafter: Drafter = .ngram(NGramDrafter())) {
        self.k = max(1, k)
        self.drafter = drafter
    }

    /// The engine setting for a spec's / flag's method and k: nil for `off`; `ngram` with k
    /// checked; `draft` refused (not available yet).
    public static func make(method: SpeculativeMethod, k: Int?) throws(SpeculativeSettingError) -> SpeculativeConfig? {
        let k = try SpeculativeSyntax.k(k ?? SpeculativeSyntax.defaultK)
        switch method {
        case .off: return nil
        case .ngram: return SpeculativeConfig(k: k)
        case .draft: throw .draftUnavailable
        }
    }

    func propose(_ tokens: [Int32], max k: Int) -> [Int32] {
        guard k > 0 else { return [] }
        switch drafter {
        case .ngram(let d): return d.draft(tokens, max: k)
        case .custom(let f): return Array(f(tokens, k).prefix(k))
        }
    }
}

// MARK: - Prompt lookup

/// Prompt-lookup drafting: find the most recent earlier occurrence of the sequence's last `n`
/// tokens (longest `n` first, from `maxN` down to `minN`) and propose the tokens that followed it.
/// A code-editing answer that copies most of its prompt finds long matches; prose rarely does,
/// and then nothing is drafted at all.
public struct NGramDrafter: Sendable, Equatable {
    public var minN: Int
    public var maxN: Int

    public init(minN: Int = 2, maxN: Int = 4) {
        self.minN = max(1, minN)
        self.maxN = max(self.minN, maxN)
    }

    /// Up to `k` tokens that followed the most recent earlier occurrence of the longest suffix
    /// of `tokens` (between `minN` and `maxN` tokens long) found earlier in `tokens`; empty when
    /// there is none. Among matches of the same length the most recent wins.
    public func draft(_ tokens: [Int32], max k: Int) -> [Int32] {
        let len = tokens.count
        guard k > 0, len > minN else { return [] }
        let top = min(maxN, len - 1)
        guard top >= minN else { return [] }
        return tokens.withUnsafeBufferPointer { t -> [Int32] in
            // Candidate ends e (exclusive) of an earlier occurrence: e < len, so something follows it.
            var bestLen = 0, bestEnd = -1
            var e = len - 1
            while e >= minN {
                // Length of the common suffix of t[..<e] and t[..<len], up to `top`.
                var m = 0
                while m < top, t[e - 1 - m] == t[len - 1 - m] {
                    m += 1
                    if e - 1 - m < 0 { break }
                }
                if m >= minN, m > bestLen {
                    bestLen = m
                    bestEnd = e
                    if m == top { break }
                }
                e -= 1
            }
            guard bestEnd >= 0 else { return [] }
            return Array(t[bestEnd..<min(len, bestEnd + k)])
        }
    }
}

// MARK: - Adaptive k

/// One sequence's drafting state: its current k (at most the configured one), halved after a
/// fully rejected draft and doubled after a fully accepted one; after repeated full rejections at
/// k = 1 drafting pauses for a growing number of steps, so a workload whose drafts fail (prose)
/// pays next to nothing.
struct SpeculationState {
    var k: Int
    let maxK: Int
    /// Steps left without drafting.
    var pause = 0
    /// Consecutive fully rejected drafts.
    var misses = 0
    /// Draft tokens verified, and accepted.
    var drafted = 0
    var accepted = 0

    init(maxK: Int) {
        self.maxK = max(1, maxK)
        k = self.maxK
    }

    /// The k for this step (0: do not draft now; counts a paused step).
    mutating func next() -> Int {
        if pause > 0 { pause -= 1; return 0 }
        return k
    }

    /// After a verification of `proposed` drafts of which `kept` were accepted.
    mutating func record(proposed: Int, kept: Int) {
        guard proposed > 0 else { return }
        drafted += proposed
        accepted += kept
        if kept == proposed {
            misses = 0
            k = min(maxK, k * 2)
        } else if kept == 0 {
            misses += 1
            if k > 1 { k = max(1, k / 2) } else { pause = min(64, 1 << min(misses, 6)) }
        } else {
            misses = 0
            k = max(1, min(maxK, kept + 1))
        }
    }
}

// MARK: - Verification

extension Sampler {
    /// Decides one drafted position with the standard speculative-sampling rule for a point-mass
    /// draft: with p the exact distribution `sample(_:history:)` would draw from here (penalties,
    /// temperature, top-k, top-p, min-p), the draft `d` is accepted with probability p(d);
    /// otherwise the token is drawn from p with `d` removed, renormalised. The token that comes out
    /// is distributed exactly as p. Greedy: the argmax, accepted when it is the draft — the same
    /// token `sample` gives, bit for bit. `logits` may be modified.
    public mutating func verify(_ logits: inout [Float], history: [Int32], draft: Int32) -> (token: Int32, accepted: Bool) {
        let p = params
        if p.temperature <= 0 || p.topK == 1 {
            let t = sample(&logits, history: history)
            return (t, t == draft)
        }
        applyPenalties(&logits, history: history)
        let inv = 1 / p.temperature
        let mx = Self.maximum(logits)
        guard mx.isFinite else {
            let t = Self.argmax(logits)
            return (t, t == draft)
        }
        var ids: [Int32] = []          // empty: the whole vocabulary, index = id
        var weights: [Float]
        if p.topK == 0 && p.topP >= 1 && p.minP <= 0 {
            // The weights of `drawFromWholeVocabulary`: e^max((l − max)/T, −87).
            weights = logits.map { Foundation.exp(Swift.max(($0 - mx) * inv, -87)) }
        } else {
            let (cand, probs) = truncatedCandidates(logits, max: mx, inv: inv)
            if cand.isEmpty {
                let t = Self.argmax(logits)
                return (t, t == draft)
            }
            ids = cand.prefix(probs.count).map { $0.id }
            weights = probs
        }
        var total = 0.0
        for w in weights { total += Double(w) }
        var pd = 0.0
        if ids.isEmpty {
            if draft >= 0, Int(draft) < weights.count { pd = Double(weights[Int(draft)]) }
        } else if let i = ids.firstIndex(of: draft) {
            pd = Double(weights[i])
        }
        if pd > 0, Double(rng.nextUnit()) * total < pd { return (draft, true) }
        // Rejected: draw from p without the draft.
        let rest = total - pd
        guard rest > 0 else { return (draft, true) }
        var r = Double(rng.nextUnit()) * rest
        var last: Int32 = draft
        for (i, w) in weights.enumerated() where w > 0 {
            let id = ids.isEmpty ? Int32(i) : ids[i]
            if id == draft { continue }
            last = id
            r -= Double(w)
            if r < 0 { return (id, false) }
        }
        return (last, last == draft)
    }
}
