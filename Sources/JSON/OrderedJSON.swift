/// A JSON document that keeps object members in their written order (and keeps duplicate keys).
/// `JSONValue` (parsed by Foundation's decoder) loses member order; a JSON Schema's `properties`
/// order matters to constrained decoding (outputs follow the declared order), so schemas are read
/// with this parser.
public indirect enum OrderedJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([OrderedJSON])
    case object([OrderedJSON.Member])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: OrderedJSON
        public init(key: String, value: OrderedJSON) { self.key = key; self.value = value }
    }

    /// Why a document is not JSON, and the byte offset where that was found.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public init(offset: Int, reason: String) { self.offset = offset; self.reason = reason }
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// Objects nested deeper than this (arrays and objects together) are refused.
    public static let maxNesting = 512

    /// The member named `key`. With duplicate keys the LAST one wins (as JavaScript's
    /// `JSON.parse` and Python's `json` do); `members` still holds every one, in order.
    public subscript(key: String) -> OrderedJSON? {
        guard case .object(let ms) = self else { return nil }
        return ms.last { $0.key == key }?.value
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    /// The integer value; also a double with no fractional part that fits an Int exactly.
    public var int: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9.007_199_254_740_992e15: return Int(d)
        default: return nil
        }
    }
    /// The numeric value (integers widened).
    public var double: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [OrderedJSON]? { if case .array(let a) = self { return a }; return nil }
    public var members: [Member]? { if case .object(let m) = self { return m }; return nil }
    public var isNull: Bool { self == .null }

    /// The JSON type name, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// From a `JSONValue` (whose objects have no order: members come out sorted by key).
    public init(_ v: JSONValue) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(OrderedJSON.init))
        case .object(let o):
            self = .object(o.keys.sorted().compactMap { k in o[k].map { Member(key: k, value: OrderedJSON($0)) } })
        }
    }

    /// As a `JSONValue` (member order is lost; with duplicate keys the last wins).
    public var jsonValue: JSONValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(\.jsonValue))
        case .object(let ms):
            var o: [String: JSONValue] = [:]
            for m in ms { o[m.key] = m.value.jsonValue }
            return .object(o)
        }
    }

    /// Compact JSON text, members in order. Strings escape `"`, `\` and control characters (the
    /// short forms where RFC 8259 has them, `\u00XX` otherwise); everything else is written as
    /// UTF-8. Non-finite doubles (which JSON cannot carry) are written as null.
    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite { out += "null" } else if d == d.rounded(), abs(d) < 1e15 {
                out += String(Int(d)) + ".0"
            } else { out += "\(d)" }
        case .string(let s): OrderedJSON.writeString(s, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let ms):
            out += "{"
            for (i, m) in ms.enumerated() {
                if i > 0 { out += "," }
                OrderedJSON.writeString(m.key, to: &out)
                out += ":"
                m.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// `s` as a JSON string literal (with the quotes).
    public static func quoted(_ s: String) -> String {
        var out = ""
        writeString(s, to: &out)
        return out
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    let hex = Array("0123456789abcdef")
                    out += "\\u00" + String(hex[Int(u.value >> 4)]) + String(hex[Int(u.value & 15)])
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    // MARK: - Parsing (RFC 8259)

    public static func parse(_ text: String) throws(ParseError) -> OrderedJSON {
        try parse(Array(text.utf8))
    }

    /// Parses one JSON text (whitespace around it allowed, nothing else after it). Integers that do
    /// not fit an Int parse as doubles.
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> OrderedJSON {
        var p = Parser(bytes: bytes)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.pos == bytes.count else { throw p.error("unexpected \(p.describeCurrent()) after the JSON value") }
        return v
    }

    struct Parser {
        let bytes: [UInt8]
        var pos = 0

        func error(_ reason: String) -> ParseError { ParseError(offset: pos, reason: reason) }

        func describeCurrent() -> String {
            guard pos < bytes.count else { return "end of input" }
            let b = bytes[pos]
            return b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16))"
        }

        mutating func skipWhitespace() {
            while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
        }

        mutating func expectLiteral(_ word: String, _ v: OrderedJSON) throws(ParseError) -> OrderedJSON {
            let start = pos
            for c in word.utf8 {
                guard pos < bytes.count, bytes[pos] == c else { throw ParseError(offset: start, reason: "expected '\(word)'") }
                pos += 1
            }
            return v
        }

        mutating func value(depth: Int) throws(ParseError) -> OrderedJSON {
            guard pos < bytes.count else { throw error("expected a value, found end of input") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                guard depth < OrderedJSON.maxNesting else { throw error("nested deeper than \(OrderedJSON.maxNesting) levels") }
                pos += 1
                skipWhitespace()
                var ms: [Member] = []
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(ms) }
                while true {
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                        throw error("expected a member name (a string), found \(describeCurrent())")
                    }
                    let k = try string()
                    skipWhitespace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                        throw error("expected ':' after a member name, found \(describeCurrent())")
                    }
                    pos += 1
                    skipWhitespace()
                    let v = try value(depth: depth + 1)
                    ms.append(Member(key: k, value: v))
                    skipWhitespace()
                    guard pos < bytes.count else { throw error("unterminated object: expected ',' or '}'") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; skipWhitespace(); continue }
                    if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(ms) }
                    throw error("expected ',' or '}' in an object, found \(describeCurrent())")
                }
            case UInt8(ascii: "["):
                guard depth < OrderedJSON.maxNesting else { throw error("nested deeper than \(OrderedJSON.maxNesting) levels") }
                pos += 1
                skipWhitespace()
                var a: [OrderedJSON] = []
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(a) }
                while true {
                    a.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard pos < bytes.count else { throw error("unterminated array: expected ',' or ']'") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; skipWhitespace(); continue }
                    if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(a) }
                    throw error("expected ',' or ']' in an array, found \(describeCurrent())")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expectLiteral("true", .bool(true))
            case UInt8(ascii: "f"): return try expectLiteral("false", .bool(false))
            case UInt8(ascii: "n"): return try expectLiteral("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("expected a value, found \(describeCurrent())")
            }
        }

        func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }

        mutating func number() throws(ParseError) -> OrderedJSON {
            let start = pos
            var integral = true
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard isDigit(pos) else { throw error("expected a digit in a number") }
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
                if isDigit(pos) { throw error("a number may not have a leading zero") }
            } else {
                while isDigit(pos) { pos += 1 }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                integral = false
                pos += 1
                guard isDigit(pos) else { throw error("expected a digit after the decimal point") }
                while isDigit(pos) { pos += 1 }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                integral = false
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard isDigit(pos) else { throw error("expected a digit in the exponent") }
                while isDigit(pos) { pos += 1 }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if integral, let i = Int(text) { return .int(i) }
            guard let d = Double(text) else { throw ParseError(offset: start, reason: "number '\(text)' is out of range") }
            return .double(d)
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard pos < bytes.count else { throw error("unterminated \\u escape") }
                let b = bytes[pos]
                let d: UInt32
                switch b {
                case 0x30...0x39: d = UInt32(b - 0x30)
                case 0x41...0x46: d = UInt32(b - 0x41 + 10)
                case 0x61...0x66: d = UInt32(b - 0x61 + 10)
                default: throw error("expected a hex digit in a \\u escape, found \(describeCurrent())")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }

        /// A string literal starting at the opening quote; validates UTF-8 and escapes.
        mutating func string() throws(ParseError) -> String {
            pos += 1
            var out: [UInt8] = []
            while true {
                guard pos < bytes.count else { throw error("unterminated string") }
                let b = bytes[pos]
                switch b {
                case UInt8(ascii: "\""):
                    pos += 1
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    pos += 1
                    guard pos < bytes.count else { throw error("unterminated escape") }
                    let e = bytes[pos]
                    pos += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var v = try hex4()
                        if (0xD800..<0xDC00).contains(v) {
                            // A high surrogate must be followed by an escaped low one.
                            guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                                throw error("a high surrogate \\u escape must be followed by a low surrogate")
                            }
                            pos += 2
                            let lo = try hex4()
                            guard (0xDC00..<0xE000).contains(lo) else { throw error("expected a low surrogate \\u escape") }
                            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(v) {
                            throw error("a lone low surrogate \\u escape")
                        }
                        guard let u = Unicode.Scalar(v) else { throw error("invalid \\u escape") }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default:
                        pos -= 2
                        throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                    }
                case 0x00..<0x20:
                    throw error("a control character (0x\(String(b, radix: 16))) must be escaped in a string")
                case 0x00..<0x80:
                    out.append(b)
                    pos += 1
                default:
                    let n = try utf8Length(at: pos)
                    out.append(contentsOf: bytes[pos..<pos + n])
                    pos += n
                }
            }
        }

        /// The length of the well-formed UTF-8 sequence at `i` (Unicode table 3-7), or an error.
        func utf8Length(at i: Int) throws(ParseError) -> Int {
            let b0 = bytes[i]
            let n: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: n = 2
            case 0xE0: n = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: n = 3
            case 0xED: n = 3; hi = 0x9F
            case 0xF0: n = 4; lo = 0x90
            case 0xF1...0xF3: n = 4
            case 0xF4: n = 4; hi = 0x8F
            default: throw error("invalid UTF-8 byte 0x\(String(b0, radix: 16))")
            }
            guard i + n <= bytes.count else { throw error("truncated UTF-8 sequence") }
            for k in 1..<n {
                let c = bytes[i + k]
                let (l, h) = k == 1 ? (lo, hi) : (UInt8(0x80), UInt8(0xBF))
                guard c >= l && c <= h else { throw ParseError(offset: i + k, reason: "invalid UTF-8 continuation byte 0x\(String(c, radix: 16))") }
            }
            return n
        }
    }
}

extension OrderedJSON: CustomStringConvertible {
    public var description: String { serialized() }
}
