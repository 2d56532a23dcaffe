/// Regular expressions → `Grammar` (vLLM's `guided_regex`; JSON Schema's `pattern` through
/// `JSONSchemaGrammar`). The whole input must match (as Python's `re.fullmatch`); `^` and `$` are
/// accepted only at the very start and end of the pattern.
///
/// Supported: literals, `.` (any code point but the line terminators \n \r U+2028 U+2029, so it is
/// a subset of both Python's and ECMA-262's dot), escapes (`\d \w \s \D \W \S` with ASCII meanings
/// as Python's `re.ASCII` gives them, `\n \t \r \f \v \0 \xHH \uXXXX`, an escaped punctuation
/// character stands for itself), classes with ranges and negation (over Unicode code points, so a
/// class becomes UTF-8 byte sequences), groups `( )` `(?: )` `(?P<n> )` `(?<n> )`, alternation,
/// quantifiers `* + ? {m} {m,} {,n} {m,n}` (a lazy `?` suffix is accepted: same language).
/// Refused with `GrammarError.unsupported`: backreferences, lookaround, word boundaries, inline
/// flags, Unicode property classes, anchors in the middle.
public enum RegexGrammar {
    public static func grammar(_ pattern: String) throws(GrammarError) -> Grammar {
        var b = GrammarBuilder()
        let s = try add(pattern, to: &b)
        let root = try b.add("regex", [s])
        return try b.build(root: root)
    }

    /// Adds the rules for text matching `pattern` (raw UTF-8) to `b`; returns the symbols.
    public static func add(_ pattern: String, to b: inout GrammarBuilder) throws(GrammarError) -> [Grammar.Symbol] {
        let parsed = try RegexParser.parse(pattern)
        return try compile(parsed.node, to: &b, encoding: .utf8)
    }

    /// How matched code points become bytes: raw UTF-8, or the inside of a JSON string literal
    /// (`"`, `\` and control characters written as escapes, as Python's `json.dumps` writes them).
    enum Encoding { case utf8, jsonString }

    /// Symbols for the content of a JSON string whose decoded text matches `pattern` with JSON
    /// Schema's search semantics (a side without an anchor may have any text around the match).
    static func addJSONStringPattern(_ pattern: String, to b: inout GrammarBuilder, path: String) throws(GrammarError) -> [Grammar.Symbol] {
        let parsed: RegexParser.Result
        do { parsed = try RegexParser.parse(pattern) } catch {
            throw error.prefixed("pattern at \(path): ")
        }
        if case .alt(let branches) = parsed.node, branches.count > 1, parsed.anchoredStart || parsed.anchoredEnd {
            throw .unsupported("pattern at \(path): an anchor (^ or $) with a top-level alternation '|' is ambiguous here; wrap the alternation in a group, e.g. ^(a|b)$")
        }
        var node = parsed.node
        let anything = RegexNode.rep(.chars(CodeSet.all), 0, nil)
        if !parsed.anchoredStart { node = .seq([anything, node]) }
        if !parsed.anchoredEnd { node = .seq([node, anything]) }
        return try compile(node, to: &b, encoding: .jsonString)
    }

    static func compile(_ n: RegexNode, to b: inout GrammarBuilder, encoding: Encoding) throws(GrammarError) -> [Grammar.Symbol] {
        switch n {
        case .chars(let set):
            return try codePoints(set, to: &b, encoding: encoding)
        case .seq(let parts):
            var out: [Grammar.Symbol] = []
            for p in parts { out += try compile(p, to: &b, encoding: encoding) }
            return out
        case .alt(let branches):
            var alts: [[Grammar.Symbol]] = []
            for br in branches { alts.append(try compile(br, to: &b, encoding: encoding)) }
            return try b.choice(alts)
        case .rep(let x, let lo, let hi):
            var body = x, min = lo
            if x.nullable {
                // x{m,n} with x able to match "" is (x minus "")'s {0,n}; repeating something that
                // may be empty would loop without consuming input.
                guard let ne = x.nonEmpty else { return [] }
                body = ne
                min = 0
            }
            var xs = try compile(body, to: &b, encoding: encoding)
            if xs.count > 1 { xs = [.rule(try b.sharedRule("group", [xs]))] }
            return try b.repeat(xs, min: min, max: hi)
        }
    }

