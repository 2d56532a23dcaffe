import Core
import Foundation

/// Asks the Hugging Face Hub whether a model reference can be pulled, before anything runs:
/// what `autoglm validate` (and `deploy render`/`apply`) check so that a model the pod could not
/// pull fails on the user's machine, naming the repository and what is missing, not later in
/// the pod. One model-info call (`/api/models/ORG/REPO/revision/REV`) or one `HEAD` of a file;
/// nothing is downloaded. `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE` are read as `pull` reads them.
public struct HubModelCheck: Sendable {
    public let settings: HubSettings

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        settings = HubSettings(environment: environment)
    }

    /// What the check found (or why it did not ask the hub).
    public enum Outcome: Sendable, Equatable {
        /// The hub has it; the text says what (e.g. the file a quantization picked).
        case available(String)
        /// Not a hub reference (an alias, a path, pip:, a URL, an upstream's model name), or offline.
        case notChecked(String)
    }

    /// Checks `ref` as the backend will load it. `loadsRepository`: the backend loads a whole
    /// repository (vLLM: `ORG/REPO` or `hf://ORG/REPO`, at `revision`), which must hold
    /// config.json and *.safetensors; otherwise a GGUF ref (`hf://ORG/REPO[@REV]/FILE.gguf` must
    /// exist, `hf://ORG/REPO[@REV]:QUANT` must name one GGUF file).
    public func check(ref: String, revision: String? = nil, loadsRepository: Bool) throws(RegistryError) -> Outcome {
        if loadsRepository {
            guard let repo = RefSyntax.repoID(ref) ?? RefSyntax.hubRepository(ref)?.repo else {
                return .notChecked("\(ref) is not a Hugging Face repo id")
            }
            if settings.offline { return .notChecked("offline") }
            let rev = revision ?? RefSyntax.hubRepository(ref)?.revision ?? "main"
            let info = try repositoryInfo(repo: repo, revision: rev)
            let files = info.files
            var missing: [String] = []
            if !files.contains("config.json") { missing.append("config.json") }
            if !files.contains(where: { $0.lowercased().hasSuffix(".safetensors") }) { missing.append("*.safetensors weights") }
            if !missing.isEmpty {
                throw .notVLLMRepository(repo: repo, revision: rev, missing: missing,
                                         gguf: files.filter { $0.lowercased().hasSuffix(".gguf") }.sorted())
            }
            return .available("hf://\(repo)@\(rev): config.json and \(files.filter { $0.lowercased().hasSuffix(".safetensors") }.count) safetensors file(s)")
        }
        if let q = RefSyntax.hubQuant(ref) {
            if settings.offline { return .notChecked("offline") }
            let file = try ggufFile(repo: q.repo, revision: q.revision, quant: q.quant)
            return .available("hf://\(q.repo)@\(q.revision)/\(file)")
        }
        if case .hubFile(let repo, let rev, let path)? = try? RefSyntax.classify(ref, fileExists: { _ in false }) {
            if settings.offline { return .notChecked("offline") }
            let fetcher = HubFetcher(settings: settings, workRoot: NSTemporaryDirectory(), progress: nil, log: { _ in })
            do { _ = try fetcher.info(repo: repo, revision: rev, path: path) } catch let e as RegistryError { throw e } catch {
                throw .fetchFailed(source: HubFetcher.label(repo: repo, revision: rev, path: path), reason: "\(error)")
            }
            return .available(HubFetcher.label(repo: repo, revision: rev, path: path))
        }
        return .notChecked("\(ref) is not a Hugging Face Hub reference")
    }

    /// The GGUF file of `quant` in the repository (one model-info call).
    public func ggufFile(repo: String, revision: String, quant: String) throws(RegistryError) -> String {
        let files = try repositoryInfo(repo: repo, revision: revision).files
        switch RefSyntax.ggufFile(quant: quant, in: files) {
        case .file(let f): return f
        case .ambiguous(let fs):
            throw .quantNotFound(repo: repo, revision: revision, quant: quant, available: [], candidates: fs, safetensors: false)
        case .none(let available):
            throw .quantNotFound(repo: repo, revision: revision, quant: quant, available: available, candidates: [],
                                 safetensors: files.contains { $0.lowercased().hasSuffix(".safetensors") })
        }
    }

    func repositoryInfo(repo: String, revision: String) throws(RegistryError) -> HubRepositoryInfo {
        let fetcher = HubFetcher(settings: settings, workRoot: NSTemporaryDirectory(), progress: nil, log: { _ in })
        do { return try fetcher.repositoryInfo(repo: repo, revision: revision) } catch let e as RegistryError { throw e } catch {
            throw .fetchFailed(source: "hf://\(repo)@\(revision)", reason: "\(error)")
        }
    }
}
