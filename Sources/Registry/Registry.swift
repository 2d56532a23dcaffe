import Core
import Foundation
import GRDB

/// What a registered version is.
public enum ModelKind: String, Sendable, Codable, Equatable {
    /// A GGUF file in the blob store (or linked in place): what the native engine and llama-server load.
    case gguf
    /// A Hugging Face repository pinned to a commit (`hf://ORG/REPO[@REVISION]`): no blob, vLLM
    /// downloads and loads its safetensors.
    case reference
}

/// One registered version of a model: a GGUF file, or (kind `reference`) a Hugging Face
/// repository at a pinned commit, which has no blob (`digest` and `path` are empty, `size` 0).
public struct ModelVersion: Sendable, Codable, Equatable {
    public var model: String
    public var version: String
    public var digest: String
    public var size: Int64
    public var source: String
    /// The file to load: the blob path, or the original file for `--link` registrations.
    public var path: String
    public var linked: Bool
    public var architecture: String
    public var parameterCount: Int
    public var quantMix: [String: QuantShare]
    public var contextLength: Int?
    public var hasChatTemplate: Bool
    public var tags: [String]
    public var created: Date
    public var kind: ModelKind = .gguf
    /// A reference's Hugging Face repo id (`ORG/REPO`).
    public var repo: String?
    /// A reference's requested revision (branch, tag or commit).
    public var revision: String?
    /// A reference's commit: the revision resolved by the Hub when it was pulled.
    public var commit: String?

    public var semver: SemVer? { try? SemVer(parsing: version) }
    /// `ORG/REPO@COMMIT` for a reference.
    public var pinnedRepository: String? {
        guard kind == .reference, let repo else { return nil }
        return commit.map { "\(repo)@\($0)" } ?? repo
    }
}

extension ModelVersion {
    private enum CodingKeys: String, CodingKey {
        case model, version, digest, size, source, path, linked, architecture, parameterCount, quantMix, contextLength,
             hasChatTemplate, tags, created, kind, repo, revision, commit
    }

    /// Decodes JSON written before references existed too (no `kind`: a GGUF).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        version = try c.decode(String.self, forKey: .version)
        digest = try c.decode(String.self, forKey: .digest)
        size = try c.decode(Int64.self, forKey: .size)
        source = try c.decode(String.self, forKey: .source)
        path = try c.decode(String.self, forKey: .path)
        linked = try c.decode(Bool.self, forKey: .linked)
        architecture = try c.decode(String.self, forKey: .architecture)
        parameterCount = try c.decode(Int.self, forKey: .parameterCount)
        quantMix = try c.decode([String: QuantShare].self, forKey: .quantMix)
        contextLength = try c.decodeIfPresent(Int.self, forKey: .contextLength)
        hasChatTemplate = try c.decode(Bool.self, forKey: .hasChatTemplate)
        tags = try c.decode([String].self, forKey: .tags)
        created = try c.decode(Date.self, forKey: .created)
        kind = try c.decodeIfPresent(ModelKind.self, forKey: .kind) ?? .gguf
        repo = try c.decodeIfPresent(String.self, forKey: .repo)
        revision = try c.decodeIfPresent(String.self, forKey: .revision)
        commit = try c.decodeIfPresent(String.self, forKey: .commit)
    }
}

/// A model with its versions (highest first) and the versions its channels resolve to.
public struct ModelSummary: Sendable, Codable, Equatable {
    public var id: String
    public var created: Date
    public var versions: [String]
    /// tag → version for explicit tags.
    public var tags: [String: String]
    public var latest: String?
    public var stable: String?
    /// The Hugging Face repository of the model's highest reference version (vLLM); nil for a
    /// model of GGUF files only.
    public var repo: String?
}

/// A measurement recorded against a version (bench, tuner trial, eval …).
public struct MetricRecord: Sendable, Codable, Equatable {
    public var model: String
    public var version: String
    public var kind: String
    public var values: [String: Double]
    public var configHash: String?
    public var machine: [String: String]
    public var created: Date
}

