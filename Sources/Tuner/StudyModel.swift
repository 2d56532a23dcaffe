import Backends
import Foundation
import GGUF
import Models
import Optimizer
import Registry
import Spec
import Tokenizers

/// The model a study tunes: its file, the digest that keys its studies, and the registry
/// model/version when it came from the registry (metrics are recorded against it).
public struct StudyModel: Sendable, Equatable {
    public var path: String
    public var digest: String
    public var registryModel: String?
    public var registryVersion: String?

    public init(path: String, digest: String, registryModel: String? = nil, registryVersion: String? = nil) {
        self.path = path; self.digest = digest; self.registryModel = registryModel; self.registryVersion = registryVersion
    }

    /// The model of a spec (`model.ref` with its `version` or `channel`) or of a `--model` reference:
    /// a GGUF path (digest: path, size and mtime) or a registry reference.
    public static func resolve(_ source: ModelSource, registry: Registry) throws(TunerError) -> StudyModel {
        var ref: String
        var loaded: LoadedSpec?
        switch source {
        case .model(let r): ref = r
        case .spec(let path, let environment):
            loaded = try loadSpec(path, environment: environment)
            ref = loaded?.spec.model.ref ?? ""
        }
        if FileManager.default.fileExists(atPath: ref) {
            let attrs = try? FileManager.default.attributesOfItem(atPath: ref)
            let size = (attrs?[.size] as? NSNumber)?.int64Value ?? 0
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let abs = URL(fileURLWithPath: ref).standardizedFileURL.path
            return StudyModel(path: abs, digest: "file:" + stableHash("\(abs)|\(size)|\(mtime)"))
        }
        if let s = loaded?.spec.model, let v = s.version { ref = "\(ref)@\(v)" } else if let c = loaded?.spec.model.channel { ref = "\(ref)@\(c)" }
        let mv: ModelVersion
        do { mv = try registry.resolve(reference: ref) } catch {
            throw .invalid("model '\(ref)' is neither a file nor in the registry (\(error)); pull it first or give a path")
        }
        if mv.kind == .reference {
            throw .invalid("model '\(ref)' is a Hugging Face repository reference (vLLM only), not a GGUF file; pull a GGUF file (hf://ORG/REPO/FILE.gguf, a path or an alias) to tune")
        }
        return StudyModel(path: mv.path, digest: mv.digest, registryModel: mv.model, registryVersion: mv.version)
    }

    /// Reads and validates a spec (with its environment overlay), diagnostics as the error.
    static func loadSpec(_ path: String, environment: String?) throws(TunerError) -> LoadedSpec {
        let text: String
        do { text = try SpecLoader.readFile(path) } catch { throw .invalid(error.description) }
        do {
            return try SpecLoader.load(yaml: text, file: path, environment: environment, variables: SpecLoader.processEnvironment())
        } catch {
            throw .invalid(error.diagnostics.map(\.description).joined(separator: "\n"))
        }
    }

    /// What the search spaces' bounds need from the model file (the same arithmetic as `serve`),
    /// and its vocabulary size (trial prompts draw token ids below it).
    public func facts() throws -> (facts: ModelFacts, contextLength: Int, vocabularySize: Int) {
        let file = try GGUFFile(path: path)
        let cfg = try ModelFactory.load(file).config
        let vocabulary = try Tokenizer.load(from: file).vocabularySize
        let kvElements = cfg.layers * cfg.kvHeads * (cfg.headDim + cfg.valueDim)
        let weightBytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        return (ModelFacts(weightBytes: weightBytes, kvElementsPerToken: kvElements, contextLength: cfg.contextLength),
                cfg.contextLength, vocabulary)
    }
}

/// Where a study's model comes from.
public enum ModelSource: Sendable, Equatable {
    /// A spec file (`model.ref`), with an environment overlay to read.
    case spec(path: String, environment: String?)
    /// A registry reference (ID, ID@VERSION, ID:TAG) or a GGUF path.
    case model(String)
}
