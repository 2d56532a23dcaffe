/// Order-preserving JSON reader for `TemplateValue.parseJSON`.
struct JSONTextParser {
    let s: [Unicode.Scalar]
    var i = 0

    init(_ s: [Unicode.Scalar]) { self.s = s }

    mutating func parseDocument() throws(ChatTemplateError) -> TemplateValue {
        skipWS()
        let v = try parseValue(depth: 0)
        skipWS()
        if i != s.count { throw fail("trailing characters") }
        return v
    }

    func fail(_ m: String) -> ChatTemplateError { .invalidJSON("\(m) at offset \(i)") }

    mutating func skipWS() {
        while i < s.count, s[i] == " " || s[i] == "\n" || s[i] == "\r" || s[i] == "\t" { i += 1 }
    }

    mutating func expectWord(_ w: String) throws(ChatTemplateError) {
        for c in w.unicodeScalars {
            guard i < s.count, s[i] == c else { throw fail("invalid literal") }
            i += 1
        }
    }

    mutating func parseValue(depth: Int) throws(ChatTemplateError) -> TemplateValue {
        guard depth < 512 else { throw fail("nesting too deep") }
        guard i < s.count else { throw fail("unexpected end") }
        switch s[i] {
        case "{":
            i += 1
            var pairs: [(String, TemplateValue)] = []
            skipWS()
            if i < s.count, s[i] == "}" { i += 1; return .object(pairs) }
            while true {
                skipWS()
                guard i < s.count, s[i] == "\"" else { throw fail("expected a string key") }
                let k = try parseString()
                skipWS()
                guard i < s.count, s[i] == ":" else { throw fail("expected ':'") }
                i += 1
                skipWS()
                let v = try parseValue(depth: depth + 1)
                if let idx = pairs.firstIndex(where: { $0.0 == k }) { pairs[idx].1 = v } else { pairs.append((k, v)) }
                skipWS()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "}" { i += 1; return .object(pairs) }
                throw fail("expected ',' or '}'")
            }
        case "[":
            i += 1
            var items: [TemplateValue] = []
            skipWS()
            if i < s.count, s[i] == "]" { i += 1; return .array(items) }
            while true {
                skipWS()
                items.append(try parseValue(depth: depth + 1))
                skipWS()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "]" { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case "\"":
            return .string(try parseString())
        case "t": try expectWord("true"); return .bool(true)
        case "f": try expectWord("false"); return .bool(false)
        case "n": try expectWord("null"); return .null
        default:
            return try parseNumber()
        }
    }

    mutating func parseNumber() throws(ChatTemplateError) -> TemplateValue {
        let start = i
        var isFloat = false
        if i < s.count, s[i] == "-" { i += 1 }
        while i < s.count {
            let c = s[i]
            if c >= "0" && c <= "9" { i += 1; continue }
            if c == "." || c == "e" || c == "E" || ((c == "+" || c == "-") && i > start && (s[i - 1] == "e" || s[i - 1] == "E")) {
                isFloat = true
                i += 1
                continue
            }
            break
        }
        let text = String(String.UnicodeScalarView(s[start..<i]))
        if text.isEmpty || text == "-" { throw fail("invalid value") }
        if !isFloat, let n = Int(text) { return .int(n) }
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }

    mutating func hex4() throws(ChatTemplateError) -> UInt32 {
        guard i + 4 <= s.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = hexDigit(s[i]) else { throw fail("bad \\u escape") }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func parseString() throws(ChatTemplateError) -> String {
        i += 1 // opening quote
        var out = String.UnicodeScalarView()
        while true {
            guard i < s.count else { throw fail("unterminated string") }
            let c = s[i]
            i += 1
            if c == "\"" { break }
            if c != "\\" { out.append(c); continue }
            guard i < s.count else { throw fail("unterminated string") }
            let e = s[i]
            i += 1
            switch e {
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "/": out.append("/")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "u":
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00, i + 6 <= s.count, s[i] == "\\", s[i + 1] == "u" {
                    let save = i
                    i += 2
                    let lo = try hex4()
                    if lo >= 0xDC00 && lo < 0xE000 {
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        i = save
                    }
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: throw fail("bad escape")
            }
        }
        return String(out)
    }
}

func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
    switch c {
    case "0"..."9": return c.value - 48
    case "a"..."f": return c.value - 87
    case "A"..."F": return c.value - 55
    default: return nil
    }
}