public struct GCReport: Sendable, Codable, Equatable {
    public var removedBlobs: [String]
    public var freedBytes: Int64
    public var removedTemporaries: Int
}

/// The model store: a SQLite database (GRDB) at `$AUTOGLM_HOME/registry.sqlite` plus a
/// content-addressed blob directory at `$AUTOGLM_HOME/blobs`. Safe to use from many threads and
/// processes at once (WAL, IMMEDIATE write transactions, busy timeout, flock per digest).
///
/// The methods `listModels()`, `versions(of:)` and `resolve(_:channel:)` return Codable values and
/// are meant to back `/v1/registry/models`, `/v1/registry/models/{id}/versions` and
/// `/v1/registry/models/{id}/resolve?channel=` when a server mounts them.
public final class Registry: Sendable {
    public let home: String
    public let databasePath: String
    public let blobs: BlobStore
    let dbQueue: DatabaseQueue

    /// `$AUTOGLM_HOME`, else `$AUTOGLM_MODELS_DIR` (the container image sets it to the `/models`
    /// volume, so `pull --models-dir /models` in a pod's init container and `serve` in the pod
    /// share one registry), else `~/.cache/autoglm`.
    public static func defaultHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let h = environment["AUTOGLM_HOME"], !h.isEmpty { return h }
        if let h = environment["AUTOGLM_MODELS_DIR"], !h.isEmpty { return h }
        let user = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return "\(user)/.cache/autoglm"
    }

    /// Opens (creating and migrating when needed) the registry. `home` defaults to
    /// `defaultHome()`; `databasePath` defaults to `home/registry.sqlite`.
    public init(home: String? = nil, databasePath: String? = nil) throws {
        let home = home ?? Registry.defaultHome()
        self.home = home
        self.databasePath = databasePath ?? "\(home)/registry.sqlite"
        self.blobs = BlobStore(directory: "\(home)/blobs")
        do {
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            let dbDir = (self.databasePath as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: dbDir, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.io(path: home, reason: "cannot create the registry directory: \(error.localizedDescription)")
        }
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.journalMode = .wal
        config.foreignKeysEnabled = true
        do {
            // One process migrates at a time (GRDB reads the applied list outside its transaction).
            let dbPath = self.databasePath
            let queue = try FileLock.withLock(dbPath + ".lock") { () throws -> DatabaseQueue in
                let q = try DatabaseQueue(path: dbPath, configuration: config)
                try Registry.migrator.migrate(q)
                return q
            }
            dbQueue = queue
        } catch let e as DatabaseError {
            throw RegistryError.database("\(self.databasePath): \(e.message ?? e.description)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: models, versions, tags, metrics") { db in
            try db.execute(sql: """
                CREATE TABLE models (
                    id TEXT PRIMARY KEY NOT NULL,
                    created REAL NOT NULL
                );
                CREATE TABLE versions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
                    version TEXT NOT NULL,
                    version_key TEXT NOT NULL,
                    prerelease INTEGER NOT NULL,
                    digest TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    source TEXT NOT NULL,
                    path TEXT NOT NULL,
                    linked INTEGER NOT NULL,
                    architecture TEXT NOT NULL,
                    parameter_count INTEGER NOT NULL,
                    quant_mix TEXT NOT NULL,
                    context_length INTEGER,
                    has_chat_template INTEGER NOT NULL,
                    created REAL NOT NULL,
                    UNIQUE(model_id, version_key)
                );
                CREATE INDEX versions_digest ON versions(digest);
                CREATE TABLE tags (
                    model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
                    tag TEXT NOT NULL,
                    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
                    updated REAL NOT NULL,
                    PRIMARY KEY(model_id, tag)
                );
                CREATE TABLE metrics (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
                    kind TEXT NOT NULL,
                    "values" TEXT NOT NULL,
                    config_hash TEXT,
                    machine TEXT NOT NULL,
                    created REAL NOT NULL
                );
                CREATE INDEX metrics_version ON metrics(version_id, kind);
                """)
        }
        m.registerMigration("v2: tuning studies and trials") { db in try Registry.createTuningTables(db) }
        m.registerMigration("v3: version parts (split GGUF sets)") { db in
            try db.execute(sql: """
                CREATE TABLE version_parts (
                    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
                    idx INTEGER NOT NULL,
                    digest TEXT NOT NULL,
                    PRIMARY KEY(version_id, idx)
                );
                CREATE INDEX version_parts_digest ON version_parts(digest);
                """)
        }
        m.registerMigration("v4: reference versions (Hugging Face repositories)") { db in
            // Rows from before read as GGUF files; a reference has no blob (digest '', path '').
            try db.execute(sql: """
                ALTER TABLE versions ADD COLUMN kind TEXT NOT NULL DEFAULT 'gguf';
                ALTER TABLE versions ADD COLUMN repo TEXT;
                ALTER TABLE versions ADD COLUMN revision TEXT;
                ALTER TABLE versions ADD COLUMN commit_sha TEXT;
                """)
        }
        return m
    }

    /// Names of the migrations applied (for diagnostics and tests).
    public func appliedMigrations() throws -> [String] {
        try read { db in try Registry.migrator.appliedMigrations(db) }
    }

    // MARK: - validation

    public static func validateModelID(_ id: String) throws {
        if !NameSyntax.isModelID(id) { throw RegistryError.invalidModelID(id) }
    }

    /// A tag or channel name (`Core.NameSyntax.isTag`, the rule a spec's model.channel is checked against).
    public static func validateTag(_ tag: String) throws {
        if !NameSyntax.isTag(tag) { throw RegistryError.invalidTag(tag) }
    }

    /// Turns a file or package name into a model id ("Qwen2.5_Coder.gguf" → "qwen2.5_coder").
    public static func suggestedID(from name: String) -> String {
        var base = (name as NSString).lastPathComponent
        if base.lowercased().hasSuffix(".gguf") { base = String(base.dropLast(5)) }
        let mapped = base.lowercased().unicodeScalars.map { s -> Character in
            (s >= "a" && s <= "z") || (s >= "0" && s <= "9") || s == "." || s == "_" || s == "-" ? Character(s) : "-"
        }
        let trimmed = String(mapped).trimmingCharacters(in: CharacterSet(charactersIn: "-._"))
        return trimmed.isEmpty ? "model" : String(trimmed.prefix(128))
    }

    // MARK: - database helpers

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try dbQueue.read(body) } catch let e as DatabaseError {
            throw RegistryError.database(e.message ?? e.description)
        }
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try dbQueue.write(body) } catch let e as DatabaseError {
            throw RegistryError.database(e.message ?? e.description)
        }
    }

    static let versionColumns = """
        v.id, v.model_id, v.version, v.digest, v.size, v.source, v.path, v.linked, v.architecture,
        v.parameter_count, v.quant_mix, v.context_length, v.has_chat_template, v.created,
        v.kind, v.repo, v.revision, v.commit_sha,
        (SELECT group_concat(t.tag, ',') FROM tags t WHERE t.version_id = v.id) AS tag_list
        """

    static func decodeVersion(_ row: Row) -> ModelVersion {
        let mixJSON: String = row["quant_mix"]
        let mix = (try? JSONDecoder().decode([String: QuantShare].self, from: Data(mixJSON.utf8))) ?? [:]
        let tagList: String? = row["tag_list"]
        let tags = (tagList ?? "").split(separator: ",").map(String.init).sorted()
        let linked: Int = row["linked"]
        let chat: Int = row["has_chat_template"]
        let created: Double = row["created"]
        let kind: String? = row["kind"]
        return ModelVersion(
            model: row["model_id"], version: row["version"], digest: row["digest"], size: row["size"],
            source: row["source"], path: row["path"], linked: linked != 0, architecture: row["architecture"],
            parameterCount: row["parameter_count"], quantMix: mix, contextLength: row["context_length"],
            hasChatTemplate: chat != 0, tags: tags, created: Date(timeIntervalSince1970: created),
            kind: kind.flatMap(ModelKind.init(rawValue:)) ?? .gguf, repo: row["repo"], revision: row["revision"],
            commit: row["commit_sha"])
    }

    static func knownModels(_ db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT id FROM models ORDER BY id")
    }

    static func sortedVersions(_ db: Database, model: String) throws -> [ModelVersion] {
        let rows = try Row.fetchAll(db, sql: "SELECT \(versionColumns) FROM versions v WHERE v.model_id = ?", arguments: [model])
        return rows.map(decodeVersion).sorted { a, b in
            switch (a.semver, b.semver) {
            case let (x?, y?): return x > y
            default: return a.version > b.version
            }
        }
    }

    static func requireModel(_ db: Database, _ model: String) throws {
        if try Int.fetchOne(db, sql: "SELECT 1 FROM models WHERE id = ?", arguments: [model]) == nil {
            throw RegistryError.modelNotFound(model, known: try knownModels(db))
        }
    }

    static func versionRowID(_ db: Database, model: String, version: SemVer) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT id FROM versions WHERE model_id = ? AND version_key = ?",
                           arguments: [model, version.precedenceKey])
    }

    // MARK: - registration

    /// Registers a GGUF file as `model@version`. Non-GGUF files are rejected before anything is
    /// copied. With `link` the file is registered in place (hashed, not copied); otherwise it is
    /// copied into the blob store (or moved, with `consume`, when it is a temp file of ours).
    /// A checksum mismatch or any failure leaves no blob and no row behind.
    @discardableResult
    public func register(file: String, model: String, version: SemVer, source: String, link: Bool = false,
                         consume: Bool = false, expectedDigest: String? = nil, tags: [String] = [],
                         progress: ((Int64) -> Void)? = nil) throws -> ModelVersion {
        try Registry.validateModelID(model)
        for t in tags { try Registry.validateTag(t) }
        let expected = try expectedDigest.map(normalizedDigest)
        guard FileManager.default.fileExists(atPath: file) else { throw RegistryError.fileNotFound(file) }
        if try read({ db in try Registry.versionRowID(db, model: model, version: version) }) != nil {
            throw RegistryError.versionExists(model: model, version: version.description)
        }
        let facts = try GGUFFacts.read(path: file)

        let digest: String, size: Int64, path: String
        var staged: BlobStore.Staged?
        if link {
            let absolute = URL(fileURLWithPath: file).standardizedFileURL.path
            (digest, size) = try BlobStore.hashFile(absolute, progress: progress)
            if let expected, expected != digest {
                throw RegistryError.checksumMismatch(source: source, expected: expected, actual: digest)
            }
            path = absolute
        } else {
            let s: BlobStore.Staged
            do {
                s = consume ? try blobs.stage(moving: file, expected: expected, progress: progress)
                            : try blobs.stage(copying: file, expected: expected, progress: progress)
            } catch let RegistryError.checksumMismatch(_, exp, act) {
                throw RegistryError.checksumMismatch(source: source, expected: exp, actual: act)
            }
            staged = s
            (digest, size, path) = (s.digest, s.size, blobs.path(for: s.digest))
        }

        let lock = try FileLock(path: blobs.lockPath(for: digest))
        defer { lock.unlock() }
        do {
            if let s = staged { try blobs.place(s) }
        } catch {
            if let s = staged { blobs.discard(s) }
            throw error
        }
        let mixData = (try? JSONEncoder().encode(facts.quantMix)) ?? Data("{}".utf8)
        let now = Date().timeIntervalSince1970
        return try write { db in
            try Registry.insertVersion(db, model: model, version: version, tags: tags, now: now) {
                try db.execute(sql: """
                    INSERT INTO versions (model_id, version, version_key, prerelease, digest, size, source, path, linked,
                        architecture, parameter_count, quant_mix, context_length, has_chat_template, created)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [model, version.description, version.precedenceKey, version.isPreRelease ? 1 : 0,
                                     digest, size, source, path, link ? 1 : 0, facts.architecture, facts.parameterCount,
                                     String(decoding: mixData, as: UTF8.self), facts.contextLength,
                                     facts.hasChatTemplate ? 1 : 0, now])
            }
        }
    }

    /// Registers a Hugging Face repository at a pinned commit as `model@version` (kind
    /// `reference`): no blob, nothing downloaded. `architecture` and `parameterCount` are what
    /// the Hub reported (empty and 0 when it did not).
    @discardableResult
    public func registerReference(repo: String, revision: String, commit: String, model: String, version: SemVer,
                                  source: String, architecture: String = "", parameterCount: Int = 0,
                                  tags: [String] = []) throws -> ModelVersion {
        try Registry.validateModelID(model)
        for t in tags { try Registry.validateTag(t) }
        let now = Date().timeIntervalSince1970
        return try write { db in
            try Registry.insertVersion(db, model: model, version: version, tags: tags, now: now) {
                try db.execute(sql: """
                    INSERT INTO versions (model_id, version, version_key, prerelease, digest, size, source, path, linked,
                        architecture, parameter_count, quant_mix, context_length, has_chat_template, created,
                        kind, repo, revision, commit_sha)
                    VALUES (?, ?, ?, ?, '', 0, ?, '', 0, ?, ?, '{}', NULL, 0, ?, 'reference', ?, ?, ?)
                    """, arguments: [model, version.description, version.precedenceKey, version.isPreRelease ? 1 : 0,
                                     source, architecture, parameterCount, now, repo, revision, commit])
            }
        }
    }

    /// One new version row: the model row if it is new, `version` not there yet, `insert` (the
    /// `INSERT INTO versions`), then its tags; returns the row as stored.
    static func insertVersion(_ db: Database, model: String, version: SemVer, tags: [String], now: Double,
                              _ insert: () throws -> Void) throws -> ModelVersion {
        try db.execute(sql: "INSERT OR IGNORE INTO models (id, created) VALUES (?, ?)", arguments: [model, now])
        if try Registry.versionRowID(db, model: model, version: version) != nil {
            throw RegistryError.versionExists(model: model, version: version.description)
        }
        try insert()
        let rowID = db.lastInsertedRowID
        for t in tags {
            try db.execute(sql: "INSERT OR REPLACE INTO tags (model_id, tag, version_id, updated) VALUES (?, ?, ?, ?)",
                           arguments: [model, t, rowID, now])
        }
        let row = try Row.fetchOne(db, sql: "SELECT \(Registry.versionColumns) FROM versions v WHERE v.id = ?", arguments: [rowID])
        guard let row else { throw RegistryError.database("version row vanished after insert") }
        return Registry.decodeVersion(row)
    }

    /// Reference versions of `repo` (newest registration first), optionally only those pulled
    /// for `revision`.
    public func references(repo: String, revision: String? = nil) throws -> [ModelVersion] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(Registry.versionColumns) FROM versions v
                WHERE v.kind = 'reference' AND v.repo = ? AND (? IS NULL OR v.revision = ?) ORDER BY v.created DESC, v.id DESC
                """, arguments: [repo, revision, revision]).map(Registry.decodeVersion)
        }
    }

    /// Moves a downloaded file into the blob store (verified against `expected` when given) without
    /// registering a version: for the further parts of a split GGUF set.
    public func storeBlob(moving file: String, expected: String?, source: String) throws -> (digest: String, size: Int64) {
        let s: BlobStore.Staged
        do { s = try blobs.stage(moving: file, expected: expected) } catch let RegistryError.checksumMismatch(_, exp, act) {
            throw RegistryError.checksumMismatch(source: source, expected: exp, actual: act)
        }
        let lock = try FileLock(path: blobs.lockPath(for: s.digest))
        defer { lock.unlock() }
        do { try blobs.place(s) } catch { blobs.discard(s); throw error }
        return (s.digest, s.size)
    }

    /// Records the further parts (2…N, in order) of a split GGUF registered as `model@version`.
    public func attachParts(model: String, version: SemVer, parts: [String]) throws {
        try write { db in
            guard let id = try Registry.versionRowID(db, model: model, version: version) else {
                throw RegistryError.versionNotFound(model: model, version: version.description, known: [])
            }
            for (i, d) in parts.enumerated() {
                try db.execute(sql: "INSERT OR REPLACE INTO version_parts (version_id, idx, digest) VALUES (?, ?, ?)",
                               arguments: [id, i + 2, d])
            }
        }
    }

    /// Blob paths of a split version's further parts (empty for a single-file model).
    public func parts(model: String, version: String) throws -> [String] {
        guard let v = try? SemVer(parsing: version) else { return [] }
        let digests: [String] = try read { db in
            guard let id = try Registry.versionRowID(db, model: model, version: v) else { return [] }
            return try String.fetchAll(db, sql: "SELECT digest FROM version_parts WHERE version_id = ? ORDER BY idx", arguments: [id])
        }
        return digests.map { blobs.path(for: $0) }
    }

    /// The newest registration made from `source` (for offline lookups).
    public func latestVersion(withSource source: String) throws -> ModelVersion? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT \(Registry.versionColumns) FROM versions v WHERE v.source = ? ORDER BY v.created DESC LIMIT 1",
                             arguments: [source]).map(Registry.decodeVersion)
        }
    }

    /// The version a model@version would take, if it exists.
    public func find(model: String, version: SemVer) throws -> ModelVersion? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT \(Registry.versionColumns) FROM versions v WHERE v.model_id = ? AND v.version_key = ?",
                             arguments: [model, version.precedenceKey]).map(Registry.decodeVersion)
        }
    }

    // MARK: - queries (REST-shaped)

    /// GET /v1/registry/models
    public func listModels() throws -> [ModelSummary] {
        try read { db in
            let models = try Row.fetchAll(db, sql: "SELECT id, created FROM models ORDER BY id")
            return try models.map { row in
                let id: String = row["id"]
                let created: Double = row["created"]
                let versions = try Registry.sortedVersions(db, model: id)
                var tags: [String: String] = [:]
                for v in versions { for t in v.tags { tags[t] = v.version } }
                return ModelSummary(
                    id: id, created: Date(timeIntervalSince1970: created), versions: versions.map(\.version), tags: tags,
                    latest: Registry.pick(versions, channel: "latest", tags: tags)?.version,
                    stable: Registry.pick(versions, channel: "stable", tags: tags)?.version,
                    repo: versions.first { $0.kind == .reference }?.repo)
            }
        }
    }

    /// GET /v1/registry/models/{id}/versions — highest first.
    public func versions(of model: String) throws -> [ModelVersion] {
        try read { db in
            try Registry.requireModel(db, model)
            return try Registry.sortedVersions(db, model: model)
        }
    }

    /// GET /v1/registry/models/{id}/resolve?channel= — `channel` is a tag (`stable`, `canary`,
    /// `latest` or a user tag) or an exact version. Without an explicit tag, `stable` is the
    /// highest non-pre-release version, `latest` the highest version, `canary` falls back to `latest`.
    public func resolve(_ model: String, channel: String = "stable") throws -> ModelVersion {
        try read { db in
            try Registry.requireModel(db, model)
            let versions = try Registry.sortedVersions(db, model: model)
            if let v = try? SemVer(parsing: channel) {
                guard let hit = versions.first(where: { $0.semver == v }) else {
                    throw RegistryError.versionNotFound(model: model, version: channel, known: versions.map(\.version))
                }
                return hit
            }
            var tags: [String: String] = [:]
            for v in versions { for t in v.tags { tags[t] = v.version } }
            guard let hit = Registry.pick(versions, channel: channel, tags: tags) else {
                throw RegistryError.noVersionForChannel(model: model, channel: channel)
            }
            return hit
        }
    }

    /// Resolves "ID", "ID@VERSION" or "ID:TAG".
    public func resolve(reference: String) throws -> ModelVersion {
        if let at = reference.firstIndex(of: "@") {
            return try resolve(String(reference[..<at]), channel: String(reference[reference.index(after: at)...]))
        }
        if let colon = reference.firstIndex(of: ":") {
            return try resolve(String(reference[..<colon]), channel: String(reference[reference.index(after: colon)...]))
        }
        return try resolve(reference, channel: "stable")
    }

    static func pick(_ sortedDesc: [ModelVersion], channel: String, tags: [String: String]) -> ModelVersion? {
        if let v = tags[channel] { return sortedDesc.first { $0.version == v } }
        switch channel {
        case "stable": return sortedDesc.first { $0.semver.map { !$0.isPreRelease } ?? false }
        case "latest", "canary": return sortedDesc.first
        default: return nil
        }
    }

    // MARK: - tags

    /// Points `tag` of `model` at `version` (moving it if it pointed elsewhere).
    public func tag(_ model: String, version: SemVer, as tag: String) throws {
        try Registry.validateTag(tag)
        if (try? SemVer(parsing: tag)) != nil { throw RegistryError.invalidTag(tag) }
        try write { db in
            try Registry.requireModel(db, model)
            guard let id = try Registry.versionRowID(db, model: model, version: version) else {
                throw RegistryError.versionNotFound(model: model, version: version.description,
                                                    known: try Registry.sortedVersions(db, model: model).map(\.version))
            }
            try db.execute(sql: "INSERT OR REPLACE INTO tags (model_id, tag, version_id, updated) VALUES (?, ?, ?, ?)",
                           arguments: [model, tag, id, Date().timeIntervalSince1970])
        }
    }

    /// Removes a tag; returns whether it existed.
    @discardableResult
    public func untag(_ model: String, tag: String) throws -> Bool {
        try write { db in
            try Registry.requireModel(db, model)
            try db.execute(sql: "DELETE FROM tags WHERE model_id = ? AND tag = ?", arguments: [model, tag])
            return db.changesCount > 0
        }
    }

    // MARK: - removal and gc

    /// Removes one version (or every version, and the model, when `version` is nil). Blobs stay
    /// until `gc()` (a reference has none: removing it only drops its row). Returns the removed versions.
    @discardableResult
    public func remove(_ model: String, version: SemVer? = nil) throws -> [ModelVersion] {
        try write { db in
            try Registry.requireModel(db, model)
            let all = try Registry.sortedVersions(db, model: model)
            let doomed: [ModelVersion]
            if let version {
                guard let v = all.first(where: { $0.semver == version }) else {
                    throw RegistryError.versionNotFound(model: model, version: version.description, known: all.map(\.version))
                }
                doomed = [v]
                try db.execute(sql: "DELETE FROM versions WHERE model_id = ? AND version_key = ?",
                               arguments: [model, version.precedenceKey])
            } else {
                doomed = all
                try db.execute(sql: "DELETE FROM versions WHERE model_id = ?", arguments: [model])
            }
            let left = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM versions WHERE model_id = ?", arguments: [model]) ?? 0
            if left == 0 { try db.execute(sql: "DELETE FROM models WHERE id = ?", arguments: [model]) }
            return doomed
        }
    }

    /// Deletes blobs no version references, and temp files older than `staleAfter` seconds.
    /// Each blob is re-checked under its digest lock, so a concurrent pull is never collected.
    public func gc(dryRun: Bool = false, staleAfter: TimeInterval = 3600) throws -> GCReport {
        var report = GCReport(removedBlobs: [], freedBytes: 0, removedTemporaries: 0)
        for digest in blobs.digests().sorted() {
            let lock = try FileLock(path: blobs.lockPath(for: digest))
            defer { lock.unlock() }
            let used = try read { db in
                try Int.fetchOne(db, sql: "SELECT 1 FROM versions WHERE digest = ? AND linked = 0 AND kind = 'gguf' LIMIT 1", arguments: [digest]) != nil
                    || Int.fetchOne(db, sql: "SELECT 1 FROM version_parts WHERE digest = ? LIMIT 1", arguments: [digest]) != nil
            }
            if used { continue }
            let p = blobs.path(for: digest)
            let size = ((try? FileManager.default.attributesOfItem(atPath: p)[.size]) as? NSNumber)?.int64Value ?? 0
            if !dryRun {
                do { try FileManager.default.removeItem(atPath: p) } catch {
                    throw RegistryError.io(path: p, reason: "cannot remove: \(error.localizedDescription)")
                }
                try? FileManager.default.removeItem(atPath: blobs.lockPath(for: digest))
            }
            report.removedBlobs.append(digest)
            report.freedBytes += size
        }
        for t in blobs.staleTemporaries(olderThan: staleAfter) {
            if !dryRun { try? FileManager.default.removeItem(atPath: t) }
            report.removedTemporaries += 1
        }
        return report
    }

    // MARK: - metrics

    public func recordMetric(model: String, version: SemVer, kind: String, values: [String: Double],
                             configHash: String? = nil, machine: [String: String] = [:]) throws {
        let valuesJSON = String(decoding: (try? JSONEncoder().encode(values)) ?? Data("{}".utf8), as: UTF8.self)
        let machineJSON = String(decoding: (try? JSONEncoder().encode(machine)) ?? Data("{}".utf8), as: UTF8.self)
        try write { db in
            try Registry.requireModel(db, model)
            guard let id = try Registry.versionRowID(db, model: model, version: version) else {
                throw RegistryError.versionNotFound(model: model, version: version.description,
                                                    known: try Registry.sortedVersions(db, model: model).map(\.version))
            }
            try db.execute(sql: "INSERT INTO metrics (version_id, kind, \"values\", config_hash, machine, created) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [id, kind, valuesJSON, configHash, machineJSON, Date().timeIntervalSince1970])
        }
    }

    public func metrics(model: String, version: SemVer? = nil, kind: String? = nil) throws -> [MetricRecord] {
        try read { db in
            try Registry.requireModel(db, model)
            let rows = try Row.fetchAll(db, sql: """
                SELECT v.version, v.version_key, m.kind, m."values", m.config_hash, m.machine, m.created
                FROM metrics m JOIN versions v ON v.id = m.version_id
                WHERE v.model_id = ? ORDER BY m.id
                """, arguments: [model])
            return rows.compactMap { row -> MetricRecord? in
                let key: String = row["version_key"]
                if let version, version.precedenceKey != key { return nil }
                let k: String = row["kind"]
                if let kind, kind != k { return nil }
                let vj: String = row["values"]
                let mj: String = row["machine"]
                let created: Double = row["created"]
                return MetricRecord(
                    model: model, version: row["version"], kind: k,
                    values: (try? JSONDecoder().decode([String: Double].self, from: Data(vj.utf8))) ?? [:],
                    configHash: row["config_hash"],
                    machine: (try? JSONDecoder().decode([String: String].self, from: Data(mj.utf8))) ?? [:],
                    created: Date(timeIntervalSince1970: created))
            }
        }
    }
}