    /// One code point out of `set`, as bytes.
    static func codePoints(_ set: CodeSet, to b: inout GrammarBuilder, encoding: Encoding) throws(GrammarError) -> [Grammar.Symbol] {
        var alts: [[Grammar.Symbol]] = []
        var raw = set
        if encoding == .jsonString {
            let escaped = CodeSet(ranges: [0...0x1F, 0x22...0x22, 0x5C...0x5C])
            raw = set.subtracting(escaped)
            for r in set.intersection(escaped).ranges {
                for c in r { alts.append(GrammarBuilder.literal(jsonEscape(c))) }
            }
        }
        for seq in utf8Sequences(raw) { alts.append(seq.map { .bytes(ByteSet($0)) }) }
        if alts.isEmpty { return [.rule(try b.sharedRule("nothing", []))] }
        return try b.choice(alts)
    }

    /// How `json.dumps` writes the code point `c` (< 0x20, `"` or `\`) inside a string.
    static func jsonEscape(_ c: UInt32) -> String {
        switch c {
        case 0x22: return "\\\""
        case 0x5C: return "\\\\"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x08: return "\\b"
        case 0x0C: return "\\f"
        default:
            let hex = Array("0123456789abcdef")
            return "\\u00" + String(hex[Int(c >> 4)]) + String(hex[Int(c & 15)])
        }
    }

    /// The UTF-8 encodings of the code points in `set`, as sequences of byte ranges (each
    /// sequence covers a block of code points whose encodings differ only within those ranges).
    static func utf8Sequences(_ set: CodeSet) -> [[ClosedRange<UInt8>]] {
        var out: [[ClosedRange<UInt8>]] = []
        for r in set.ranges { split(r.lowerBound, r.upperBound, into: &out) }
        return out
    }

    static func split(_ lo: UInt32, _ hi: UInt32, into out: inout [[ClosedRange<UInt8>]]) {
        // Ranges of one encoded length only (surrogates are never in a CodeSet).
        for limit: UInt32 in [0x7F, 0x7FF, 0xFFFF] where lo <= limit && hi > limit {
            split(lo, limit, into: &out)
            split(limit + 1, hi, into: &out)
            return
        }
        let n = lo <= 0x7F ? 1 : lo <= 0x7FF ? 2 : lo <= 0xFFFF ? 3 : 4
        // Split until every continuation position spans whole blocks, so the range is a product
        // of byte ranges.
        for i in 1..<n {
            let m: UInt32 = (1 << (6 * UInt32(i))) - 1
            if lo & ~m != hi & ~m {
                if lo & m != 0 {
                    split(lo, lo | m, into: &out)
                    split((lo | m) + 1, hi, into: &out)
                    return
                }
                if hi & m != m {
                    split(lo, (hi & ~m) - 1, into: &out)
                    split(hi & ~m, hi, into: &out)
                    return
                }
            }
        }
        let a = encode(lo, n), z = encode(hi, n)
        out.append((0..<n).map { a[$0]...z[$0] })
    }

    static func encode(_ c: UInt32, _ n: Int) -> [UInt8] {
        switch n {
        case 1: return [UInt8(c)]
        case 2: return [UInt8(0xC0 | c >> 6), UInt8(0x80 | c & 0x3F)]
        case 3: return [UInt8(0xE0 | c >> 12), UInt8(0x80 | (c >> 6) & 0x3F), UInt8(0x80 | c & 0x3F)]
        default: return [UInt8(0xF0 | c >> 18), UInt8(0x80 | (c >> 12) & 0x3F), UInt8(0x80 | (c >> 6) & 0x3F), UInt8(0x80 | c & 0x3F)]
        }
    }
}

/// Exactly one of a list of strings (vLLM's `guided_choice`).
public enum ChoiceGrammar {
    public static func grammar(_ choices: [String]) throws(GrammarError) -> Grammar {
        guard !choices.isEmpty else { throw .invalid("a choice list needs at least one string") }
        var b = GrammarBuilder()
        var seen = Set<String>()
        let alts = choices.filter { seen.insert($0).inserted }.map { GrammarBuilder.literal($0) }
        let root = try b.add("choice", alts)
        return try b.build(root: root)
    }
}

extension GrammarError {
    func prefixed(_ p: String) -> GrammarError {
        switch self {
        case .unsupported(let m): return .unsupported(p + m)
        case .invalid(let m): return .invalid(p + m)
        default: return self
        }
    }
}

/// A set of Unicode scalar values (never surrogates), as sorted, disjoint, non-adjacent ranges.
struct CodeSet: Equatable {
    private(set) var ranges: [ClosedRange<UInt32>] = []

    static let maxScalar: UInt32 = 0x10FFFF
    static let all = CodeSet(ranges: [0...maxScalar])

    init() {}
    init(ranges: [ClosedRange<UInt32>]) { for r in ranges { insert(r) } }
    init(_ c: UInt32) { insert(c...c) }

