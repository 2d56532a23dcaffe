#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A decoded spec plus informative notes (things that are allowed but worth knowing).
public struct LoadedSpec: Sendable, Equatable {
    public var spec: Spec
    public var notes: [Diagnostic]
    public var environment: String?
}

/// Reads `autoglm.yaml`: parse (Yams nodes with positions) → pick `environments` overlay →
/// `${VAR}` substitution → typed `Spec`, collecting every error with `file:line:column`.
public enum SpecLoader {
    /// The process environment, for `${VAR}` substitution.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                result[String(s[..<eq])] = String(s[s.index(after: eq)...])
            }
            p = p.advanced(by: 1)
        }
        return result
    }

    public static func readFile(_ path: String) throws(DeployError) -> String {
        guard let f = fopen(path, "rb") else {
            throw .cannotReadFile(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { bytes.append(contentsOf: buf[0..<n]) }
            if n < buf.count {
                if ferror(f) != 0 { throw .cannotReadFile(path: path, reason: "read error") }
                break
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .cannotReadFile(path: path, reason: "not valid UTF-8; save it as UTF-8")
        }
        return text
    }

    /// The file's top-level mapping split into the base and its `environments` overlays
    /// (done once per file, whatever the number of overlays).
    struct Split {
        var entries: [PEntry]
        var rootPos: SourcePosition
        var overlays: [(name: String, pos: SourcePosition, node: PNode)]
        var envsPos: SourcePosition?
        /// Problems of the `environments` section itself (names, nesting, types).
        var diags: [Diagnostic]
    }

    static func split(_ tree: PNode, file: String) throws(SpecError) -> Split {
        guard case .mapping(var entries, let rootPos) = tree else {
            throw SpecError(diagnostics: [Diagnostic(file: file, pos: tree.pos,
                message: "the top level must be a mapping (apiVersion:, name:, model: ...), got \(tree.kindName)")])
        }
        var d = SpecDecoder(file: file)
        var overlays: [(name: String, pos: SourcePosition, node: PNode)] = []
        var envsPos: SourcePosition?
        if let idx = entries.firstIndex(where: { $0.key == "environments" }) {
            let e = entries.remove(at: idx)
            envsPos = e.keyPos
            if case .mapping(let envEntries, _) = e.value {
                overlays.reserveCapacity(envEntries.count)
                for env in envEntries {
                    if !isDNSLabel(env.key) {
                        d.error(env.keyPos, "environments.\(abbreviated(env.key)): environment names must be DNS-1123 labels (lowercase letters, digits, '-'), e.g. 'prod'")
                    }
                    if case .mapping(let ov, _) = env.value {
                        if let nested = ov.first(where: { $0.key == "environments" }) {
                            d.error(nested.keyPos, "environments.\(env.key).environments: overlays cannot define environments; move it to the top level")
                        }
                        if let nested = ov.first(where: { $0.key == "apiVersion" || $0.key == "kind" }) {
                            d.error(nested.keyPos, "environments.\(env.key).\(nested.key): an overlay cannot change \(nested.key)")
                        }
                    } else if !env.value.isNull {
                        d.error(env.value.pos, "environments.\(env.key) must be a mapping of keys to override, got \(env.value.kindName)")
                    }
                    overlays.append((env.key, env.keyPos, env.value))
                }
            } else if !e.value.isNull {
                d.error(e.value.pos, "environments must be a mapping of name → overlay (e.g. 'environments: {prod: {replicas: 3}}'), got \(e.value.kindName)")
            }
        }
        return Split(entries: entries, rootPos: rootPos, overlays: overlays, envsPos: envsPos, diags: d.diags)
    }

    /// How many environment names an "unknown environment" message lists.
    static let listedEnvironments = 10

    static func unknownEnvironmentMessage(_ envName: String, known: [String]) -> String {
        if known.isEmpty {
            return "unknown environment '\(envName)' (--env): this file defines no environments; add 'environments: {\(envName): {...}}' or drop --env"
        }
        var listed = known.prefix(listedEnvironments).joined(separator: ", ")
        if known.count > listedEnvironments { listed += ", … (\(known.count) in all)" }
        if let s = suggestion(for: envName, among: known) {
            return "unknown environment '\(envName)' (--env); did you mean '\(s)'? known environments: \(listed)"
        }
        return "unknown environment '\(envName)' (--env); known environments: \(listed)"
    }

    /// Loads and validates one spec, applying the overlay `environment` when given.
    public static func load(yaml: String, file: String, environment envName: String? = nil,
                            variables: [String: String]) throws(SpecError) -> LoadedSpec {
        let tree = try YAMLTree.parse(yaml, file: file)
        let parts = try split(tree, file: file)
        var d = SpecDecoder(file: file)
        d.diags = parts.diags
        var merged = PNode.mapping(parts.entries, pos: parts.rootPos)
        if let envName {
            if let ov = parts.overlays.first(where: { $0.name == envName }) {
                if case .mapping = ov.node {
                    merged = YAMLTree.merge(base: merged, overlay: ov.node)
                }
            } else {
                d.error(parts.envsPos, unknownEnvironmentMessage(envName, known: parts.overlays.map(\.name)))
            }
        }
        merged = YAMLTree.substitute(merged, env: variables, file: file, path: "", diags: &d.diags)
        var spec = d.decodeRoot(merged)
        spec?.environmentNames = parts.overlays.map(\.name)
        let diags = d.sortedDiagnostics()
        guard diags.isEmpty, let spec else {
            throw SpecError(diagnostics: diags)
        }
        return LoadedSpec(spec: spec, notes: d.notes, environment: envName)
    }

    /// Validates the base spec and, when `environment` is nil, every overlay too.
    /// Returns all problems (deduplicated, in file order); empty means valid. An error that
    /// only one overlay causes ends in "(with --env NAME)". Notes come from the base and
    /// every overlay.
    ///
    /// Linear in the file: it is parsed, split and `${VAR}`-substituted once; the base is
    /// decoded once; each overlay then re-decodes only the top-level sections it sets (merged
    /// with the base's), taking every other section from the base decode, whose diagnostics
    /// were already reported.
    public static func validate(yaml: String, file: String, environment envName: String? = nil,
                                variables: [String: String]) -> (errors: [Diagnostic], notes: [Diagnostic]) {
        if let envName {
            do {
                let loaded = try load(yaml: yaml, file: file, environment: envName, variables: variables)
                return ([], dedupe(loaded.notes))
            } catch {
                return (dedupe(error.diagnostics), [])
            }
        }
        let parts: Split
        do {
            parts = try split(try YAMLTree.parse(yaml, file: file), file: file)
        } catch {
            return (dedupe(error.diagnostics), [])
        }
        var d = SpecDecoder(file: file)
        d.diags = parts.diags
        var baseEntries: [PEntry] = []
        if case .mapping(let e, _) = YAMLTree.substitute(.mapping(parts.entries, pos: parts.rootPos), env: variables,
                                                         file: file, path: "", diags: &d.diags) {
            baseEntries = e
        }
        let baseFields = Fields(baseEntries)
        let base = d.decodeRoot(lookup: baseFields.value, checking: baseEntries, rootPos: parts.rootPos,
                                base: nil, touched: [])
        var errors = d.diags
        var notes = d.notes
        let baseErrors = Set(errors)
        for overlay in parts.overlays {
            // A null or non-mapping overlay changes nothing (its type error is in parts.diags).
            guard case .mapping = overlay.node else { continue }
            var e = SpecDecoder(file: file)
            guard case .mapping(let ovEntries, _) = YAMLTree.substitute(overlay.node, env: variables, file: file,
                                                                       path: "", diags: &e.diags) else { continue }
            var top: [String: PNode] = [:]
            var checking: [PEntry] = []
            checking.reserveCapacity(ovEntries.count)
            for entry in ovEntries {
                let value = baseFields.value(entry.key).map { YAMLTree.merge(base: $0, overlay: entry.value) } ?? entry.value
                top[entry.key] = value
                checking.append(PEntry(key: entry.key, keyPos: entry.keyPos, value: value))
            }
            _ = e.decodeRoot(lookup: { top[$0] ?? baseFields.value($0) }, checking: checking, rootPos: parts.rootPos,
                             base: base.sections, touched: Set(top.keys))
            for diag in e.diags where !baseErrors.contains(diag) {
                var tagged = diag
                tagged.message += " (with --env \(overlay.name))"
                errors.append(tagged)
            }
            notes += e.notes
        }
        return (dedupe(errors), dedupe(notes))
    }

    static func dedupe(_ ds: [Diagnostic]) -> [Diagnostic] {
        var seen = Set<Diagnostic>()
        var out: [Diagnostic] = []
        for d in ds where seen.insert(d).inserted { out.append(d) }
        return out.enumerated().sorted {
            let a = $0.element.pos ?? SourcePosition(line: 0, column: 0)
            let b = $1.element.pos ?? SourcePosition(line: 0, column: 0)
            return a == b ? $0.offset < $1.offset : a < b
        }.map(\.element)
    }
}

func isDNSLabel(_ s: String) -> Bool {
    guard !s.isEmpty, s.utf8.count <= 63 else { return false }
    let chars = Array(s.utf8)
    func ok(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
    guard let first = chars.first, let last = chars.last, ok(first), ok(last) else { return false }
    return chars.allSatisfy { ok($0) || $0 == 45 }
}
