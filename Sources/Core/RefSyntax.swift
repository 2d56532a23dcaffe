import Foundation

/// Why a model reference is not one `autoglm pull` accepts.
public enum RefSyntaxError: Error, Sendable, Equatable {
    /// The reference has the wrong shape; `reason` says which part and what is expected.
    case malformed(reason: String)
    /// A `#sha256=` fragment that is not 64 hexadecimal digits.
    case invalidDigest(String)
}

/// What a model reference is, by syntax alone (nothing fetched, nothing resolved).
public enum RefForm: Sendable, Equatable {
    /// `pip:PACKAGE[==VERSION]`.
    case pip(package: String, version: String?)
    /// `https://…[#sha256=HEX]` (or `http://`); the digest is normalized to lowercase.
    case url(String, sha256: String?)
    /// `hf://ORG/REPO[@REVISION]/PATH.gguf`: one GGUF file in a Hugging Face Hub repository.
    case hubFile(repo: String, revision: String, path: String)
    /// `hf://ORG/REPO[@REVISION]:QUANT`: the GGUF file of that quantization in a Hugging Face Hub
    /// repository, picked from the repository's file list when it is pulled (`RefSyntax.ggufFile`).
    case hubQuant(repo: String, revision: String, quant: String)
    /// A local path, as written (`~` not expanded).
    case path(String)
    /// A catalog alias or a registered model id (`gemma3-270m`, `qwen2.5:stable`).
    case alias(String)
}