    mutating func insert(_ r: ClosedRange<UInt32>) {
        // Surrogates are not scalar values.
        if r.lowerBound < 0xD800 && r.upperBound > 0xDFFF {
            insert(r.lowerBound...0xD7FF); insert(0xE000...r.upperBound); return
        }
        var lo = r.lowerBound, hi = min(r.upperBound, CodeSet.maxScalar)
        if lo >= 0xD800 && lo <= 0xDFFF { lo = 0xE000 }
        if hi >= 0xD800 && hi <= 0xDFFF { hi = 0xD7FF }
        guard lo <= hi else { return }
        var out: [ClosedRange<UInt32>] = []
        var placed = false
        for x in ranges {
            if x.upperBound &+ 1 < lo { out.append(x) } else if hi &+ 1 < x.lowerBound {
                if !placed { out.append(lo...hi); placed = true }
                out.append(x)
            } else {
                lo = min(lo, x.lowerBound); hi = max(hi, x.upperBound)
            }
        }
        if !placed { out.append(lo...hi) }
        ranges = out
    }

    mutating func formUnion(_ o: CodeSet) { for r in o.ranges { insert(r) } }

    var inverted: CodeSet {
        var out = CodeSet()
        var next: UInt32 = 0
        for r in ranges {
            if r.lowerBound > next { out.insert(next...(r.lowerBound - 1)) }
            next = r.upperBound + 1
        }
        if next <= CodeSet.maxScalar { out.insert(next...CodeSet.maxScalar) }
        return out
    }

    func intersection(_ o: CodeSet) -> CodeSet { inverted.union(o.inverted).inverted }
    func union(_ o: CodeSet) -> CodeSet { var s = self; s.formUnion(o); return s }
    func subtracting(_ o: CodeSet) -> CodeSet { intersection(o.inverted) }
    var isEmpty: Bool { ranges.isEmpty }
    func contains(_ c: UInt32) -> Bool { ranges.contains { $0.contains(c) } }
}

indirect enum RegexNode {
    case chars(CodeSet)
    case seq([RegexNode])
    case alt([RegexNode])
    case rep(RegexNode, Int, Int?)

    var nullable: Bool {
        switch self {
        case .chars: return false
        case .seq(let p): return p.allSatisfy(\.nullable)
        case .alt(let p): return p.contains(where: \.nullable)
        case .rep(let x, let lo, _): return lo == 0 || x.nullable
        }
    }

    /// The same language without the empty string; nil when that leaves nothing.
    var nonEmpty: RegexNode? {
        guard nullable else { return self }
        switch self {
        case .chars: return self
        case .alt(let p):
            let q = p.compactMap(\.nonEmpty)
            return q.isEmpty ? nil : .alt(q)
        case .seq(let p):
            // Every part is nullable here: (a r) minus "" = (a minus "") r | (r minus "").
            guard let first = p.first else { return nil }
            let rest = Array(p.dropFirst())
            var branches: [RegexNode] = []
            if let a = first.nonEmpty { branches.append(.seq([a] + rest)) }
            if let r = RegexNode.seq(rest).nonEmpty { branches.append(r) }
            return branches.isEmpty ? nil : branches.count == 1 ? branches[0] : .alt(branches)
        case .rep(let x, _, let hi):
            if hi == 0 { return nil }
            guard let x1 = x.nonEmpty else { return nil }
            return .seq([x1, .rep(x1, 0, hi.map { $0 - 1 })])
        }
    }
}

/// A recursive-descent parser for the regex subset above.
struct RegexParser {
    struct Result {
        var node: RegexNode
        var anchoredStart: Bool
        var anchoredEnd: Bool
    }

    let chars: [Unicode.Scalar]
    var pos = 0
    /// The end of what is parsed (before a trailing `$` anchor).
    var limit = 0
    var depth = 0

    static func parse(_ pattern: String) throws(GrammarError) -> Result {
        let all = Array(pattern.unicodeScalars)
        var start = false, end = false
        var lo = 0, hi = all.count
        if hi > 0 && all[0] == "^" { start = true; lo = 1 }
        if hi > lo && all[hi - 1] == "$" {
            // A trailing `\$` is a literal dollar: count the backslashes before it.
            var k = hi - 2, slashes = 0
            while k >= lo && all[k] == "\\" { slashes += 1; k -= 1 }
            if slashes % 2 == 0 { end = true; hi -= 1 }
        }
        var p = RegexParser(chars: all, pos: lo, limit: hi)
        let n = try p.alternation()
        if p.pos < p.limit { throw p.invalid("unbalanced ')'") }
        return Result(node: n, anchoredStart: start, anchoredEnd: end)
    }

