import JSON

/// A JSON number as exact decimal digits: sign, integer digits (no leading zeros; `[0]` for
/// zero) and fraction digits (no trailing zeros).
struct Decimal10: Equatable {
    var negative: Bool
    var int: [UInt8]
    var frac: [UInt8]

    init(negative: Bool, int: [UInt8], frac: [UInt8]) {
        var i = Array(int.drop { $0 == 0 })
        if i.isEmpty { i = [0] }
        var f = frac
        while f.last == 0 { f.removeLast() }
        self.negative = negative && !(i == [0] && f.isEmpty)
        self.int = i
        self.frac = f
    }

    /// From a JSON number (a double through its shortest round-trip text, so `0.1` is 0.1).
    init?(_ v: OrderedJSON) {
        let text: String
        switch v {
        case .int(let i): text = String(i)
        case .double(let d) where d.isFinite: text = d.description
        default: return nil
        }
        var chars = Substring(text)
        let neg = chars.first == "-"
        if neg { chars = chars.dropFirst() }
        var exponent = 0
        if let e = chars.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let x = Int(chars[chars.index(after: e)...]) else { return nil }
            exponent = x
            chars = chars[..<e]
        }
        let parts = chars.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        var digits = parts[0].compactMap { $0.wholeNumberValue.map(UInt8.init) }
        var point = digits.count
        if parts.count == 2 { digits += parts[1].compactMap { $0.wholeNumberValue.map(UInt8.init) } }
        point += exponent
        guard abs(point) < 400 else { return nil }
        if point < 0 { digits = [UInt8](repeating: 0, count: -point) + digits; point = 0 }
        if point > digits.count { digits += [UInt8](repeating: 0, count: point - digits.count) }
        self.init(negative: neg, int: Array(digits[..<point]), frac: Array(digits[point...]))
    }

    var isZero: Bool { int == [0] && frac.isEmpty }
    var magnitude: Decimal10 { Decimal10(negative: false, int: int, frac: frac) }

    /// -1, 0, 1 as in `a < b`, `a == b`, `a > b` (magnitudes).
    static func compareMagnitude(_ a: Decimal10, _ b: Decimal10) -> Int {
        if a.int.count != b.int.count { return a.int.count < b.int.count ? -1 : 1 }
        let n = max(a.frac.count, b.frac.count)
        let x = a.int + a.frac + [UInt8](repeating: 0, count: n - a.frac.count)
        let y = b.int + b.frac + [UInt8](repeating: 0, count: n - b.frac.count)
        if x == y { return 0 }
        return x.lexicographicallyPrecedes(y) ? -1 : 1
    }

    static func compare(_ a: Decimal10, _ b: Decimal10) -> Int {
        if a.negative != b.negative { return a.negative ? -1 : 1 }
        let m = compareMagnitude(a, b)
        return a.negative ? -m : m
    }
}

/// One side of a range: the value and whether it is excluded.
struct DecimalBound {
    var value: Decimal10
    var strict: Bool

    func tighterLower(_ o: DecimalBound) -> DecimalBound {
        let c = Decimal10.compare(value, o.value)
        return c > 0 || (c == 0 && strict) ? self : o
    }

    func tighterUpper(_ o: DecimalBound) -> DecimalBound {
        let c = Decimal10.compare(value, o.value)
        return c < 0 || (c == 0 && strict) ? self : o
    }
}

/// The decimal numerals (`-?(0|[1-9][0-9]*)(\.[0-9]+)?`, no exponent) of the numbers between two
/// bounds, built exactly: a number is its sign, its integer part (a range of integers, through
/// `SchemaCompiler.digitRange`) and its fraction, whose digits are compared with the bound's one
/// position at a time.
struct DecimalRange {
    var builder: GrammarBuilder
    var memo: [String: [Grammar.Symbol]] = [:]

    init(builder: GrammarBuilder) { self.builder = builder }

    static let zero = Decimal10(negative: false, int: [0], frac: [])

