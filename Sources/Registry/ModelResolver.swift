import Core
import Foundation

/// Turns a `--model` argument into a file the engine can load. In order:
/// 1. an existing file path → that file;
/// 2. a registered model: `ID` (its `stable` version), `ID@VERSION` or `ID:CHANNEL`;
/// 3. anything `autoglm pull` accepts (catalog alias, `hf://`, `pip:`, URL, path) → pulled on
///    demand into the registry, then loaded from there.
public struct ModelResolver: Sendable {
    public struct Resolved: Sendable, Equatable {
        /// The GGUF to load.
        public var path: String
        /// A short name for logs and the API (`ID` for registry models, the file stem otherwise).
        public var name: String
        /// The registry entry, when the model came from the registry.
        public var version: ModelVersion?

        public init(path: String, name: String, version: ModelVersion? = nil) {
            self.path = path
            self.name = name
            self.version = version
        }
    }

    /// The alias `autoglm serve` uses when no `--model` is given.
    public static let defaultAlias = "qwen2.5-coder-0.5b"

    public var home: String?
    public var databasePath: String?
    public var progress: ProgressHandler?
    public var environment: [String: String]
    public var log: @Sendable (String) -> Void

    public init(home: String? = nil, databasePath: String? = nil, progress: ProgressHandler? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.home = home
        self.databasePath = databasePath
        self.progress = progress
        self.environment = environment
        self.log = log
    }

    public func resolve(_ raw: String) throws -> Resolved {
        let ref = raw.trimmingCharacters(in: .whitespaces)
        var isDir: ObjCBool = false
        let expanded = (ref as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded, isDirectory: &isDir), !isDir.boolValue {
            return Resolved(path: expanded, name: URL(fileURLWithPath: expanded).deletingPathExtension().lastPathComponent, version: nil)
        }
        let registry = try Registry(home: home ?? Registry.defaultHome(environment: environment), databasePath: databasePath)
        if let v = try registered(ref, in: registry) { return try loadable(v, registry) }
        if case let .source(.hfRepo(repo, _))? = try? ModelRef.parse(ref) {
            throw RegistryError.referenceNotLoadable(model: ref, repo: repo)
        }
        log("\(ref) is not in the registry: pulling it")
        let mv = try Puller(registry: registry, progress: progress, environment: environment, log: log).pull(ref)
        return try loadable(mv, registry)
    }

    /// What backend vllm loads: a Hugging Face repo id and, when the registry pinned one, the commit.
    public struct Repository: Sendable, Equatable {
        /// `ORG/REPO`, vLLM's positional model.
        public var repo: String
        /// `--revision`: the pinned commit of a registered reference, else the revision asked for.
        public var revision: String?
        /// The served name: the registry id, else the repo id.
        public var name: String
        /// The registry entry, when the model came from the registry.
        public var version: ModelVersion?

        public init(repo: String, revision: String?, name: String, version: ModelVersion? = nil) {
            self.repo = repo; self.revision = revision; self.name = name; self.version = version
        }
    }

    /// Turns a model argument into what `vllm serve` loads. In order:
    /// 1. a registered model (`ID`, `ID@VERSION`, `ID:CHANNEL`, a catalog alias's id) that is a
    ///    reference → its repo id at its pinned commit (a GGUF version is an error: vLLM does not
    ///    load it here);
    /// 2. `hf://ORG/REPO[@REVISION]` → the commit a reference pulled for that repository and
    ///    revision pinned (the newest such), else the repo at that revision as is (nothing is
    ///    fetched here: `autoglm pull` pins, vLLM downloads);
    /// 3. a bare `ORG/REPO` → that repo as is.
    public func resolveRepository(_ raw: String) throws -> Repository {
        let ref = raw.trimmingCharacters(in: .whitespaces)
        let registry = try Registry(home: home ?? Registry.defaultHome(environment: environment), databasePath: databasePath)
        if case let .source(.hfRepo(repo, revision))? = try? ModelRef.parse(ref) {
            if let pinned = try registry.references(repo: repo, revision: revision).first {
                log("\(ref): using the commit \(pinned.model)@\(pinned.version) pinned (\(pinned.commit ?? "?"))")
                return try repository(pinned)
            }
            return Repository(repo: repo, revision: revision == "main" ? nil : revision, name: repo)
        }
        if let v = try registered(ref, in: registry) { return try repository(v) }
        if let repo = RefSyntax.repoID(ref) { return Repository(repo: repo, revision: nil, name: repo) }
        if Catalog.entry(ref) != nil { throw RegistryError.notAReference(model: ref) }
        throw RegistryError.malformedRef(ref, reason: "backend vllm needs a Hugging Face repository: ORG/REPO, hf://ORG/REPO[@REVISION], or a registered reference (ID, ID@VERSION, ID:CHANNEL)")
    }

    func repository(_ v: ModelVersion) throws -> Repository {
        guard v.kind == .reference, let repo = v.repo else { throw RegistryError.notAReference(model: "\(v.model)@\(v.version)") }
        return Repository(repo: repo, revision: v.commit ?? v.revision, name: v.model, version: v)
    }

    /// A registry hit for `ID`, `ID@VERSION` or `ID:CHANNEL`; nil when no such model exists
    /// (so the reference is tried as a pull reference), an error when the model exists but the
    /// version or channel does not.
    func registered(_ ref: String, in registry: Registry) throws -> ModelVersion? {
        var id = ref
        if let i = ref.firstIndex(where: { $0 == "@" || $0 == ":" }) { id = String(ref[..<i]) }
        if Catalog.entry(ref) != nil { id = Catalog.modelID(for: ref) }
        guard (try? Registry.validateModelID(id)) != nil else { return nil }
        let known = try registry.listModels().map(\.id)
        guard known.contains(id) else { return nil }
        if Catalog.entry(ref) != nil || id == ref {
            // A bare id: its stable version, else the highest one (only pre-releases registered).
            do { return try registry.resolve(id, channel: "stable") } catch RegistryError.noVersionForChannel {
                return try registry.resolve(id, channel: "latest")
            }
        }
        return try registry.resolve(reference: ref)
    }

    func loadable(_ v: ModelVersion, _ registry: Registry) throws -> Resolved {
        if v.kind == .reference { throw RegistryError.referenceNotLoadable(model: "\(v.model)@\(v.version)", repo: v.repo ?? "?") }
        let parts = try registry.parts(model: v.model, version: v.version)
        if !parts.isEmpty { throw RegistryError.splitGGUF(model: "\(v.model)@\(v.version)", parts: parts.count + 1) }
        guard FileManager.default.fileExists(atPath: v.path) else {
            throw RegistryError.io(path: v.path, reason: "\(v.model)@\(v.version) is registered but its file is missing; run `autoglm models rm \(v.model)@\(v.version)` and pull it again")
        }
        return Resolved(path: v.path, name: v.model, version: v)
    }
}