    func invalid(_ why: String) -> GrammarError {
        .invalid("invalid regex at character \(pos): \(why)")
    }
    func unsupported(_ what: String) -> GrammarError {
        .unsupported("regex feature not supported at character \(pos): \(what); rewrite the pattern without it")
    }

    var atEnd: Bool { pos >= limit }
    var peek: Unicode.Scalar? { atEnd ? nil : chars[pos] }

    mutating func alternation() throws(GrammarError) -> RegexNode {
        depth += 1
        defer { depth -= 1 }
        guard depth < 100 else { throw unsupported("groups nested more than 100 deep") }
        var branches = [try sequence()]
        while peek == "|" {
            pos += 1
            branches.append(try sequence())
        }
        return branches.count == 1 ? branches[0] : .alt(branches)
    }

    mutating func sequence() throws(GrammarError) -> RegexNode {
        var parts: [RegexNode] = []
        while let c = peek, c != "|", c != ")" {
            var atom = try self.atom()
            // Quantifiers.
            if let q = try quantifier() {
                atom = .rep(atom, q.0, q.1)
                if peek == "?" { pos += 1 }  // lazy: same language
                if let c = peek, c == "*" || c == "+" || c == "?" || (c == "{" && looksLikeQuantifier()) {
                    throw c == "+" ? unsupported("possessive quantifier") : invalid("multiple repeat")
                }
            }
            parts.append(atom)
        }
        return parts.count == 1 ? parts[0] : .seq(parts)
    }

    func looksLikeQuantifier() -> Bool {
        var k = pos + 1
        var sawDigitOrComma = false
        while k < limit {
            let c = chars[k]
            if c == "}" { return sawDigitOrComma }
            guard c == "," || ("0"..."9").contains(c) else { return false }
            sawDigitOrComma = true
            k += 1
        }
        return false
    }

    mutating func number() -> Int? {
        var v = 0, any = false
        while let c = peek, ("0"..."9").contains(c) {
            v = min(v * 10 + Int(c.value - 48), 1_000_000_000)
            any = true
            pos += 1
        }
        return any ? v : nil
    }

    mutating func quantifier() throws(GrammarError) -> (Int, Int?)? {
        guard let c = peek else { return nil }
        switch c {
        case "*": pos += 1; return (0, nil)
        case "+": pos += 1; return (1, nil)
        case "?": pos += 1; return (0, 1)
        case "{":
            guard looksLikeQuantifier() else { throw invalid("'{' that does not start a quantifier {m}, {m,}, {m,n}; escape it as \\{") }
            pos += 1
            let lo = number()
            var hi: Int?
            if peek == "," {
                pos += 1
                hi = number()
            } else {
                guard let lo else { throw invalid("empty quantifier {}") }
                hi = lo
            }
            pos += 1  // "}"
            let min = lo ?? 0
            if let hi, hi < min { throw invalid("quantifier {\(min),\(hi)} has max below min") }
            return (min, hi)
        default: return nil
        }
    }

    mutating func atom() throws(GrammarError) -> RegexNode {
        guard let c = peek else { throw invalid("unexpected end") }
        switch c {
        case "(":
            pos += 1
            if peek == "?" {
                pos += 1
                guard let kind = peek else { throw invalid("unterminated group '(?'") }
                switch kind {
                case ":": pos += 1
                case "P" where pos + 1 < limit && chars[pos + 1] == "<":
                    try skipGroupName(from: pos + 2)
                case "<" where pos + 1 < limit && chars[pos + 1] != "=" && chars[pos + 1] != "!":
                    try skipGroupName(from: pos + 1)
                case "=", "!": throw unsupported("lookahead (?\(kind)")
                case "<": throw unsupported("lookbehind")
                case "P": throw unsupported("named backreference (?P=")
                default: throw unsupported("inline flags or extension group (?\(kind)")
                }
            }
            let inner = try alternation()
            guard peek == ")" else { throw invalid("missing ')'") }
            pos += 1
            return inner
        case ")": throw invalid("unbalanced ')'")
        case "*", "+", "?": throw invalid("nothing to repeat before '\(c)'")
        case "{":
            if looksLikeQuantifier() { throw invalid("nothing to repeat before '{'") }
            throw invalid("'{' that does not start a quantifier; escape it as \\{")
        case "^": throw unsupported("'^' anchor that is not at the start of the pattern")
        case "$": throw unsupported("'$' anchor that is not at the end of the pattern")
        case ".":
            pos += 1
            return .chars(RegexParser.dot)
        case "[":
            return .chars(try charClass())
        case "\\":
            pos += 1
            return .chars(try escape(inClass: false))
        default:
            pos += 1
            return .chars(CodeSet(c.value))
        }
    }

