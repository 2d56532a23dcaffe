import Grammar
import JSON
import Testing

/// JSON Schema, regex and choice compilers: layout, arithmetic oracles, and the errors a user gets.
struct SchemaGrammarTests {
    static func schema(_ text: String) throws -> OrderedJSON { try OrderedJSON.parse(text) }

    static func matches(_ g: Grammar, _ text: String) -> Bool {
        var m = GrammarMatcher(g)
        return m.advance(Array(text.utf8)) && m.isAccepting
    }

    static func matches(_ g: Grammar, bytes: [UInt8]) -> Bool {
        var m = GrammarMatcher(g)
        return m.advance(bytes) && m.isAccepting
    }

    /// The error `body` throws (nil when it throws none).
    static func error(_ body: () throws(GrammarError) -> Grammar) -> GrammarError? {
        do { _ = try body(); return nil } catch { return error }
    }

    static let object = #"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"integer"}}},"required":["a"],"additionalProperties":false}"#

    @Test func flexibleWhitespaceIsBounded() throws {
        var flex = JSONSchemaOptions()
        flex.whitespace = .flexible
        let f = try JSONSchemaGrammar.grammar(try Self.schema(Self.object), options: flex)
        let c = try JSONSchemaGrammar.grammar(try Self.schema(Self.object))
        for text in [#"{ "a" : 1 }"#, "{\n  \"a\": 1,\n  \"b\": [ 1, 2 ]\n}", "{\"a\":1,\n\t\"b\":[]}", #"{"a":1}"#] {
            #expect(Self.matches(f, text), "flexible: \(text)")
        }
        for text in [#"{ "a" : 1 }"#, "{\n\"a\":1}", #"{"a": 1}"#] {
            #expect(!Self.matches(c, text), "compact: \(text)")
        }
        #expect(Self.matches(c, #"{"a":1,"b":[1,2]}"#))
        // Two spaces, a second newline, or more than 20 indent characters are refused.
        for text in [#"{  "a":1}"#, "{\n\n\"a\":1}", "{\n" + String(repeating: " ", count: 21) + "\"a\":1}", #" {"a":1}"#] {
            #expect(!Self.matches(f, text), "flexible: \(text.debugDescription)")
        }
        #expect(Self.matches(f, "{\n" + String(repeating: " ", count: 20) + "\"a\":1}"))
    }

