/// An ordered YAML value: mappings keep insertion order, so output is byte-for-byte
/// deterministic (GitOps diffs) and keys read in a human order (apiVersion, kind, metadata, spec).
public indirect enum YAMLValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    /// A finite number, written in Swift's shortest round-trip form (`0.9`).
    case double(Double)
    case bool(Bool)
    case list([YAMLValue])
    case map([YAMLField])

    public subscript(key: String) -> YAMLValue? {
        if case .map(let fields) = self { return fields.first(where: { $0.key == key })?.value }
        return nil
    }
}

public struct YAMLField: Sendable, Equatable {
    public var key: String
    public var value: YAMLValue
    public init(_ key: String, _ value: YAMLValue) {
        self.key = key
        self.value = value
    }
}

/// Builds a mapping, skipping nil values: `.obj(("a", .string("x")), ("b", nil))`.
extension YAMLValue {
    public static func obj(_ fields: (String, YAMLValue?)...) -> YAMLValue {
        .map(fields.compactMap { k, v in v.map { YAMLField(k, $0) } })
    }
    public static func str(_ s: String?) -> YAMLValue? { s.map { .string($0) } }
    static func num(_ i: Int?) -> YAMLValue? { i.map { .int($0) } }
    public static func strings(_ a: [String]) -> YAMLValue { .list(a.map { .string($0) }) }
}

public enum YAMLEmitter {
    /// One YAML document (no leading `---`), ending in a newline.
    public static func emit(_ value: YAMLValue) -> String {
        var out = ""
        switch value {
        case .map(let fields) where !fields.isEmpty:
            emitMap(fields, indent: 0, into: &out)
        case .list(let items) where !items.isEmpty:
            emitList(items, indent: 0, into: &out)
        default:
            out += inline(value, indent: 0) + "\n"
        }
        return out
    }

    /// A multi-document stream: every document starts with `---`.
    public static func emitStream(_ docs: [YAMLValue]) -> String {
        docs.map { "---\n" + emit($0) }.joined()
    }

    private static func pad(_ n: Int) -> String { String(repeating: " ", count: n) }

    private static func isBlock(_ v: YAMLValue) -> Bool {
        switch v {
        case .map(let f): return !f.isEmpty
        case .list(let l): return !l.isEmpty
        default: return false
        }
    }

    private static func emitMap(_ fields: [YAMLField], indent: Int, into out: inout String) {
        for f in fields {
            out += pad(indent) + quote(f.key) + ":"
            emitValueAfterKey(f.value, indent: indent, into: &out)
        }
    }

    private static func emitValueAfterKey(_ v: YAMLValue, indent: Int, into out: inout String) {
        switch v {
        case .map(let sub) where !sub.isEmpty:
            out += "\n"
            emitMap(sub, indent: indent + 2, into: &out)
        case .list(let items) where !items.isEmpty:
            out += "\n"
            emitList(items, indent: indent + 2, into: &out)
        default:
            out += " " + inline(v, indent: indent + 2) + "\n"
        }
    }

    private static func emitList(_ items: [YAMLValue], indent: Int, into out: inout String) {
        for item in items {
            switch item {
            case .map(let fields) where !fields.isEmpty:
                // First field on the dash line, the rest aligned under it.
                out += pad(indent) + "- " + quote(fields[0].key) + ":"
                emitValueAfterKey(fields[0].value, indent: indent + 2, into: &out)
                emitMap(Array(fields.dropFirst()), indent: indent + 2, into: &out)
            case .list(let sub) where !sub.isEmpty:
                out += pad(indent) + "-\n"
                emitList(sub, indent: indent + 2, into: &out)
            default:
                out += pad(indent) + "- " + inline(item, indent: indent + 2) + "\n"
            }
        }
    }

    private static func inline(_ v: YAMLValue, indent: Int) -> String {
        switch v {
        case .string(let s): return scalar(s, indent: indent)
        case .int(let i): return String(i)
        case .double(let d): return "\(d)"
        case .bool(let b): return b ? "true" : "false"
        case .map: return "{}"
        case .list: return "[]"
        }
    }

    /// Multi-line strings become literal blocks (`|`); everything else goes through `quote`.
    private static func scalar(_ s: String, indent: Int) -> String {
        if s.contains("\n"), canBeLiteralBlock(s) {
            let chomp = s.hasSuffix("\n") ? "" : "-"
            var body = s
            if body.hasSuffix("\n") { body.removeLast() }
            let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
            return "|" + chomp + lines.map { $0.isEmpty ? "\n" : "\n" + pad(indent) + $0 }.joined()
        }
        return quote(s)
    }

    private static func canBeLiteralBlock(_ s: String) -> Bool {
        guard let first = s.first, first != " ", first != "\n", !s.hasSuffix("\n\n") else { return false }
        // No trailing spaces on lines, no tabs or control characters (keep them in quoted form).
        for line in s.split(separator: "\n", omittingEmptySubsequences: false) where line.hasSuffix(" ") { return false }
        return !s.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" } && !s.contains("\r")
    }

    /// Plain when unambiguous as a string in YAML 1.1 and 1.2; double-quoted otherwise.
    static func quote(_ s: String) -> String {
        if isSafePlain(s) { return s }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    let hex = String(u.value, radix: 16, uppercase: true)
                    out += "\\x" + String(repeating: "0", count: max(0, 2 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    private static let reserved: Set<String> = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "<<", "=",
    ]

    private static func isSafePlain(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return false }
        if reserved.contains(s.lowercased()) { return false }
        // Anything that could read as a number, date or time is quoted.
        if first == "." || first == "-" || first == "+" || ("0"..."9").contains(first) { return false }
        guard ("a"..."z").contains(first) || ("A"..."Z").contains(first) || first == "/" || first == "_" else { return false }
        if last == " " || last == ":" { return false }
        if s.contains(": ") || s.contains(" #") { return false }
        let allowed: (Unicode.Scalar) -> Bool = { u in
            ("a"..."z").contains(u) || ("A"..."Z").contains(u) || ("0"..."9").contains(u)
                || "-_./:@+=% ()".unicodeScalars.contains(u)
        }
        return s.unicodeScalars.allSatisfy(allowed)
    }
}
