/// A context-free grammar over bytes: what constrained decoding enforces. JSON Schemas, regular
/// expressions, choice lists and tool-call formats compile to one of these; `GrammarMatcher` runs it
/// one byte at a time and `TokenMasker` turns its state into the set of tokens a model may emit next.
///
/// A rule is a list of alternatives; an alternative is a sequence of symbols; a symbol matches one
/// byte out of a set, or a whole rule. The empty alternative matches nothing. Rules may recurse,
/// but not on the left (`build` refuses that: the matcher could not expand it).
public struct Grammar: Sendable, CustomStringConvertible {
    public enum Symbol: Hashable, Sendable {
        case bytes(ByteSet)
        case rule(Int)
    }

    public struct Rule: Sendable {
        public var name: String
        public var alternatives: [[Symbol]]
    }

    public let rules: [Rule]
    public let root: Int

    /// True when no byte string at all is a sentence of the grammar (e.g. a pattern with an
    /// empty class `[^\s\S]`, anywhere in it). A rule derives some string when one of its
    /// alternatives has only non-empty byte sets and rules that do (a fixed point).
    public var admitsNothing: Bool {
        var derives = [Bool](repeating: false, count: rules.count)
        var changed = true
        while changed {
            changed = false
            for (i, r) in rules.enumerated() where !derives[i] {
                let some = r.alternatives.contains { alt in
                    alt.allSatisfy { s in
                        switch s {
                        case .bytes(let b): return !b.isEmpty
                        case .rule(let k): return derives.indices.contains(k) && derives[k]
                        }
                    }
                }
                if some { derives[i] = true; changed = true }
            }
        }
        return !(derives.indices.contains(root) && derives[root])
    }

    /// GBNF-like text, for error messages and tests.
    public var description: String {
        rules.enumerated().map { i, r in
            let alts = r.alternatives.map { alt in
                alt.isEmpty ? "\"\"" : alt.map { s -> String in
                    switch s {
                    case .bytes(let b): return b.description
                    case .rule(let k): return rules[k].name
                    }
                }.joined(separator: " ")
            }
            return "\(r.name)\(i == root ? " (root)" : "") ::= " + alts.joined(separator: " | ")
        }.joined(separator: "\n")
    }
}

public enum GrammarError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A rule was reserved and never given alternatives.
    case undefinedRule(String)
    /// A rule can reach itself without consuming a byte (left recursion, or a loop over something
    /// that may be empty).
    case leftRecursion(String)
    /// The grammar is larger than the limit (rules or symbols).
    case tooLarge(String)
    /// A schema, pattern or format the compiler does not support; the message names it.
    case unsupported(String)
    /// The input is not a valid schema / pattern; the message says where and why.
    case invalid(String)

    public var description: String {
        switch self {
        case .undefinedRule(let n): return "grammar rule '\(n)' is used but never defined"
        case .leftRecursion(let n): return "grammar rule '\(n)' can reach itself without consuming input (left recursion or a loop over something empty); rewrite it right-recursive"
        case .tooLarge(let m): return "the grammar is too large: \(m)"
        case .unsupported(let m): return m
        case .invalid(let m): return m
        }
    }
}

/// A set of byte values (a 256-bit map).
public struct ByteSet: Hashable, Sendable, CustomStringConvertible {
    var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    public init() {}
    public init(_ byte: UInt8) { insert(byte) }
    public init(_ range: ClosedRange<UInt8>) { for b in range { insert(b) } }
    public init<S: Sequence>(bytes: S) where S.Element == UInt8 { for b in bytes { insert(b) } }

    public static let all: ByteSet = ByteSet(0...255)

    public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    public mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    public mutating func insert(_ range: ClosedRange<UInt8>) { for b in range { insert(b) } }
    public mutating func formUnion(_ o: ByteSet) { w0 |= o.w0; w1 |= o.w1; w2 |= o.w2; w3 |= o.w3 }
    public func union(_ o: ByteSet) -> ByteSet { var s = self; s.formUnion(o); return s }
    public func subtracting(_ o: ByteSet) -> ByteSet {
        var s = self
        s.w0 &= ~o.w0; s.w1 &= ~o.w1; s.w2 &= ~o.w2; s.w3 &= ~o.w3
        return s
    }
    public var inverted: ByteSet { ByteSet.all.subtracting(self) }
    public var isEmpty: Bool { w0 | w1 | w2 | w3 == 0 }
    public var count: Int { w0.nonzeroBitCount + w1.nonzeroBitCount + w2.nonzeroBitCount + w3.nonzeroBitCount }

