import Grammar
import Testing

/// The matcher against grammars small enough to enumerate by hand.
struct MatcherTests {
    /// `root ::= "a" root "b" | ""` (balanced aⁿbⁿ, which no regular language can hold).
    func anbn() throws -> Grammar {
        var b = GrammarBuilder()
        let r = try b.reserve("root")
        try b.define(r, [GrammarBuilder.literal("a") + [.rule(r)] + GrammarBuilder.literal("b"), []])
        return try b.build(root: r)
    }

    @Test func balancedPairs() throws {
        let g = try anbn()
        for (text, ok) in [("", true), ("ab", true), ("aabb", true), ("aaabbb", true), ("aab", false), ("abb", false), ("ba", false)] {
            var m = GrammarMatcher(g)
            let consumed = m.advance(Array(text.utf8))
            #expect((consumed && m.isAccepting) == ok, "\(text)")
        }
        var m = GrammarMatcher(g)
        let aa = m.advance(Array("aa".utf8))
        #expect(aa)
        #expect(m.allowedBytes == ByteSet(bytes: Array("ab".utf8)))
        #expect(!m.isAccepting)
        let c = m.advance(UInt8(ascii: "c"))
        #expect(!c)
        let bb = m.advance(Array("bb".utf8))
        #expect(bb && m.isComplete)
    }

    @Test func leftRecursionIsRefused() throws {
        var b = GrammarBuilder()
        let r = try b.reserve("list")
        try b.define(r, [[.rule(r)] + GrammarBuilder.literal("x"), GrammarBuilder.literal("x")])
        #expect(throws: GrammarError.leftRecursion("list")) { try b.build(root: r) }
        var c = GrammarBuilder()
        let loop = try c.star(try c.optional(GrammarBuilder.literal("x")))
        let root = try c.add("root", [loop])
        #expect(throws: GrammarError.self) { try c.build(root: root) }
        var d = GrammarBuilder()
        _ = try d.reserve("never")
        let root2 = try d.add("root", [GrammarBuilder.literal("x")])
        #expect(throws: GrammarError.undefinedRule("never")) { try d.build(root: root2) }
    }

    @Test func boundedRepeat() throws {
        var b = GrammarBuilder()
        let digits = try b.repeat([.bytes(ByteSet(UInt8(ascii: "0")...UInt8(ascii: "9")))], min: 2, max: 4)
        let root = try b.add("root", [digits])
        let g = try b.build(root: root)
        for n in 0...6 {
            var m = GrammarMatcher(g)
            let ok = m.advance(Array(String(repeating: "7", count: n).utf8)) && m.isAccepting
            #expect(ok == (2...4).contains(n), "\(n) digits")
        }
        var m = GrammarMatcher(g)
        m.advance(Array("1234".utf8))
        #expect(m.isComplete)
    }

    /// A mask equals, token by token, what matching each token's bytes says; end-of-generation
    /// tokens only where the grammar is complete.
    @Test func maskAgreesWithMatchingEachToken() throws {
        let g = try anbn()
        let words = ["a", "b", "aa", "ab", "abb", "aab", "ba", "bb", "bbb", "c", "", "aaa", "b", "abab"]
        let vocab = TokenVocabulary(pieces: words.map { Array($0.utf8) } + [[]], endOfGeneration: [Int32(words.count)])
        for prefix in ["", "a", "aa", "aab", "aabb", "ab"] {
            var m = GrammarMatcher(g)
            let ok = m.advance(Array(prefix.utf8))
            #expect(ok)
            let mask = m.mask(vocab)
            for id in 0..<vocab.count {
                let expected = id == words.count ? m.isAccepting : (!words[id].isEmpty && m.accepts(Array(words[id].utf8)))
                #expect(mask.allows(Int32(id)) == expected, "after '\(prefix)', token '\(id < words.count ? words[id] : "<eos>")'")
                #expect(m.allows(Int32(id), in: vocab) == expected)
            }
        }
    }
}
