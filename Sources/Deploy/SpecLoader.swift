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

    /// Loads and validates one spec, applying the overlay `environment` when given.
    public static func load(yaml: String, file: String, environment envName: String? = nil,
                            variables: [String: String]) throws(SpecError) -> LoadedSpec {
        let tree = try YAMLTree.parse(yaml, file: file)
        var d = SpecDecoder(file: file)
        guard case .mapping(var entries, let rootPos) = tree else {
            throw SpecError(diagnostics: [Diagnostic(file: file, pos: tree.pos,
                message: "the top level must be a mapping (apiVersion:, name:, model: ...), got \(tree.kindName)")])
        }
        // Split off the overlays.
        var overlays: [(name: String, pos: SourcePosition, node: PNode)] = []
        var envsPos: SourcePosition?
        if let idx = entries.firstIndex(where: { $0.key == "environments" }) {
            let e = entries.remove(at: idx)
            envsPos = e.keyPos
            if case .mapping(let envEntries, _) = e.value {
                for env in envEntries {
                    if !isDNSLabel(env.key) {
                        d.error(env.keyPos, "environments.\(env.key): environment names must be DNS-1123 labels (lowercase letters, digits, '-'), e.g. 'prod'")
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
        var merged = PNode.mapping(entries, pos: rootPos)
        if let envName {
            if let ov = overlays.first(where: { $0.name == envName }) {
                if case .mapping = ov.node {
                    merged = YAMLTree.merge(base: merged, overlay: ov.node)
                }
            } else {
                let known = overlays.map(\.name)
                let msg = known.isEmpty
                    ? "unknown environment '\(envName)' (--env): this file defines no environments; add 'environments: {\(envName): {...}}' or drop --env"
                    : "unknown environment '\(envName)' (--env); known environments: \(known.joined(separator: ", "))"
                d.error(envsPos, msg)
            }
        }
        merged = YAMLTree.substitute(merged, env: variables, file: file, path: "", diags: &d.diags)
        var spec = d.decodeRoot(merged)
        spec?.environmentNames = overlays.map(\.name)
        let diags = d.sortedDiagnostics()
        guard diags.isEmpty, let spec else {
            throw SpecError(diagnostics: diags)
        }
        return LoadedSpec(spec: spec, notes: d.notes, environment: envName)
    }

    /// Validates the base spec and, when `environment` is nil, every overlay too.
    /// Returns all problems (deduplicated, in file order); empty means valid.
    public static func validate(yaml: String, file: String, environment envName: String? = nil,
                                variables: [String: String]) -> (errors: [Diagnostic], notes: [Diagnostic]) {
        var errors: [Diagnostic] = []
        var notes: [Diagnostic] = []
        var envNames: [String] = []
        do {
            let loaded = try load(yaml: yaml, file: file, environment: envName, variables: variables)
            notes += loaded.notes
            envNames = loaded.spec.environmentNames
        } catch {
            errors += error.diagnostics
            // Overlay names are still worth checking when the base has errors.
            if envName == nil, let tree = try? YAMLTree.parse(yaml, file: file),
               case .mapping(let envs, _)? = tree["environments"] {
                envNames = envs.map(\.key)
            }
        }
        if envName == nil {
            for name in envNames {
                do {
                    let loaded = try load(yaml: yaml, file: file, environment: name, variables: variables)
                    notes += loaded.notes
                } catch {
                    let base = errors
                    let tagged = error.diagnostics.map { diag -> Diagnostic in
                        if base.contains(diag) { return diag }
                        var d = diag
                        d.message += " (with --env \(name))"
                        return d
                    }
                    errors += tagged
                }
            }
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
