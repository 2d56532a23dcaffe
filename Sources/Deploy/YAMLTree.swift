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
            return quoted ? "string \"\(s)\"" : "'\(s)'"
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
    /// Parses one YAML document into a positioned tree. Throws `SpecError` for
    /// malformed YAML (with line/column), an empty document, or unsupported features.
    static func parse(_ text: String, file: String) throws(SpecError) -> PNode {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw SpecError(diagnostics: [yamlDiagnostic(error, file: file)])
        } catch {
            throw SpecError(diagnostics: [Diagnostic(file: file, pos: nil, message: "cannot parse YAML: \(error)")])
        }
        guard let root else {
            throw SpecError(diagnostics: [Diagnostic(
                file: file, pos: nil,
                message: "file is empty; write at least 'apiVersion: autoglm/v1', 'name:' and 'model: {ref: ...}' (see examples/gemma3-cpu.yaml)")])
        }
        var diags: [Diagnostic] = []
        let tree = convert(root, file: file, diags: &diags)
        if !diags.isEmpty { throw SpecError(diagnostics: diags) }
        return tree
    }

    private static func position(_ mark: Mark?) -> SourcePosition {
        guard let mark else { return SourcePosition(line: 0, column: 0) }
        return SourcePosition(line: mark.line, column: mark.column)
    }

    private static func convert(_ node: Node, file: String, diags: inout [Diagnostic]) -> PNode {
        switch node {
        case .scalar(let s):
            let quoted: Bool
            switch s.style {
            case .plain, .any: quoted = false
            default: quoted = true
            }
            return .scalar(s.string, quoted: quoted, pos: position(s.mark))
        case .mapping(let m):
            var entries: [PEntry] = []
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    diags.append(Diagnostic(file: file, pos: position(k.mark),
                                            message: "mapping keys must be plain strings; write 'key: value'"))
                    continue
                }
                entries.append(PEntry(key: ks.string, keyPos: position(ks.mark),
                                      value: convert(v, file: file, diags: &diags)))
            }
            return .mapping(entries, pos: position(m.mark))
        case .sequence(let seq):
            return .sequence(seq.map { convert($0, file: file, diags: &diags) }, pos: position(seq.mark))
        case .alias(let a):
            diags.append(Diagnostic(file: file, pos: position(a.mark),
                                    message: "YAML aliases (*name) are not supported in autoglm.yaml; write the value out or use 'environments' overlays"))
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
    static func merge(base: PNode, overlay: PNode) -> PNode {
        guard case .mapping(var baseEntries, let pos) = base,
              case .mapping(let overEntries, _) = overlay else { return overlay }
        for e in overEntries {
            if let i = baseEntries.firstIndex(where: { $0.key == e.key }) {
                baseEntries[i] = PEntry(key: e.key, keyPos: e.keyPos,
                                        value: merge(base: baseEntries[i].value, overlay: e.value))
            } else {
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