    mutating func numbers(lo: DecimalBound?, hi: DecimalBound?) throws(GrammarError) -> [[Grammar.Symbol]] {
        if let lo, let hi {
            let c = Decimal10.compare(lo.value, hi.value)
            if c > 0 || (c == 0 && (lo.strict || hi.strict)) { return [] }
        }
        var alts: [[Grammar.Symbol]] = []
        // v ≥ 0: [max(lo, 0), hi].
        let nonnegPossible = hi.map { !$0.value.negative && !($0.value.isZero && $0.strict) } ?? true
        if nonnegPossible {
            var low = DecimalBound(value: Self.zero, strict: false)
            if let lo, !lo.value.negative { low = lo }
            alts += try magnitudes(lo: low, hi: hi)
        }
        // v < 0: "-" and a magnitude in (max(-hi, 0), -lo]; strictly above 0 (no "-0").
        let negPossible = lo.map { $0.value.negative } ?? true
        if negPossible {
            var low = DecimalBound(value: Self.zero, strict: true)
            if let hi, hi.value.negative { low = DecimalBound(value: hi.value.magnitude, strict: hi.strict) }
            let high = lo.map { DecimalBound(value: $0.value.magnitude, strict: $0.strict) }
            for alt in try magnitudes(lo: low, hi: high) { alts.append(GrammarBuilder.literal("-") + alt) }
        }
        return alts
    }

    /// Non-negative numerals in [lo, hi] (`hi` nil: unbounded above).
    mutating func magnitudes(lo: DecimalBound, hi: DecimalBound?) throws(GrammarError) -> [[Grammar.Symbol]] {
        if let hi {
            let c = Decimal10.compare(lo.value, hi.value)
            if c > 0 || (c == 0 && (lo.strict || hi.strict)) { return [] }
        }
        let li = lo.value.int
        let lit = GrammarBuilder.literal(li.map { $0 + 48 })
        var alts: [[Grammar.Symbol]] = []
        if let hi, hi.value.int == li {
            return try fractions(lo: lo.value.frac, loStrict: lo.strict, hi: hi.value.frac, hiStrict: hi.strict).map { lit + $0 }
        }
        // Integer part equal to lo's: the fraction carries lo's bound.
        alts += try fractions(lo: lo.value.frac, loStrict: lo.strict, hi: nil, hiStrict: false).map { lit + $0 }
        // Integer parts strictly between: any fraction.
        let next = Self.increment(li)
        let anyFrac = try fractions(lo: nil, loStrict: false, hi: nil, hiStrict: false)
        if let hi {
            let hiInt = hi.value.int
            if Decimal10.compareMagnitude(Decimal10(negative: false, int: next, frac: []), Decimal10(negative: false, int: hiInt, frac: [])) < 0 {
                let below = Self.decrement(hiInt)
                for i in try SchemaCompiler.digitRange(next, below, &builder) { for f in anyFrac { alts.append(i + f) } }
            }
            let hlit = GrammarBuilder.literal(hiInt.map { $0 + 48 })
            alts += try fractions(lo: nil, loStrict: false, hi: hi.value.frac, hiStrict: hi.strict).map { hlit + $0 }
        } else {
            for i in try SchemaCompiler.digitRange(next, nil, &builder) { for f in anyFrac { alts.append(i + f) } }
        }
        return alts
    }

    /// What may follow the integer part: nothing, or "." and digits F, with 0.F compared to 0.lo
    /// and 0.hi (nil: no bound on that side).
    mutating func fractions(lo: [UInt8]?, loStrict: Bool, hi: [UInt8]?, hiStrict: Bool) throws(GrammarError) -> [[Grammar.Symbol]] {
        var alts: [[Grammar.Symbol]] = []
        if Self.zeroAllowed(lo: lo, loStrict: loStrict, hi: hi, hiStrict: hiStrict) { alts.append([]) }
        let digits = try firstDigits(lo: lo, loStrict: loStrict, hi: hi, hiStrict: hiStrict)
        if !digits.isEmpty { alts.append(GrammarBuilder.literal(".") + (try builder.choice(digits))) }
        return alts
    }

