import Grammar
import JSON
import Testing

/// Bounded non-integer numbers (`minimum`, `maximum` and their exclusive forms on "number"),
/// checked against integer arithmetic: every numeral `-?I(.F)?` with I ≤ 12 and up to three
/// fraction digits (trailing zeros included) is accepted exactly when its value, times 1000,
/// lies within the bounds times 1000.
struct NumberBoundsTests {
    /// Bounds as JSON text ("" for absent) with at most three fraction digits.
    static let cases: [(min: String, exMin: String, max: String, exMax: String)] = [
        ("0.5", "", "", ""), ("", "", "2.25", ""), ("", "-1.5", "3", ""), ("-2.75", "", "", "-0.5"),
        ("1", "", "1", ""), ("", "0", "", "0.01"), ("2.5", "", "2.75", ""), ("10", "", "11.5", ""),
        ("-0.25", "", "0.25", ""), ("", "-3", "", "-2.99"), ("0.1", "0.1", "0.9", "0.9"), ("-12", "", "12", ""),
    ]

    static func scaled(_ s: String) -> Int {
        let neg = s.hasPrefix("-")
        let body = neg ? String(s.dropFirst()) : s
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        var v = Int(parts[0])! * 1000
        if parts.count == 2 {
            let f = String(parts[1]) + String(repeating: "0", count: 3 - parts[1].count)
            v += Int(f)!
        }
        return neg ? -v : v
    }

    static var numerals: [String] {
        var out: [String] = []
        var fracs = [""]
        for n in 1...3 {
            for k in 0..<Int(pow10(n)) {
                let digits = String(k)
                fracs.append("." + String(repeating: "0", count: n - digits.count) + digits)
            }
        }
        for i in 0...12 {
            for f in fracs {
                out.append("\(i)\(f)")
                if i > 0 || f.contains(where: { $0 != "0" && $0 != "." }) { out.append("-\(i)\(f)") }
            }
        }
        return out
    }

    static func pow10(_ n: Int) -> Double { n == 0 ? 1 : 10 * pow10(n - 1) }

    @Test(arguments: Array(cases.indices))
    func acceptsExactlyTheNumbersInRange(_ k: Int) throws {
        let c = Self.cases[k]
        var fields = [#""type":"number""#]
        for (key, v) in [("minimum", c.min), ("exclusiveMinimum", c.exMin), ("maximum", c.max), ("exclusiveMaximum", c.exMax)] where !v.isEmpty {
            fields.append("\"\(key)\":\(v)")
        }
        let g = try JSONSchemaGrammar.grammar(try OrderedJSON.parse("{" + fields.joined(separator: ",") + "}"))
        var accepted = 0
        for text in Self.numerals {
            let v = Self.scaled(text)
            var ok = true
            if !c.min.isEmpty { ok = ok && v >= Self.scaled(c.min) }
            if !c.exMin.isEmpty { ok = ok && v > Self.scaled(c.exMin) }
            if !c.max.isEmpty { ok = ok && v <= Self.scaled(c.max) }
            if !c.exMax.isEmpty { ok = ok && v < Self.scaled(c.exMax) }
            var m = GrammarMatcher(g)
            let got = m.advance(Array(text.utf8)) && m.isAccepting
            #expect(got == ok, "\(fields): \(text)")
            if got { accepted += 1 }
        }
        #expect(accepted > 0)
    }

    @Test func emptyRangesAreRefused() throws {
        for text in [#"{"type":"number","minimum":2.5,"maximum":2.25}"#, #"{"type":"number","exclusiveMinimum":1.5,"maximum":1.5}"#] {
            #expect(throws: GrammarError.self) { try JSONSchemaGrammar.grammar(try OrderedJSON.parse(text)) }
        }
        // A bound with an exponent is read exactly: 1.5e-2 is 0.015.
        let g = try JSONSchemaGrammar.grammar(try OrderedJSON.parse(#"{"type":"number","minimum":1.5e-2,"maximum":2e1}"#))
        for (text, ok) in [("0.015", true), ("0.0149", false), ("20", true), ("20.0001", false), ("7.25", true)] {
            var m = GrammarMatcher(g)
            #expect((m.advance(Array(text.utf8)) && m.isAccepting) == ok, "\(text)")
        }
    }
}