    mutating func skipGroupName(from k: Int) throws(GrammarError) {
        var j = k
        while j < limit, chars[j] != ">" { j += 1 }
        guard j < limit, j > k else { throw invalid("bad group name") }
        pos = j + 1
    }

    /// Any code point but the line terminators (a subset of every dialect's `.`).
    static let dot = CodeSet(ranges: [0...0x10FFFF]).subtracting(CodeSet(ranges: [0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029]))
    static let digits = CodeSet(ranges: [0x30...0x39])
    static let word = CodeSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
    static let space = CodeSet(ranges: [0x09...0x0D, 0x20...0x20])

    func hexValue(_ n: Int) throws(GrammarError) -> UInt32 {
        guard pos + n <= limit else { throw invalid("expected \(n) hex digits") }
        var v: UInt32 = 0
        for k in 0..<n {
            guard let d = UInt32(String(chars[pos + k]), radix: 16) else { throw invalid("expected \(n) hex digits") }
            v = v << 4 | d
        }
        return v
    }

    /// After a backslash.
    mutating func escape(inClass: Bool) throws(GrammarError) -> CodeSet {
        guard let c = peek else { throw invalid("pattern ends with a backslash") }
        pos += 1
        switch c {
        case "d": return RegexParser.digits
        case "D": return RegexParser.digits.inverted
        case "w": return RegexParser.word
        case "W": return RegexParser.word.inverted
        case "s": return RegexParser.space
        case "S": return RegexParser.space.inverted
        case "n": return CodeSet(0x0A)
        case "t": return CodeSet(0x09)
        case "r": return CodeSet(0x0D)
        case "f": return CodeSet(0x0C)
        case "v": return CodeSet(0x0B)
        case "0": return CodeSet(0)
        case "b" where inClass: return CodeSet(0x08)
        case "x":
            let v = try hexValue(2); pos += 2
            return CodeSet(v)
        case "u":
            let v = try hexValue(4); pos += 4
            guard !(0xD800...0xDFFF).contains(v) else { pos -= 6; throw unsupported("surrogate code point \\u\(String(v, radix: 16)) (write the character itself)") }
            return CodeSet(v)
        case "b", "B", "A", "Z", "z", "G":
            pos -= 2
            throw unsupported("assertion \\\(c)")
        case "1"..."9", "k":
            pos -= 2
            throw unsupported("backreference \\\(c)")
        case "p", "P":
            pos -= 2
            throw unsupported("Unicode property class \\\(c)")
        default:
            if c.properties.isAlphabetic || ("0"..."9").contains(c) {
                pos -= 2
                throw invalid("unknown escape \\\(c)")
            }
            return CodeSet(c.value)
        }
    }

    mutating func charClass() throws(GrammarError) -> CodeSet {
        let open = pos
        pos += 1
        var negate = false
        if peek == "^" { negate = true; pos += 1 }
        var set = CodeSet()
        if peek == "]" { throw invalid("']' right after '[' (an empty class in ECMA-262, a literal in Python): escape it as \\]") }
        while true {
            guard let c = peek else { pos = open; throw invalid("unterminated character class '['") }
            if c == "]" { pos += 1; break }
            // One item: an escape (maybe a class like \d) or a code point, maybe a range.
            let lo: CodeSet
            var single: UInt32?
            if c == "\\" {
                pos += 1
                lo = try escape(inClass: true)
                if lo.ranges.count == 1, lo.ranges[0].count == 1 { single = lo.ranges[0].lowerBound }
            } else {
                if c == "[" && pos + 1 < limit && chars[pos + 1] == ":" { throw unsupported("POSIX class [: :]") }
                pos += 1
                lo = CodeSet(c.value)
                single = c.value
            }
            if peek == "-", pos + 1 < limit, chars[pos + 1] != "]" {
                guard let a = single else { throw invalid("a range cannot start with a class escape") }
                pos += 1
                let bc = chars[pos]
                var bv: UInt32
                if bc == "\\" {
                    pos += 1
                    let e = try escape(inClass: true)
                    guard e.ranges.count == 1, e.ranges[0].count == 1 else { throw invalid("a range cannot end with a class escape") }
                    bv = e.ranges[0].lowerBound
                } else {
                    pos += 1
                    bv = bc.value
                }
                guard a <= bv else { throw invalid("bad character range (end below start)") }
                set.insert(a...bv)
            } else {
                set.formUnion(lo)
            }
        }
        return negate ? set.inverted : set
    }
}