    /// Whether 0 (the digits ending here) satisfies the remaining bounds.
    static func zeroAllowed(lo: [UInt8]?, loStrict: Bool, hi: [UInt8]?, hiStrict: Bool) -> Bool {
        if let lo {
            if lo.contains(where: { $0 != 0 }) || loStrict { return false }
        }
        if let hi, !hi.contains(where: { $0 != 0 }), hiStrict { return false }
        return true
    }

    /// Non-empty digit strings F with lo ≤ 0.F ≤ hi (the rest of the bounds' digits).
    mutating func firstDigits(lo: [UInt8]?, loStrict: Bool, hi: [UInt8]?, hiStrict: Bool) throws(GrammarError) -> [[Grammar.Symbol]] {
        var alts: [[Grammar.Symbol]] = []
        // Group the ten digits by what each leaves of the bounds.
        var groups: [(from: UInt8, to: UInt8, lo: [UInt8]?, hi: [UInt8]?)] = []
        for d in UInt8(0)...9 {
            var nlo: [UInt8]?, nhi: [UInt8]?
            if let lo {
                let l0 = lo.first ?? 0
                if d < l0 { continue }
                nlo = d == l0 ? Array(lo.dropFirst()) : nil
                if let n = nlo, n.isEmpty, !loStrict { nlo = nil }   // equal so far, rest ≥ 0: met
            }
            if let hi {
                let h0 = hi.first ?? 0
                if d > h0 { continue }
                nhi = d == h0 ? Array(hi.dropFirst()) : nil
            }
            if let last = groups.last, last.to + 1 == d, last.lo == nlo, last.hi == nhi {
                groups[groups.count - 1].to = d
            } else {
                groups.append((d, d, nlo, nhi))
            }
        }
        for g in groups {
            let digit = Grammar.Symbol.bytes(ByteSet((g.from + 48)...(g.to + 48)))
            let rest = try continuation(lo: g.lo, loStrict: loStrict, hi: g.hi, hiStrict: hiStrict)
            guard let rest else { continue }
            alts.append([digit] + rest)
        }
        return alts
    }

    /// What may follow a digit: more digits or nothing, as the remaining bounds allow; nil when
    /// nothing can (a dead end).
    mutating func continuation(lo: [UInt8]?, loStrict: Bool, hi: [UInt8]?, hiStrict: Bool) throws(GrammarError) -> [Grammar.Symbol]? {
        // Below an exhausted strict upper bound only zeros remain, and they never get below it.
        if let hi, hi.isEmpty, hiStrict { return nil }
        let key = "\(lo.map { $0.map(String.init).joined() } ?? "-")|\(loStrict)|\(hi.map { $0.map(String.init).joined() } ?? "-")|\(hiStrict)"
        if let m = memo[key] { return m }
        // A rule of its own, reserved first: "0" after an exhausted strict lower bound leads back here.
        let id = try builder.reserve("fraction")
        memo[key] = [.rule(id)]
        var alts: [[Grammar.Symbol]] = []
        if Self.zeroAllowed(lo: lo, loStrict: loStrict, hi: hi, hiStrict: hiStrict) { alts.append([]) }
        if lo == nil && hi == nil {
            alts.append(try builder.plus([SchemaCompiler.digit()]))
        } else {
            alts += try firstDigits(lo: lo, loStrict: loStrict, hi: hi, hiStrict: hiStrict)
        }
        try builder.define(id, alts)
        return [.rule(id)]
    }

    static func increment(_ d: [UInt8]) -> [UInt8] {
        var x = d
        var i = x.count - 1
        while i >= 0 {
            if x[i] < 9 { x[i] += 1; return x }
            x[i] = 0
            i -= 1
        }
        return [1] + x
    }

    /// d − 1 for d ≥ 1 (no leading zeros).
    static func decrement(_ d: [UInt8]) -> [UInt8] {
        var x = d
        var i = x.count - 1
        while i >= 0 {
            if x[i] > 0 { x[i] -= 1; break }
            x[i] = 9
            i -= 1
        }
        let t = Array(x.drop { $0 == 0 })
        return t.isEmpty ? [0] : t
    }
}