    /// The bytes in the set, ascending.
    public var members: [UInt8] { (0...255).compactMap { contains(UInt8($0)) ? UInt8($0) : nil } }

    func hex(_ b: UInt8) -> String {
        let d = Array("0123456789ABCDEF")
        return String([d[Int(b >> 4)], d[Int(b & 15)]])
    }

    public var description: String {
        let m = members
        if m.count == 1 {
            let b = m[0]
            return b >= 0x20 && b < 0x7F && b != 0x22 && b != 0x5C ? "\"\(Character(Unicode.Scalar(b)))\"" : "[\\x" + hex(b) + "]"
        }
        var parts: [String] = []
        var i = 0
        func show(_ b: UInt8) -> String {
            b >= 0x21 && b < 0x7F && b != 0x5D && b != 0x5C && b != 0x2D ? String(Character(Unicode.Scalar(b))) : "\\x" + hex(b)
        }
        while i < m.count {
            var j = i
            while j + 1 < m.count && m[j + 1] == m[j] + 1 { j += 1 }
            parts.append(j > i ? "\(show(m[i]))-\(show(m[j]))" : show(m[i]))
            i = j + 1
        }
        return "[" + parts.joined() + "]"
    }
}

/// Builds a `Grammar`: rules by name, combinators for the usual operators (all right-recursive, so
/// the result always passes `build`'s left-recursion check when the pieces do).
public struct GrammarBuilder: Sendable {
    public typealias Symbol = Grammar.Symbol
    var rules: [Grammar.Rule?] = []
    var names: [String] = []
    var byName: [String: Int] = [:]
    /// Rules made by the combinators, keyed by what they contain (so equal pieces are shared).
    var shared: [SharedKey: Int] = [:]

    struct SharedKey: Hashable {
        var kind: String
        var alternatives: [[Symbol]]
    }

    /// Upper bounds that keep a hostile schema from building a grammar that exhausts memory.
    public var maxRules = 50_000
    public var maxSymbols = 2_000_000
    var symbolCount = 0

    public init() {}

    /// A fresh rule id whose alternatives come later (`define`); for recursion. The name is made
    /// unique by a numeric suffix when taken.
    public mutating func reserve(_ name: String) throws(GrammarError) -> Int {
        guard rules.count < maxRules else { throw .tooLarge("more than \(maxRules) rules") }
        var unique = name
        var k = 1
        while byName[unique] != nil { k += 1; unique = "\(name)-\(k)" }
        byName[unique] = rules.count
        names.append(unique)
        rules.append(nil)
        return rules.count - 1
    }

    public mutating func define(_ id: Int, _ alternatives: [[Symbol]]) throws(GrammarError) {
        symbolCount += alternatives.reduce(0) { $0 + $1.count }
        guard symbolCount <= maxSymbols else { throw .tooLarge("more than \(maxSymbols) symbols") }
        rules[id] = Grammar.Rule(name: names[id], alternatives: alternatives)
    }

    /// A new rule with these alternatives.
    public mutating func add(_ name: String, _ alternatives: [[Symbol]]) throws(GrammarError) -> Int {
        let id = try reserve(name)
        try define(id, alternatives)
        return id
    }

    /// The id of a rule already added under exactly this name.
    public func rule(named name: String) -> Int? { byName[name] }

    mutating func sharedRule(_ kind: String, _ alternatives: [[Symbol]]) throws(GrammarError) -> Int {
        let key = SharedKey(kind: kind, alternatives: alternatives)
        if let id = shared[key] { return id }
        let id = try add(kind, alternatives)
        shared[key] = id
        return id
    }

    // MARK: - Combinators (sequences of symbols in, sequences out)

    /// The bytes of `s`, one symbol each.
    public static func literal(_ s: String) -> [Symbol] { literal(Array(s.utf8)) }
    public static func literal(_ bytes: [UInt8]) -> [Symbol] { bytes.map { .bytes(ByteSet($0)) } }