    @Test func declaredOrderAndCommas() throws {
        let g = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"},"z":{"type":"integer"}},"required":["y"],"additionalProperties":false}"#))
        for (text, ok) in [(#"{"y":1}"#, true), (#"{"x":0,"y":1}"#, true), (#"{"y":1,"z":2}"#, true), (#"{"x":0,"y":1,"z":2}"#, true),
                           (#"{"y":1,"x":0}"#, false), (#"{}"#, false), (#"{"x":0}"#, false), (#"{"y":1,}"#, false), (#"{,"y":1}"#, false),
                           (#"{"x":0,,"y":1}"#, false), (#"{"y":1"z":2}"#, false)] {
            #expect(Self.matches(g, text) == ok, "\(text)")
        }
    }

    /// Undeclared properties come after the declared ones, under other names (not even through an
    /// escape that decodes to a declared name).
    @Test func undeclaredKeysAvoidDeclaredNames() throws {
        let g = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"object","properties":{"a":{"type":"integer"},"ab":{"type":"integer"}},"additionalProperties":{"type":"string"}}"#))
        for (text, ok) in [(#"{"a":1,"b":"x"}"#, true), (#"{"abc":"x"}"#, true), (#"{"":"x"}"#, true), (#"{"a":1,"ab":2,"a\\":"x"}"#, true), (#"{"a\n":"x"}"#, true),
                           (#"{"a":1,"a":"x"}"#, false), (#"{"ab":"x"}"#, false), (#"{"\u0061":"x"}"#, false), (#"{"b":"x","a":1}"#, false)] {
            #expect(Self.matches(g, text) == ok, "\(text)")
        }
    }

    /// Integer bounds against arithmetic, over every number in a window.
    @Test func integerRangesExhaustive() throws {
        let bounds: [(Int?, Int?)] = [(0, 9), (1, 10), (-5, 5), (-1000, -999), (7, 1005), (-1005, -7), (nil, -13), (99, nil), (0, nil), (nil, 0), (-100, 100), (5, 5), (nil, nil)]
        for (lo, hi) in bounds {
            var parts: [String] = [#""type":"integer""#]
            if let lo { parts.append(#""minimum":\#(lo)"#) }
            if let hi { parts.append(#""maximum":\#(hi)"#) }
            let g = try JSONSchemaGrammar.grammar(try Self.schema("{" + parts.joined(separator: ",") + "}"))
            for n in -1200...1200 {
                let inRange = (lo.map { n >= $0 } ?? true) && (hi.map { n <= $0 } ?? true)
                #expect(Self.matches(g, String(n)) == inRange, "\(n) in [\(lo.map(String.init) ?? "-inf"), \(hi.map(String.init) ?? "inf")]")
            }
            #expect(!Self.matches(g, "-0") && !Self.matches(g, "007") && !Self.matches(g, "1.0"))
        }
        let wide = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"integer","minimum":-9223372036854775807,"maximum":9223372036854775807}"#))
        #expect(Self.matches(wide, "9223372036854775807") && Self.matches(wide, "-9223372036854775807"))
        #expect(!Self.matches(wide, "9223372036854775808") && !Self.matches(wide, "-9223372036854775808"))
        let frac = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"integer","minimum":1.5,"exclusiveMaximum":4.0}"#))
        #expect(["2", "3"].allSatisfy { Self.matches(frac, $0) } && !Self.matches(frac, "1") && !Self.matches(frac, "4"))
    }

    @Test func stringCharacters() throws {
        let one = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"string","minLength":1,"maxLength":1}"#))
        for text in [#""a""#, #""é""#, #""😀""#, #""\ud83d\ude00""#, #""\u00e9""#, #""\n""#, #""\"""#, #""\/""#] {
            #expect(Self.matches(one, text), "\(text)")
        }
        for text in [#""ab""#, #""""#, #""\ud83d""#, #""\ude00""#, #""\x""#, "\"\u{01}\"", "\"\n\""] {
            #expect(!Self.matches(one, text), "\(text)")
        }
        // Invalid UTF-8: overlong, surrogate, stray continuation, truncated, above U+10FFFF.
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0x80], [0xE6, 0x97], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            #expect(!Self.matches(one, bytes: [0x22] + bad + [0x22]), "\(bad)")
        }
    }

    @Test func patternsAreJSONEscaped() throws {
        let g = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"string","pattern":"^[\"\\\\\n]{2}$"}"#))
        #expect(Self.matches(g, #""\"\\""#))
        #expect(Self.matches(g, #""\n\"""#))
        #expect(!Self.matches(g, "\"\"\\\""))   // a raw quote
        #expect(!Self.matches(g, "\"\n\n\""))   // raw newlines
    }

    @Test func regexAndChoice() throws {
        let g = try RegexGrammar.grammar("^(a|b)*c$")
        #expect(Self.matches(g, "abac") && Self.matches(g, "c") && !Self.matches(g, "ab"))
        let neg = try RegexGrammar.grammar("[^a-z]")
        #expect(Self.matches(neg, "😀") && Self.matches(neg, "\n") && !Self.matches(neg, "q"))
        #expect(!Self.matches(neg, bytes: [0xED, 0xA0, 0x80]))
        let c = try ChoiceGrammar.grammar(["yes", "no", "yesno"])
        #expect(["yes", "no", "yesno"].allSatisfy { Self.matches(c, $0) })
        #expect(!Self.matches(c, "ye") && !Self.matches(c, "noyes") && !Self.matches(c, ""))
        #expect(Self.error { () throws(GrammarError) in try ChoiceGrammar.grammar([]) } != nil)
    }

    @Test func anyJSONAndEmbedding() throws {
        var o = JSONSchemaOptions()
        o.maxNesting = 3
        let g = try JSONSchemaGrammar.anyObject(options: o)
        #expect(Self.matches(g, #"{"a":[1,{"b":null}],"c":-0.5e3}"#) && Self.matches(g, "{}"))
        #expect(!Self.matches(g, "[1]") && !Self.matches(g, #""x""#) && !Self.matches(g, #"{"a":1,}"#))
        #expect(!Self.matches(g, #"{"a":[[[1]]]}"#))   // deeper than 3
        #expect(!Self.matches(g, #"{"a":NaN}"#) && !Self.matches(g, #"{"a":01}"#))

        // Two schemas and an any-value in one grammar, as a tool-call compiler would combine them;
        // each document's refs resolve inside it.
        var b = GrammarBuilder()
        let s1 = try JSONSchemaGrammar.add(try Self.schema(##"{"$defs":{"t":{"type":"integer"}},"$ref":"#/$defs/t"}"##), to: &b, options: .init())
        let s2 = try JSONSchemaGrammar.add(try Self.schema(##"{"$defs":{"t":{"type":"boolean"}},"type":"array","items":{"$ref":"#/$defs/t"}}"##), to: &b, options: .init())
        let any = try JSONSchemaGrammar.addAnyValue(to: &b, options: .init())
        let root = try b.add("call", [GrammarBuilder.literal("f(") + s1 + GrammarBuilder.literal(")"),
                                      GrammarBuilder.literal("g(") + s2 + GrammarBuilder.literal(")"),
                                      GrammarBuilder.literal("h(") + any + GrammarBuilder.literal(")")])
        let call = try b.build(root: root)
        #expect(Self.matches(call, "f(12)") && Self.matches(call, "g([true,false])") && Self.matches(call, #"h({"x":[]})"#))
        #expect(!Self.matches(call, "f(true)") && !Self.matches(call, "g([1])"))
    }

    /// Token masks over a schema grammar agree with matching each token's bytes (tokens that cross
    /// structure, split UTF-8 sequences, end-of-generation only when complete).
    @Test func masksOverSchemaGrammar() throws {
        let g = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type":"object","properties":{"n":{"type":"integer","minimum":-5,"maximum":12},"s":{"type":"string","maxLength":2}},"required":["n"],"additionalProperties":false}"#))
        let words: [[UInt8]] = [Array("{\"".utf8), Array("n".utf8), Array("\":".utf8), Array("1".utf8), Array("12".utf8), Array("13".utf8),
                                Array("-".utf8), Array("-6".utf8), Array(",\"s\":\"".utf8), Array("é".utf8), [0xC3], [0xA9], Array("\"}".utf8),
                                Array("}".utf8), Array("ab".utf8), Array("abc".utf8), Array(" ".utf8), Array("\\n".utf8)]
        let vocab = TokenVocabulary(pieces: words + [[]], endOfGeneration: [Int32(words.count)])
        for prefix in ["", "{\"", "{\"n\":", "{\"n\":1", "{\"n\":-", "{\"n\":1,\"s\":\"", "{\"n\":1,\"s\":\"a", "{\"n\":12}"] {
            var m = GrammarMatcher(g)
            let ok = m.advance(Array(prefix.utf8))
            #expect(ok, "\(prefix)")
            let mask = m.mask(vocab)
            for id in 0..<vocab.count {
                let expected = id == words.count ? m.isAccepting : m.accepts(words[id])
                #expect(mask.allows(Int32(id)) == expected, "after \(prefix): token \(id)")
            }
        }
        var m = GrammarMatcher(g)
        #expect(m.advance(Array(#"{"n":12}"#.utf8)) && m.isComplete)
    }

    /// Each bad input gives an error of the right kind whose message names the problem.
    @Test func badInputs() throws {
        func expectError(_ schemaText: String, _ kind: (GrammarError) -> Bool, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let s = try Self.schema(schemaText)
            guard let e = Self.error({ () throws(GrammarError) in try JSONSchemaGrammar.grammar(s) }) else {
                Issue.record("\(schemaText) compiled", sourceLocation: sourceLocation)
                return
            }
            #expect(kind(e), "\(schemaText): \(e)", sourceLocation: sourceLocation)
            for w in words { #expect(e.description.contains(w), "\(schemaText): '\(e)' should mention \(w)", sourceLocation: sourceLocation) }
        }
        let unsupported: (GrammarError) -> Bool = { if case .unsupported = $0 { return true }; return false }
        let invalid: (GrammarError) -> Bool = { if case .invalid = $0 { return true }; return false }
        let tooLarge: (GrammarError) -> Bool = { if case .tooLarge = $0 { return true }; return false }

        try expectError(##"{"type":"object","properties":{"a":{"type":"string","contentEncoding":"base64"}}}"##, unsupported, ["'contentEncoding'", "#/properties/a/contentEncoding"])
        try expectError(#"{"type":"array","uniqueItems":true}"#, unsupported, ["uniqueItems"])
        try expectError(##"{"type":"object","patternProperties":{"^x":{}}}"##, unsupported, ["patternProperties", "#/patternProperties"])
        try expectError(##"{"type":"string","pattern":"a(b"}"##, invalid, ["#/pattern", "missing ')'"])
        try expectError(#"{"type":"string","pattern":"(?=a)b"}"#, unsupported, ["lookahead"])
        try expectError(#"{"type":"string","pattern":"(a)\\1"}"#, unsupported, ["backreference"])
        try expectError(#"{"type":"string","pattern":"a**"}"#, invalid, ["multiple repeat"])
        try expectError(##"{"$ref":"#/$defs/missing","$defs":{"other":{}}}"##, invalid, ["#/$defs/missing", "'missing'"])
        try expectError(#"{"$ref":"https://example.com/s.json"}"#, unsupported, ["$ref", "example.com"])
        try expectError(#"{"type":"array","minItems":3,"maxItems":1}"#, invalid, ["minItems (3) is greater than maxItems (1)"])
        try expectError(#"{"type":"string","minLength":3,"maxLength":1}"#, invalid, ["minLength (3)"])
        try expectError(#"{"type":5}"#, invalid, ["'type'", "5"])
        try expectError(#"{"type":"strin"}"#, invalid, ["strin"])
        try expectError(#"{"type":"string","maxLength":1000000}"#, tooLarge, ["maxLength"])
        try expectError(#"{"type":"array","maxItems":50000}"#, tooLarge, ["maxItems"])
        try expectError(#"{"type":"string","pattern":"^a{100000}$"}"#, tooLarge, ["10000"])
        try expectError(#"{"type":"integer","minimum":1,"maximum":0}"#, invalid, ["no integer"])
        try expectError(#"{"type":"number","minimum":2.5,"exclusiveMaximum":2.5}"#, invalid, ["leave no number"])
        try expectError(#"{"type":"number","maximum":"high"}"#, unsupported, ["maximum", "finite number"])
        try expectError(##"{"type":"string","format":"hostname"}"##, unsupported, ["hostname", "#/format"])
        try expectError(#"{"oneOf":[{"type":"integer"},{"type":"number"}]}"#, unsupported, ["oneOf", "anyOf"])
        try expectError(#"{"allOf":[{"type":"integer"},{"minimum":1}]}"#, unsupported, ["allOf"])
        try expectError(##"{"$ref":"#/$defs/a","type":"object","$defs":{"a":{}}}"##, unsupported, ["$ref", "'type'"])
        try expectError(#"{"type":"object","properties":{"a":false},"required":["a"]}"#, invalid, ["'a'"])
        try expectError(#"{"enum":[1,2],"type":"string"}"#, invalid, ["enum"])
        try expectError("[1]", invalid, ["must be an object or a boolean"])
        try expectError("false", invalid, ["false"])
        // A schema nested past the depth guard, and one that is only a reference to itself.
        try expectError(String(repeating: #"{"items":"#, count: 200) + "{}" + String(repeating: "}", count: 200), tooLarge, ["128"])
        try expectError(##"{"$ref":"#"}"##, { if case .leftRecursion = $0 { return true }; return false }, [])

        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("[a-") } != nil)
        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("a\\b") }?.description.contains("\\b") == true)
        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("a^b") }?.description.contains("anchor") == true)
        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("(?i)a") }?.description.contains("flags") == true)
        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("z-a]") } == nil)
        #expect(Self.error { () throws(GrammarError) in try RegexGrammar.grammar("[z-a]") }?.description.contains("range") == true)
    }
}
