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
        log("\(ref) is not in the registry: pulling it")
        let mv = try Puller(registry: registry, progress: progress, environment: environment, log: log).pull(ref)
        return try loadable(mv, registry)
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
        let parts = try registry.parts(model: v.model, version: v.version)
        if !parts.isEmpty { throw RegistryError.splitGGUF(model: "\(v.model)@\(v.version)", parts: parts.count + 1) }
        guard FileManager.default.fileExists(atPath: v.path) else {
            throw RegistryError.io(path: v.path, reason: "\(v.model)@\(v.version) is registered but its file is missing; run `autoglm models rm \(v.model)@\(v.version)` and pull it again")
        }
        return Resolved(path: v.path, name: v.model, version: v)
    }
}