    /// One of the alternatives (a rule of its own unless there is only one).
    public mutating func choice(_ alternatives: [[Symbol]]) throws(GrammarError) -> [Symbol] {
        if alternatives.count == 1 { return alternatives[0] }
        return [.rule(try sharedRule("alt", alternatives))]
    }

    /// `x?`
    public mutating func optional(_ x: [Symbol]) throws(GrammarError) -> [Symbol] {
        [.rule(try sharedRule("opt", [x, []]))]
    }

    /// `x*` as `R ::= x R | ""`.
    public mutating func star(_ x: [Symbol]) throws(GrammarError) -> [Symbol] {
        let key = SharedKey(kind: "star", alternatives: [x])
        if let id = shared[key] { return [.rule(id)] }
        let id = try reserve("star")
        try define(id, [x + [.rule(id)], []])
        shared[key] = id
        return [.rule(id)]
    }

    /// `x+`
    public mutating func plus(_ x: [Symbol]) throws(GrammarError) -> [Symbol] { x + (try star(x)) }

    /// `x{min,max}` (`max` nil: unbounded). Bounded repeats nest optionals, so `x{0,3}` is
    /// `(x (x (x)?)?)?` and stays unambiguous.
    public mutating func `repeat`(_ x: [Symbol], min: Int, max: Int?) throws(GrammarError) -> [Symbol] {
        guard min >= 0, max.map({ $0 >= min }) ?? true else {
            throw .invalid("a repeat needs 0 ≤ min ≤ max, got {\(min),\(max.map(String.init) ?? "")}")
        }
        let limit = 10_000
        guard min <= limit, (max ?? 0) <= limit else { throw .tooLarge("a repeat count above \(limit)") }
        var out: [Symbol] = []
        for _ in 0..<min { out += x }
        if let max {
            var tail: [Symbol] = []
            for _ in 0..<(max - min) { tail = try optional(x + tail) }
            out += tail
        } else {
            out += try star(x)
        }
        return out
    }

    /// Checks that every rule is defined and none recurses on the left; returns the grammar.
    public func build(root: Int) throws(GrammarError) -> Grammar {
        var done: [Grammar.Rule] = []
        done.reserveCapacity(rules.count)
        for (i, r) in rules.enumerated() {
            guard let r else { throw .undefinedRule(names[i]) }
            done.append(r)
        }
        // The matcher indexes rules by these numbers: a root or a reference outside the rules
        // (an empty builder, a symbol made by hand) is refused here rather than crashing it.
        guard done.indices.contains(root) else {
            throw .invalid("the grammar has no rule \(root) to start from (it defines \(done.count) rules)")
        }
        for r in done {
            for alt in r.alternatives {
                for case .rule(let k) in alt where !done.indices.contains(k) {
                    throw .undefinedRule("#\(k) (referenced by '\(r.name)')")
                }
            }
        }
        // Nullable rules (fixed point), then the "starts with" graph through nullable prefixes.
        var nullable = [Bool](repeating: false, count: done.count)
        var changed = true
        while changed {
            changed = false
            for (i, r) in done.enumerated() where !nullable[i] {
                let n = r.alternatives.contains { alt in
                    alt.allSatisfy { if case .rule(let k) = $0 { return nullable[k] } else { return false } }
                }
                if n { nullable[i] = true; changed = true }
            }
        }
        var edges = [[Int]](repeating: [], count: done.count)
        for (i, r) in done.enumerated() {
            for alt in r.alternatives {
                for s in alt {
                    guard case .rule(let k) = s else { break }
                    edges[i].append(k)
                    if !nullable[k] { break }
                }
            }
        }
        // Iterative DFS for a cycle (0 unvisited, 1 on the stack, 2 done).
        var state = [UInt8](repeating: 0, count: done.count)
        for start in 0..<done.count where state[start] == 0 {
            var stack: [(Int, Int)] = [(start, 0)]
            state[start] = 1
            while let (v, e) = stack.last {
                if e < edges[v].count {
                    stack[stack.count - 1].1 += 1
                    let w = edges[v][e]
                    if state[w] == 1 { throw .leftRecursion(done[w].name) }
                    if state[w] == 0 { state[w] = 1; stack.append((w, 0)) }
                } else {
                    state[v] = 2
                    stack.removeLast()
                }
            }
        }
        return Grammar(rules: done, root: root)
    }
}
