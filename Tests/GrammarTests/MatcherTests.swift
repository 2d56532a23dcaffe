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

    /// A grammar with no rule to start from, or a reference past its rules, is refused by
    /// `build` (the matcher would index past its tables on the engine thread).
    @Test func emptyAndDanglingGrammarsAreRefused() throws {
        #expect(throws: GrammarError.self) { try GrammarBuilder().build(root: 0) }
        var b = GrammarBuilder()
        let r = try b.add("root", [GrammarBuilder.literal("x")])
        #expect(throws: GrammarError.self) { try b.build(root: r + 1) }
        #expect(throws: GrammarError.self) { try b.build(root: -1) }
        var c = GrammarBuilder()
        let d = try c.add("root", [GrammarBuilder.literal("x") + [.rule(7)]])
        #expect(throws: GrammarError.undefinedRule("#7 (referenced by 'root')")) { try c.build(root: d) }
        // A grammar whose only sentence is the empty string is fine: complete at once.
        var e = GrammarBuilder()
        let only = try e.add("root", [[]])
        let g = try e.build(root: only)
        let m = GrammarMatcher(g)
        #expect(m.isComplete && !g.admitsNothing)
    }

    /// `admitsNothing` against the matcher: a grammar with no sentence is one from whose start no
    /// byte string reaches an accepting state, checked here over every string up to length 3 of
    /// the bytes the grammars use.
    @Test func admitsNothingAgreesWithTheMatcher() throws {
        let patterns: [(String, Bool)] = [
            (#"[^\s\S]"#, true), (#"a[^\d\D]b"#, true), (#"(a|b[^\w\W])c"#, false), (#"(ab)*"#, false),
            (#"(a[^\s\S])*"#, false), (#"(a[^\s\S])+"#, true), (#"a?"#, false), (#"x{0}"#, false),
        ]
        let alphabet = Array("abcx".utf8)
        for (p, none) in patterns {
            let g = try RegexGrammar.grammar(p)
            #expect(g.admitsNothing == none, "\(p)")
            var strings: [[UInt8]] = [[]]
            for n in 1...3 { strings += strings.filter { $0.count == n - 1 }.flatMap { s in alphabet.map { s + [$0] } } }
            let matched = strings.contains { s in
                var m = GrammarMatcher(g)
                return m.advance(s) && m.isAccepting
            }
            #expect(matched == !none, "\(p)")
        }
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