/// The syntax of model references: the one rule `autoglm pull` (Registry) applies and
/// `autoglm validate` (Spec) checks a spec's `model.ref` against, so both accept the same refs.
public enum RefSyntax {
    /// Classifies a reference. Paths (absolute, `./`, `../`, `~/`, a `.gguf` name or an existing
    /// file), `pip:PACKAGE[==VERSION]`, `hf://ORG/REPO[@REVISION]/PATH.gguf`,
    /// `https://…[#sha256=HEX]` (and `http://` for local mirrors), or an alias.
    public static func classify(_ raw: String, fileExists: (String) -> Bool) throws(RefSyntaxError) -> RefForm {
        let s = raw.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { throw .malformed(reason: "it is empty") }
        let lower = s.lowercased()
        if lower.hasPrefix("pip:") {
            let spec = String(s.dropFirst(4))
            let parts = spec.components(separatedBy: "==")
            guard parts.count <= 2, let name = parts.first, isPackageName(name) else {
                throw .malformed(reason: "expected pip:PACKAGE or pip:PACKAGE==VERSION with a PyPI package name")
            }
            var version: String?
            if parts.count == 2 {
                let v = parts[1]
                guard !v.isEmpty, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "_") }) else {
                    throw .malformed(reason: "the pip version after '==' is empty or has invalid characters")
                }
                version = v
            }
            return .pip(package: name, version: version)
        }
        if lower.hasPrefix("https://") || lower.hasPrefix("http://") {
            var urlPart = s
            var sha: String?
            if let hash = s.firstIndex(of: "#") {
                urlPart = String(s[..<hash])
                let frag = String(s[s.index(after: hash)...])
                guard frag.lowercased().hasPrefix("sha256=") else {
                    throw .malformed(reason: "the URL fragment must be #sha256=HEX (64 hex digits)")
                }
                let digest = String(frag.dropFirst(7))
                guard let d = normalizedDigest(digest) else { throw .invalidDigest(digest) }
                sha = d
            }
            guard let url = URL(string: urlPart), let host = url.host, !host.isEmpty else {
                throw .malformed(reason: "not a valid URL")
            }
            return .url(urlPart, sha256: sha)
        }
        if let q = hubQuant(s) {
            return .hubQuant(repo: q.repo, revision: q.revision, quant: q.quant)
        }
        if lower.hasPrefix("hf://") || lower.hasPrefix("hf:") {
            let h = try hubFile(String(s.dropFirst(lower.hasPrefix("hf://") ? 5 : 3)))
            return .hubFile(repo: h.repo, revision: h.revision, path: h.path)
        }
        if lower.contains("://") {
            throw .malformed(reason: "unknown scheme")
        }
        if s.hasPrefix("/") || s.hasPrefix("./") || s.hasPrefix("../") || s.hasPrefix("~") || lower.hasSuffix(".gguf") || fileExists(s) {
            return .path(s)
        }
        if isAlias(s) { return .alias(s) }
        throw .malformed(reason: "not a path, pip:PACKAGE, URL or alias")
    }

    /// `ORG/REPO[@REVISION]/PATH.gguf` (what follows `hf://`).
    public static func hubFile(_ spec: String) throws(RefSyntaxError) -> (repo: String, revision: String, path: String) {
        let form = "expected hf://ORG/REPO[@REVISION]/PATH.gguf"
        let comps = spec.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard comps.count >= 3 else { throw .malformed(reason: form) }
        let org = comps[0]
        var name = comps[1], revision = "main"
        if let at = name.firstIndex(of: "@") {
            revision = String(name[name.index(after: at)...])
            name = String(name[..<at])
        }
        let path = comps.dropFirst(2).joined(separator: "/")
        guard isRepoPart(org), isRepoPart(name) else {
            throw .malformed(reason: "\(form): ORG and REPO use letters, digits, '-', '_' and '.'")
        }
        guard !revision.isEmpty, !revision.contains(where: { $0.isWhitespace }) else {
            throw .malformed(reason: "\(form): the revision after '@' is empty")
        }
        guard path.lowercased().hasSuffix(".gguf"), !path.split(separator: "/").contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }) else {
            throw .malformed(reason: "\(form): PATH must name a .gguf file in the repository")
        }
        return ("\(org)/\(name)", revision, path)
    }

    /// The Hugging Face repo id of a whole-repository ref (`ORG/REPO` or `hf://ORG/REPO`), as
    /// vLLM loads it; nil for anything else (a GGUF file, a path, an alias, a URL).
    public static func repoID(_ ref: String) -> String? {
        var r = Substring(ref)
        if r.hasPrefix("hf://") { r = r.dropFirst(5) }
        let parts = r.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ isRepoPart(String($0)) && $0 != "." && $0 != ".." }),
              !r.lowercased().hasSuffix(".gguf") else { return nil }
        return String(r)
    }

    /// `hf://ORG/REPO[@REVISION]` (or `hf:ORG/REPO[@REVISION]`): a whole Hugging Face repository,
    /// which `autoglm pull` registers as a reference (vLLM loads its safetensors); nil for
    /// anything else (a `.gguf` file in a repository, a bare `ORG/REPO`, a path, an alias).
    /// `classify` does not accept it: a GGUF backend cannot load a repository.
    public static func hubRepository(_ ref: String) -> (repo: String, revision: String)? {
        let s = ref.trimmingCharacters(in: .whitespaces)
        let lower = s.lowercased()
        guard lower.hasPrefix("hf://") || lower.hasPrefix("hf:") else { return nil }
        let spec = s.dropFirst(lower.hasPrefix("hf://") ? 5 : 3)
        let comps = spec.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard comps.count == 2 else { return nil }
        var name = comps[1], revision = "main"
        if let at = name.firstIndex(of: "@") {
            revision = String(name[name.index(after: at)...])
            name = String(name[..<at])
        }
        guard isRepoPart(comps[0]), isRepoPart(name), ![".", ".."].contains(comps[0]), ![".", ".."].contains(name),
              !name.lowercased().hasSuffix(".gguf"), isRevision(revision) else { return nil }
        return ("\(comps[0])/\(name)", revision)
    }

    /// `hf://ORG/REPO[@REVISION]:QUANT` (or `hf:…`): one quantization of a GGUF repository, e.g.
    /// `hf://bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M`; nil for anything else. QUANT is a
    /// llama.cpp quantization name (`isQuant`); ':' cannot occur in ORG, REPO or a revision.
    public static func hubQuant(_ ref: String) -> (repo: String, revision: String, quant: String)? {
        let s = ref.trimmingCharacters(in: .whitespaces)
        let lower = s.lowercased()
        guard lower.hasPrefix("hf://") || lower.hasPrefix("hf:"), let colon = s.lastIndex(of: ":") else { return nil }
        let quant = String(s[s.index(after: colon)...])
        let head = String(s[..<colon])
        guard isQuant(quant), let h = hubRepository(head) else { return nil }
        return (h.repo, h.revision, quant)
    }

    /// A llama.cpp quantization name as GGUF file names carry it: 1-32 letters, digits and '_',
    /// starting with a letter (`Q4_K_M`, `Q8_0`, `IQ4_XS`, `F16`, `BF16`).
    public static func isQuant(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 32 && s.first.map { $0.isASCII && $0.isLetter } == true
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    /// The GGUF file of quantization `quant` among a repository's files: the `.gguf` files whose
    /// path, cut at '/', '-' and '.', has a part equal to `quant` (case-insensitive; so `Q4_K`
    /// does not match `…-Q4_K_M.gguf`); multimodal projectors (`mmproj…`) are left out; a split
    /// set (`-00001-of-0000N`) counts once, as its first part. `.ambiguous` lists several files.
    public static func ggufFile(quant: String, in files: [String]) -> GGUFPick {
        let q = quant.lowercased()
        let ggufs = files.filter { $0.lowercased().hasSuffix(".gguf") }
        var picked: [String] = []
        for f in ggufs.sorted() {
            let lower = f.lowercased()
            let name = lower.split(separator: "/").last.map(String.init) ?? lower
            if name.hasPrefix("mmproj") { continue }
            var stem = String(lower.dropLast(5))
            var part = 1
            if let r = stem.range(of: "-[0-9]+-of-[0-9]+$", options: .regularExpression) {
                part = Int(stem[r].dropFirst().split(separator: "-").first ?? "") ?? 0
                stem.removeSubrange(r)
            }
            guard part == 1 else { continue }
            let parts = stem.split(whereSeparator: { $0 == "/" || $0 == "-" || $0 == "." })
            if parts.contains(where: { $0 == q }) { picked.append(f) }
        }
        if picked.count == 1 { return .file(picked[0]) }
        if picked.count > 1 { return .ambiguous(picked) }
        return .none(available: availableQuants(ggufs))
    }

    /// The quantization names the repository's GGUF files carry (the last part of each name
    /// that looks like one: starts with Q, IQ, F or BF and a digit), sorted and unique.
    static func availableQuants(_ ggufs: [String]) -> [String] {
        var out = Set<String>()
        for f in ggufs {
            var stem = String((f.split(separator: "/").last.map(String.init) ?? f).dropLast(5))
            if stem.lowercased().hasPrefix("mmproj") { continue }
            if let r = stem.range(of: "-[0-9]+-of-[0-9]+$", options: .regularExpression) { stem.removeSubrange(r) }
            let parts = stem.split(whereSeparator: { $0 == "-" || $0 == "." })
            if let q = parts.last(where: { p in
                let u = p.uppercased()
                for prefix in ["IQ", "BF", "Q", "F"] where u.hasPrefix(prefix) {
                    if let c = u.dropFirst(prefix.count).first, c.isNumber { return isQuant(String(p)) }
                }
                return false
            }) { out.insert(q.uppercased()) }
        }
        return out.sorted()
    }

    /// A Hugging Face revision: a branch, tag or commit (letters, digits, '.', '_', '-', '/'; no
    /// leading or trailing '/', no `..`), the rule a spec's model.revision is checked against.
    public static func isRevision(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 255 && !s.hasPrefix("/") && !s.hasSuffix("/") && !s.contains("..")
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" || $0 == "/") }
    }

    /// An ORG or REPO name on the Hub: letters, digits, '-', '_' and '.' (ASCII).
    public static func isRepoPart(_ p: String) -> Bool {
        !p.isEmpty && p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    /// A PyPI package name: letters, digits, '-', '_', '.', starting with a letter or digit.
    public static func isPackageName(_ n: String) -> Bool {
        !n.isEmpty && n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && (n.first.map { $0.isLetter || $0.isNumber } ?? false)
    }

    /// A catalog alias or registry reference: lowercase letters, digits, '.', '-', '_' and ':'.
    public static func isAlias(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "-" || $0 == "_" || $0 == ":" }
    }

    /// A sha256 digest in lowercase; nil unless 64 hexadecimal digits.
    public static func normalizedDigest(_ s: String) -> String? {
        let l = s.lowercased()
        guard l.utf8.count == 64, l.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        return l
    }
}

/// Which GGUF file of a repository a quantization names.
public enum GGUFPick: Sendable, Equatable {
    case file(String)
    /// Several files carry the quantization (e.g. two models in one repository).
    case ambiguous([String])
    /// None does; `available` are the quantizations the repository's GGUF files carry.
    case none(available: [String])
}

/// Names in the model registry: model ids and tags (a spec's `model.channel` is a tag).
public enum NameSyntax {
    /// 1-128 characters of [a-z0-9._-] starting with a letter or digit.
    public static func isModelID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "_" || $0 == "-"
        } && id.unicodeScalars.first.map { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") } == true
    }

    /// A tag or channel (`stable`, `latest`, `canary`, your own): 1-64 characters of
    /// [A-Za-z0-9._-] starting with a letter (so never a version number).
    public static func isTag(_ tag: String) -> Bool {
        !tag.isEmpty && tag.utf8.count <= 64 && tag.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "_" || $0 == "-"
        } && tag.unicodeScalars.first.map { ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") } == true
    }

    /// How a tag is written, for messages.
    public static let tagForm = "1-64 characters of [A-Za-z0-9._-] starting with a letter and not a version number"
}
