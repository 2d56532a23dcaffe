import Yams

/// A position in a YAML source file (1-based line and column).
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public static func < (a: SourcePosition, b: SourcePosition) -> Bool {
        (a.line, a.column) < (b.line, b.column)
    }
    public var description: String { "\(line):\(column)" }
}

/// A YAML node that remembers where it came from. The spec decoder walks these
/// (not Codable) so every error can carry `file:line:column` and a key path.
public indirect enum PNode: Sendable, Equatable {
    /// `quoted` is true for single/double-quoted and block scalars: their text is a string, never an int/bool.
    case scalar(String, quoted: Bool, pos: SourcePosition)
    case mapping([PEntry], pos: SourcePosition)
    case sequence([PNode], pos: SourcePosition)

    public var pos: SourcePosition {
        switch self {
        case .scalar(_, _, let p), .mapping(_, let p), .sequence(_, let p): return p
        }
    }

    /// A plain `~`, `null` or empty scalar: treated as "not set".
    public var isNull: Bool {
        if case .scalar(let s, let quoted, _) = self, !quoted {
            return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
        }
        return false
    }

    var kindName: String {
        switch self {
        case .scalar(let s, let quoted, _):
            if isNull { return "null" }
            return quoted ? "string \"\(abbreviated(s))\"" : "'\(abbreviated(s))'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    public subscript(key: String) -> PNode? {
        if case .mapping(let entries, _) = self {
            return entries.first(where: { $0.key == key })?.value
        }
        return nil
    }
}

public struct PEntry: Sendable, Equatable {
    public var key: String
    public var keyPos: SourcePosition
    public var value: PNode
    public init(key: String, keyPos: SourcePosition, value: PNode) {
        self.key = key
        self.keyPos = keyPos
        self.value = value
    }
}

enum YAMLTree {
    /// The one diagnostic for anchors and aliases (they are refused, never expanded).
    static func anchorMessage(_ token: String) -> String {
        "YAML anchors/aliases (&name, *name) are not supported in autoglm.yaml (found '\(token)'); write the value out or use 'environments' overlays"
    }

    /// Parses one YAML document into a positioned tree. Throws `SpecError` for
    /// malformed YAML (with line/column), an empty document, or unsupported features.
    ///
    /// Anchors and aliases are refused without being expanded. `Yams.compose` resolves an alias
    /// to the anchored node itself, so an alias bomb (`&a` … `*a` nested 9 × 9) costs nothing to
    /// compose but hashing such a node as a mapping key (Yams' duplicate-key check) or walking
    /// it visits every expanded copy: exponential. So when the text holds a `*` at all, it is
    /// composed with every `*` replaced by a private-use character that does not occur in it.
    /// Then no alias exists for Yams to resolve (the tree is as large as the text), an alias
    /// shows up as a plain scalar starting with that character (a plain scalar cannot start
    /// with `*`), and every other `*` (inside strings, comments, mid-scalar) is put back
    /// when the tree is converted. Anchors alone share nothing; they are found on the nodes.
    static func parse(_ text: String, file: String) throws(SpecError) -> PNode {
        let marker: Unicode.Scalar?
        switch aliasMarker(for: text) {
        case .notNeeded: marker = nil
        case .use(let m): marker = m
        case .noneFree:
            throw SpecError(diagnostics: [Diagnostic(file: file, pos: nil,
                message: "the file uses every Unicode private-use character and '*'; autoglm.yaml cannot be checked for aliases safely, remove the private-use characters")])
        }
        let source: String
        if let marker {
            var view = String.UnicodeScalarView()
            for u in text.unicodeScalars { view.append(u == "*" ? marker : u) }
            source = String(view)
        } else {
            source = text
        }
        let parser: Parser
        let root: Node?
        do {
            parser = try Parser(yaml: source)
            root = try parser.singleRoot()
        } catch let error as YamlError {
            var diag = yamlDiagnostic(error, file: file)
            diag.message = restore(diag.message, marker)
            throw SpecError(diagnostics: [diag])
        } catch {
            throw SpecError(diagnostics: [Diagnostic(file: file, pos: nil, message: "cannot parse YAML: \(error)")])
        }
        guard let root else {
            throw SpecError(diagnostics: [Diagnostic(
                file: file, pos: nil,
                message: "file is empty; write at least 'apiVersion: autoglm/v1', 'name:' and 'model: {ref: ...}' (see examples/gemma3-cpu.yaml)")])
        }
        // The parser owns the anchors (nodes hold them weakly): keep it alive while walking.
        return try withExtendedLifetime(parser) { () throws(SpecError) -> PNode in
            if let (pos, token) = firstAnchorOrAlias(root, marker: marker) {
                throw SpecError(diagnostics: [Diagnostic(file: file, pos: pos, message: anchorMessage(token))])
            }
            var diags: [Diagnostic] = []
            let tree = convert(root, marker: marker, file: file, diags: &diags)
            if !diags.isEmpty { throw SpecError(diagnostics: diags) }
            return tree
        }
    }

    enum AliasMarker: Equatable {
        /// The text has no `*`: nothing to hide.
        case notNeeded
        /// A private-use scalar that does not occur in the text.
        case use(Unicode.Scalar)
        /// The text holds every private-use scalar (only a generated file could).
        case noneFree
    }

    static func aliasMarker(for text: String) -> AliasMarker {
        guard text.utf8.contains(UInt8(ascii: "*")) else { return .notNeeded }
        let ranges: [ClosedRange<UInt32>] = [0xE000...0xF8FF, 0xF0000...0xFFFFD, 0x100000...0x10FFFD]
        var used = Set<UInt32>()
        for u in text.unicodeScalars where u.value >= 0xE000 && ranges.contains(where: { $0.contains(u.value) }) {
            used.insert(u.value)
        }
        for range in ranges {
            for v in range where !used.contains(v) {
                if let scalar = Unicode.Scalar(v) { return .use(scalar) }
            }
        }
        return .noneFree
    }

    private static func position(_ mark: Mark?) -> SourcePosition {
        guard let mark else { return SourcePosition(line: 0, column: 0) }
        return SourcePosition(line: mark.line, column: mark.column)
    }

    /// The first anchor (`&name` on any node) or alias (a plain scalar starting with `marker`)
    /// in document order. Iterative, and linear: the tree has no shared nodes.
    static func firstAnchorOrAlias(_ root: Node, marker: Unicode.Scalar?) -> (SourcePosition, String)? {
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            if case .alias(let a) = node { return (position(a.mark), "*\(a.anchor.rawValue)") }
            if let anchor = node.anchor { return (position(node.mark), "&\(anchor.rawValue)") }
            switch node {
            case .scalar(let s):
                if let marker, s.style == .plain || s.style == .any, s.string.unicodeScalars.first == marker {
                    return (position(s.mark), "*" + String(String.UnicodeScalarView(s.string.unicodeScalars.dropFirst())))
                }
            case .mapping(let m):
                // Reversed onto the stack so that keys and values pop in file order.
                for (k, v) in m.reversed() { stack.append(v); stack.append(k) }
            case .sequence(let seq):
                stack.append(contentsOf: seq.reversed())
            case .alias:
                break
            }
        }
        return nil
    }

    /// The text of a scalar with the `*` characters that `parse` hid put back.
    private static func restore(_ s: String, _ marker: Unicode.Scalar?) -> String {
        guard let marker, s.unicodeScalars.contains(marker) else { return s }
        var view = String.UnicodeScalarView()
        for u in s.unicodeScalars { view.append(u == marker ? "*" : u) }
        return String(view)
    }

    private static func convert(_ node: Node, marker: Unicode.Scalar?, file: String, diags: inout [Diagnostic]) -> PNode {
        switch node {
        case .scalar(let s):
            let quoted: Bool
            switch s.style {
            case .plain, .any: quoted = false
            default: quoted = true
            }
            return .scalar(restore(s.string, marker), quoted: quoted, pos: position(s.mark))
        case .mapping(let m):
            var entries: [PEntry] = []
            entries.reserveCapacity(m.count)
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    diags.append(Diagnostic(file: file, pos: position(k.mark),
                                            message: "mapping keys must be plain strings; write 'key: value'"))
                    continue
                }
                entries.append(PEntry(key: restore(ks.string, marker), keyPos: position(ks.mark),
                                      value: convert(v, marker: marker, file: file, diags: &diags)))
            }
            return .mapping(entries, pos: position(m.mark))
        case .sequence(let seq):
            return .sequence(seq.map { convert($0, marker: marker, file: file, diags: &diags) }, pos: position(seq.mark))
        case .alias(let a):
            // Not produced by the parser (aliases are hidden before parsing); kept for completeness.
            diags.append(Diagnostic(file: file, pos: position(a.mark), message: anchorMessage("*\(a.anchor.rawValue)")))
            return .scalar("", quoted: false, pos: position(a.mark))
        }
    }

    static func yamlDiagnostic(_ error: YamlError, file: String) -> Diagnostic {
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            var msg = "malformed YAML: \(problem)"
            if let context { msg += " (\(context.text) at \(context.mark.line):\(context.mark.column))" }
            return Diagnostic(file: file, pos: SourcePosition(line: mark.line, column: mark.column),
                              message: msg + "; check indentation and quoting")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return Diagnostic(file: file,
                              pos: SourcePosition(line: context.mark.line, column: context.mark.column),
                              message: "duplicate key \(keys) in the same mapping; keep only one")
        case .reader(let problem, _, _, _):
            return Diagnostic(file: file, pos: nil, message: "cannot read YAML: \(problem); save the file as UTF-8")
        default:
            return Diagnostic(file: file, pos: nil, message: "malformed YAML: \(error)")
        }
    }

    // MARK: overlays

    /// Deep merge: mappings merge key by key (recursively), scalars and lists replace.
    /// Linear in both mappings (keys are found through an index, not a search per key).
    static func merge(base: PNode, overlay: PNode) -> PNode {
        guard case .mapping(var baseEntries, let pos) = base,
              case .mapping(let overEntries, _) = overlay else { return overlay }
        var index: [String: Int] = [:]
        index.reserveCapacity(baseEntries.count)
        for (i, e) in baseEntries.enumerated() where index[e.key] == nil { index[e.key] = i }
        for e in overEntries {
            if let i = index[e.key] {
                baseEntries[i] = PEntry(key: e.key, keyPos: e.keyPos,
                                        value: merge(base: baseEntries[i].value, overlay: e.value))
            } else {
                index[e.key] = baseEntries.count
                baseEntries.append(e)
            }
        }
        return .mapping(baseEntries, pos: pos)
    }

    // MARK: ${VAR} substitution

    /// Replaces `${VAR}` and `${VAR:-default}` in every scalar value (not keys).
    /// `$${` is a literal `${`. A substituted plain scalar stays plain, so `replicas: ${N}` is an int.
    static func substitute(_ node: PNode, env: [String: String], file: String, path: String,
                           diags: inout [Diagnostic]) -> PNode {
        switch node {
        case .scalar(let s, let quoted, let pos):
            guard s.contains("$") else { return node }
            var out = ""
            var i = s.startIndex
            while i < s.endIndex {
                let c = s[i]
                if c == "$" {
                    let next = s.index(after: i)
                    if next < s.endIndex, s[next] == "$" {
                        let n2 = s.index(after: next)
                        if n2 < s.endIndex, s[n2] == "{" { out += "$"; i = next; out += "{"; i = s.index(after: n2); continue }
                    }
                    if next < s.endIndex, s[next] == "{" {
                        guard let close = s[next...].firstIndex(of: "}") else {
                            diags.append(Diagnostic(file: file, pos: pos,
                                message: "\(path): unterminated '${' in \"\(s)\"; write ${VAR} or ${VAR:-default} (or $${ for a literal)"))
                            return node
                        }
                        let inner = String(s[s.index(after: next)..<close])
                        let name: String
                        let def: String?
                        if let r = inner.range(of: ":-") {
                            name = String(inner[..<r.lowerBound])
                            def = String(inner[r.upperBound...])
                        } else {
                            name = inner
                            def = nil
                        }
                        if !isValidVarName(name) {
                            diags.append(Diagnostic(file: file, pos: pos,
                                message: "\(path): '${\(inner)}' is not a valid variable reference; names are [A-Za-z_][A-Za-z0-9_]*"))
                            return node
                        }
                        if let v = env[name] {
                            out += v
                        } else if let def {
                            out += def
                        } else {
                            diags.append(Diagnostic(file: file, pos: pos,
                                message: "\(path): environment variable \(name) is not set; export it or write ${\(name):-default}"))
                            return node
                        }
                        i = s.index(after: close)
                        continue
                    }
                }
                out.append(c)
                i = s.index(after: i)
            }
            return .scalar(out, quoted: quoted, pos: pos)
        case .mapping(let entries, let pos):
            return .mapping(entries.map {
                PEntry(key: $0.key, keyPos: $0.keyPos,
                       value: substitute($0.value, env: env, file: file,
                                         path: path.isEmpty ? $0.key : "\(path).\($0.key)", diags: &diags))
            }, pos: pos)
        case .sequence(let items, let pos):
            return .sequence(items.enumerated().map {
                substitute($0.element, env: env, file: file, path: "\(path)[\($0.offset)]", diags: &diags)
            }, pos: pos)
        }
    }

    static func isValidVarName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || (f.isASCII && f.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}
