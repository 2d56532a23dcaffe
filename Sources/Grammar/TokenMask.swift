/// A tokenizer's vocabulary as bytes, prepared for grammar masks: every token's piece (what the
/// detokenizer appends for it), and the tokens sorted by piece with the length each shares with the
/// one before, so a mask walks the vocabulary like a trie (each shared prefix is matched once).
/// Immutable once built; build it once per tokenizer.
public struct TokenVocabulary: Sendable {
    public let pieces: [[UInt8]]
    /// Tokens that end generation: allowed exactly when the grammar is complete.
    public let endOfGeneration: Set<Int32>
    let order: [Int32]
    let shared: [Int32]
    let longest: Int

    /// `pieces[id]` is token id's text; an empty piece (control tokens) is never allowed.
    public init(pieces: [[UInt8]], endOfGeneration: Set<Int32>) {
        self.pieces = pieces
        self.endOfGeneration = endOfGeneration
        var ids = (0..<pieces.count).filter { !pieces[$0].isEmpty && !endOfGeneration.contains(Int32($0)) }
        ids.sort { pieces[$0].lexicographicallyPrecedes(pieces[$1]) }
        order = ids.map { Int32($0) }
        var lcp = [Int32](repeating: 0, count: ids.count)
        for k in 1..<max(1, ids.count) {
            let a = pieces[ids[k - 1]], b = pieces[ids[k]]
            var l = 0
            while l < a.count && l < b.count && a[l] == b[l] { l += 1 }
            lcp[k] = Int32(l)
        }
        shared = lcp
        longest = pieces.map(\.count).max() ?? 0
    }

    public var count: Int { pieces.count }
}

/// Which tokens a grammar allows next: one bit per token id.
public struct TokenMask: Sendable, Equatable {
    public let words: [UInt64]
    public let count: Int

    public func allows(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < count && words[Int(id) >> 6] & (1 << UInt64(id & 63)) != 0
    }

    public var allowedCount: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Sets every refused token's logit to -infinity (`logits.count` may exceed the vocabulary:
    /// padded logits are refused too).
    public func apply(to logits: inout [Float]) {
        logits.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count {
                if i >= count || words[i >> 6] & (1 << UInt64(i & 63)) == 0 { p[i] = -.infinity }
            }
        }
    }
}

extension GrammarMatcher {
    /// Whether token `id` may come next.
    public func allows(_ id: Int32, in vocab: TokenVocabulary) -> Bool {
        guard id >= 0, Int(id) < vocab.count else { return false }
        if vocab.endOfGeneration.contains(id) { return isAccepting }
        let piece = vocab.pieces[Int(id)]
        return !piece.isEmpty && accepts(piece)
    }

    /// Consumes token `id`'s bytes (an end-of-generation token consumes nothing); false, state
    /// unchanged, when the grammar refuses it.
    @discardableResult
    public mutating func accept(_ id: Int32, in vocab: TokenVocabulary) -> Bool {
        guard allows(id, in: vocab) else { return false }
        if vocab.endOfGeneration.contains(id) { return true }
        return advance(vocab.pieces[Int(id)])
    }

    /// The tokens allowed from the current state (computed once per state, then cached).
    public func mask(_ vocab: TokenVocabulary) -> TokenMask {
        let rt = runtime
        if let m = rt.masks[state] { return TokenMask(words: m, count: vocab.count) }
        var words = [UInt64](repeating: 0, count: (vocab.count + 63) / 64)
        let start = state
        if start != GrammarRuntime.dead {
            var states = [Int32](repeating: GrammarRuntime.dead, count: vocab.longest + 1)
            states[0] = start
            var deadAt = Int.max   // depth where the previous token's walk died
            for k in 0..<vocab.order.count {
                let shared = Int(vocab.shared[k])
                if deadAt <= shared { continue }  // shares the prefix that already failed
                deadAt = Int.max
                let id = vocab.order[k]
                let piece = vocab.pieces[Int(id)]
                var s = states[shared]
                var d = shared
                while d < piece.count {
                    s = rt.step(s, piece[d])
                    d += 1
                    states[d] = s
                    if s == GrammarRuntime.dead { deadAt = d; break }
                }
                if s != GrammarRuntime.dead { words[Int(id) >> 6] |= 1 << UInt64(id & 63) }
            }
            if rt.accepting(start) {
                for id in vocab.endOfGeneration where Int(id) < vocab.count { words[Int(id) >> 6] |= 1 << UInt64(id & 63) }
            }
        }
        rt.masksBuilt += 1
        if rt.masks.count >= rt.maxMasks { rt.masks.removeAll(keepingCapacity: true) }
        rt.masks[state] = words
        return TokenMask(words: words, count: vocab.count)
    }
}
