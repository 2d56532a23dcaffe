import Core
import Spec
import ArgumentParser
import Backends
import Deploy
import Engine
import Foundation
import Logging
import Models
import Registry
import Server
import Telemetry
import GRPCAPI
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API with continuous batching.",
        discussion: """
        --config SPEC serves what an autoglm.yaml describes (the file `autoglm deploy` mounts into \
        every pod; --env picks an environments overlay): model.ref with model.version or \
        model.channel; backend.threads, maxSeqs, maxBatchedTokens, kvCacheMB, contextLength, \
        kvCacheType, batchWaitMs, prefixCache, speculative and speculativeK; server.port, server.grpcPort, server.drainTimeoutSeconds and server.apiKeys \
        ({env: VAR} reads $VAR, which must be set; the rendered Deployment fills \
        AUTOGLM_API_KEY_<i> from each secretRef). A flag given on the command line overrides the \
        spec's value (--model replaces model.ref, version and channel; for backend vllm it may \
        name a registered reference, `autoglm pull hf://ORG/REPO[@REV]`, served at its pinned \
        commit). With --config the host \
        defaults to 0.0.0.0, so a pod answers its probes and its Service; otherwise 127.0.0.1.

        Every backend.type gets the same front door (auth, CORS, limits, logs, /healthz, /readyz, \
        /metrics, drain): native runs the built-in engine in this process; llamacpp starts \
        llama-server (backend.executable, $AUTOGLM_LLAMA_SERVER or $PATH) on loopback with the \
        spec's settings and supervises it (restarted with backoff when it exits); vllm starts \
        `vllm serve` the same way; openai forwards to backend.url with backend.apiKey (or \
        $AUTOGLM_UPSTREAM_API_KEY). --backend-url fronts a server of the spec's backend that \
        already runs there (a pod's vLLM container); without --config it fronts any \
        OpenAI-compatible server.

        Models come from the registry at $AUTOGLM_HOME, else $AUTOGLM_MODELS_DIR (the image sets \
        /models, the volume `autoglm pull --models-dir /models` fills in the init container), else \
        ~/.cache/autoglm; a model that is not there is pulled on demand.
        """)

    @OptionGroup var options: ModelOptions
    @OptionGroup var tracing: TracingOptions
    @Option(name: .long, help: "An autoglm.yaml to serve (see below); flags given with it override it.") var config: String?
    @Option(name: .long, help: "Environments overlay of --config to apply.") var env: String?
    @Option(name: .long, help: "Address to bind (default: 127.0.0.1; 0.0.0.0 with --config).") var host: String?
    @Option(name: .long, help: "Port to listen on (default: 8080 or server.port).") var port: Int?
    @Option(name: .customLong("grpc-port"), help: "Port of the gRPC API (autoglm.v1, health, reflection) on the same address; 0 or absent: off (default: server.grpcPort).") var grpcPort: Int?
    @Option(name: .customLong("max-seqs"), help: "Sequences decoded together (default: 8).") var maxSeqs: Int?
    @Option(name: .customLong("max-batched-tokens"), help: "Tokens per engine step, decode + prefill chunks (default: 512).") var maxBatchedTokens: Int?
    @Option(name: .customLong("kv-cache-mb"), help: "KV-cache budget in MiB (default: 512).") var kvCacheMB: Int?
    @Option(name: .customLong("kv-type"), help: "KV-cache element type: f16 (default) or f32.") var kvType: String?
    @Option(name: .customLong("batch-wait-ms"), help: "Milliseconds an idle engine waits for more requests (up to max-seqs) before its first step, 0...10000 (default: 0).") var batchWaitMs: Int?
    @Option(name: .long, help: "Context length per sequence (default: the model's, capped by the KV budget).") var ctx: Int?
    @Flag(name: .customLong("no-prefix-cache"), help: "Do not keep finished prompts' KV blocks for reuse by later requests that start the same way (automatic prefix caching is on by default).") var noPrefixCache = false
    @Option(name: .customLong("speculative"), help: "Speculative decoding: ngram (prompt-lookup drafts verified in one forward pass; greedy output identical) or off (default: off or backend.speculative; draft is not available yet).") var speculative: String?
    @Option(name: .customLong("speculative-k"), help: "Most draft tokens per sequence and step, 1...32 (default: 5 or backend.speculativeK).") var speculativeK: Int?
    @Option(name: .customLong("max-queue"), help: "Waiting sequences (prompts × n of every queued request) before 429.") var maxQueue = ServingDefaults.maxQueue
    @Option(name: .customLong("max-seqs-per-request"), help: "Most sequences (prompts × n) one request may ask for (default: 64).") var maxSeqsPerRequest: Int?
    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable; also AUTOGLM_API_KEYS, comma-separated).") var apiKeys: [String] = []
    @Option(name: .customLong("served-model-name"), help: "Model name in the API (default: the file name).") var servedModelName: String?
    @Option(name: .customLong("log-format"), help: "text or json.") var logFormat = "text"
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM waits for in-flight requests (default: 30 or server.drainTimeoutSeconds).") var drainTimeout: Double?
    @Option(name: .customLong("unready-delay"), help: "Seconds after SIGTERM that /readyz answers 503 before the listener closes.") var unreadyDelay: Double = 0
    @Option(name: .customLong("request-timeout"), help: "Seconds before a request is cancelled (0: none).") var requestTimeout: Double = 600
    @Option(name: .customLong("max-body-mb"), help: "Largest request body in MiB.") var maxBodyMB: Double = 4
    @Option(name: .customLong("max-prompt-mb"), help: "Largest prompt text of one request in MiB, checked before tokenizing (default: 1).") var maxPromptMB: Double = 1
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may sit idle (no request, or a request head or body not arriving) before it is closed.") var idleTimeout: Double = 60
    @Option(name: .customLong("header-timeout"), help: "Seconds a request head may take to arrive in full.") var headerTimeout: Double = 10
    @Option(name: .customLong("cors-origin"), help: "Origin browsers may call the API from (repeatable, at most 16; * for any). Default: none (no CORS headers).") var corsOrigins: [String] = []
    @Option(name: .customLong("backend-url"), help: "Front the OpenAI-compatible server already running at this URL instead of launching the spec's backend (without --config: any upstream).") var backendURL: String?

    func validate() throws {
        try FlagRange.check("--port", port, 0...65535)
        try FlagRange.check("--grpc-port", grpcPort, 0...65535)
        try FlagRange.check("--max-seqs", maxSeqs, 1...4096)
        try FlagRange.check("--max-batched-tokens", maxBatchedTokens, 1...1_048_576)
        try FlagRange.check("--kv-cache-mb", kvCacheMB, 1...1_048_576, unit: " MiB")
        if let kvType { guard let t = KVCacheType(rawValue: kvType), KVCacheType.native.contains(t) else { throw ValidationError("--kv-type must be f16 or f32 (got \(kvType))") } }
        try FlagRange.check("--batch-wait-ms", batchWaitMs, 0...10_000)
        try FlagRange.check("--ctx", ctx, 16...16_777_216)
        _ = try SpeculativeFlags.config(speculative, k: speculativeK, spec: nil)
        try FlagRange.check("--max-queue", maxQueue, 0...1_000_000, unit: " sequences")
        try FlagRange.check("--max-seqs-per-request", maxSeqsPerRequest, 1...4096)
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json (got \(logFormat))") }
        try FlagRange.check("--drain-timeout", drainTimeout, 0...86_400, unit: " s")
        try FlagRange.check("--unready-delay", unreadyDelay, 0...3_600, unit: " s")
        try FlagRange.check("--request-timeout", requestTimeout, 0...604_800, unit: " s")
        try FlagRange.check("--idle-timeout", idleTimeout, 1...86_400, unit: " s")
        try FlagRange.check("--header-timeout", headerTimeout, 1...3_600, unit: " s")
        try FlagRange.check("--max-body-mb", maxBodyMB, 0.001...1024, unit: " MiB")
        try FlagRange.check("--max-prompt-mb", maxPromptMB, 0.001...1024, unit: " MiB")
        if apiKeys.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--api-key is empty: an empty key would turn authentication off; give the key, or leave --api-key out to serve without auth")
        }
        if Self.environmentKeys(ProcessInfo.processInfo.environment)?.isEmpty == true {
            throw ValidationError("AUTOGLM_API_KEYS is set but holds no key: that would turn authentication off; set it to KEY[,KEY...] or unset it to serve without auth")
        }
        if env != nil && config == nil { throw ValidationError("--env selects an overlay of --config; give --config SPEC too") }
        if corsOrigins.count > ServerConfig.maxCORSOrigins {
            throw ValidationError("--cors-origin is given \(corsOrigins.count) times; at most \(ServerConfig.maxCORSOrigins) origins (or * for any)")
        }
        for o in corsOrigins where o != "*" {
            guard let u = URL(string: o), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil,
                  u.path.isEmpty, u.query == nil else {
                throw ValidationError("--cors-origin '\(o)' is not an origin; write it as scheme://host[:port], e.g. https://app.example.com, or * for any")
            }
        }
        if let u = backendURL {
            guard let url = URL(string: u), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw ValidationError("--backend-url '\(u)' is not an http:// or https:// URL; e.g. http://127.0.0.1:8000/v1")
            }
            if options.model != nil && config == nil {
                throw ValidationError("--backend-url fronts a running server, which serves its own model; drop --model")
            }
        }
    }

    func run() async throws {
        let json = LogFormat(rawValue: logFormat) == .json
        LoggingSystem.bootstrap { label in
            json ? AnyLogHandlerBox.json(label) : AnyLogHandlerBox.text(label)
        }
        let logger = Logger(label: "autoglm.serve")
        let loaded = try config.map { try loadServeSpec($0, env: env) }
        let trace = try tracing.start(service: "autoglm-serve", spec: loaded?.server, logger: logger)
        try await withTracing(trace) { try await serve(loaded, logger: logger) }
    }

    func serve(_ loaded: Spec?, logger: Logger) async throws {
        var spec = loaded
        if spec == nil, backendURL != nil {
            var s = Spec(name: "upstream", model: ModelSpec(ref: "upstream"))
            s.backend.type = .openai
            spec = s
        }
        if let spec, spec.backend.type != .native {
            try await runFronted(spec, logger: logger)
            return
        }
        let b = spec?.backend ?? BackendSpec()

        let resolved: ModelResolver.Resolved
        if let spec, options.model == nil {
            resolved = try resolveSpecModel(spec.model)
        } else {
            resolved = try options.resolveModel(default: ModelResolver.defaultAlias)
        }
        let maxSeqs = self.maxSeqs ?? b.maxSeqs ?? NativeBackend.defaultMaxSeqs
        let maxBatchedTokens = self.maxBatchedTokens ?? b.maxBatchedTokens ?? 512
        let kvCacheMB = self.kvCacheMB ?? b.kvCacheMB ?? 512
        let kvType = self.kvType.flatMap(KVCacheType.init(rawValue:)) ?? b.kvCacheType ?? .f16
        let precision: KVCache.Precision = kvType == .f32 ? .f32 : .f16
        let batchWaitMs = self.batchWaitMs ?? b.batchWaitMs ?? 0
        let host = self.host ?? (spec == nil ? "127.0.0.1" : "0.0.0.0")
        let port = self.port ?? spec?.server.port ?? ServerSpec.defaultPort
        let drainTimeout = self.drainTimeout ?? spec.map { Double($0.server.drainTimeoutSeconds) } ?? Double(ServerSpec.defaultDrainTimeoutSeconds)

        let lm = try LoadedModel(path: resolved.path, threads: options.effectiveThreads(b.threads))
        let c = lm.model.config
        let bytesPerPos = Scheduler.kvBytesPerPosition(c, precision: precision)
        let kvPositions = Scheduler.kvCapacityPositions(megabytes: kvCacheMB, bytesPerPosition: bytesPerPos)
        let perMB = Double(1_048_576) / Double(max(1, bytesPerPos))
        if let asked = ctx ?? b.contextLength, min(asked, c.contextLength) > kvPositions {
            // An explicit context the whole budget cannot hold for even one sequence.
            let need = Int((Double(min(asked, c.contextLength)) / perMB).rounded(.up)) + 1
            throw ValidationError("--kv-cache-mb \(kvCacheMB) holds \(kvPositions) positions of this model (\(bytesPerPos) bytes each), fewer than one sequence of the context \(min(asked, c.contextLength)) (--ctx / backend.contextLength): raise --kv-cache-mb to at least \(need) or lower --ctx")
        }
        let context = min(ctx ?? b.contextLength ?? c.contextLength, c.contextLength, kvPositions)
        guard context >= 16 else {
            throw ValidationError("--kv-cache-mb \(kvCacheMB) holds only \(kvPositions) positions of this model (\(bytesPerPos) bytes each); raise it to at least \(Int((16 / perMB).rounded(.up)) + 1)")
        }
        let speculativeConfig = try SpeculativeFlags.config(speculative, k: speculativeK, spec: b)
        let scheduler = Scheduler(model: lm, config: SchedulerConfig(
            maxSeqs: maxSeqs, maxBatchedTokens: maxBatchedTokens, kvCacheMB: kvCacheMB, contextLength: context,
            kvPrecision: precision, batchWait: .milliseconds(batchWaitMs),
            prefixCaching: !noPrefixCache && b.prefixCache != false, speculative: speculativeConfig))
        let cfg = try serverConfig(spec, servedModelName: servedModelName ?? resolved.name, host: host, port: port, drainTimeout: drainTimeout)
        let keys = cfg.apiKeys
        logger.info("serving", metadata: [
            "model": "\(cfg.servedModelName)", "host": "\(host)", "port": "\(port)", "ctx": "\(context)",
            "max_seqs": "\(maxSeqs)", "max_batched_tokens": "\(maxBatchedTokens)", "kv_cache_mb": "\(kvCacheMB)",
            "prefix_cache": "\(!noPrefixCache && b.prefixCache != false)",
            "kv_type": "\(kvType.rawValue)", "batch_wait_ms": "\(batchWaitMs)",
            "speculative": "\(speculativeConfig.map { "ngram k=\($0.k)" } ?? "off")",
            "kv_blocks": "\(scheduler.stats.kvBlocksTotal)", "auth": "\(keys.isEmpty ? "off" : "\(keys.count) keys")",
        ])
        let server = OpenAIServer(scheduler: scheduler, config: cfg, logger: logger)
        var frontEnds: [any Service] = []
        if let grpcPort = self.grpcPort ?? spec?.server.grpcPort, grpcPort > 0 {
            guard grpcPort != port else {
                throw ValidationError("the gRPC port \(grpcPort) is also the HTTP port: give --grpc-port (or server.grpcPort) a port of its own, or 0 for no gRPC")
            }
            logger.info("serving gRPC", metadata: ["host": "\(host)", "grpc_port": "\(grpcPort)"])
            frontEnds.append(GRPCFrontEnd(server: server, host: host, port: grpcPort))
        }
        try await server.run(frontEnds: frontEnds)
        logger.info("drained; exiting")
    }

    /// The HTTP side, the same for every backend: address, limits, timeouts, keys, CORS, the
    /// registry's routes.
    func serverConfig(_ spec: Spec?, servedModelName: String, host: String, port: Int, drainTimeout: Double) throws -> ServerConfig {
        var cfg = ServerConfig()
        cfg.host = host
        cfg.port = port
        cfg.servedModelName = servedModelName
        cfg.maxQueue = maxQueue
        cfg.drainTimeout = drainTimeout
        cfg.requestTimeout = requestTimeout
        cfg.unreadyDelay = unreadyDelay
        cfg.maxBodyBytes = Int(maxBodyMB * 1_048_576)
        cfg.maxPromptBytes = Int(maxPromptMB * 1_048_576)
        cfg.idleTimeout = idleTimeout
        cfg.headerTimeout = headerTimeout
        cfg.corsOrigins = corsOrigins
        cfg.tracer = Telemetry.tracer
        if let maxSeqsPerRequest { cfg.maxSeqsPerRequest = maxSeqsPerRequest }
        var keys = Set(apiKeys)
        let environment = ProcessInfo.processInfo.environment
        keys.formUnion(Self.environmentKeys(environment) ?? [])
        if let spec { keys.formUnion(try specAPIKeys(spec.server.apiKeys, environment: environment)) }
        cfg.apiKeys = keys
        if let registry = openRegistryIfPresent() {
            cfg.extraRoutes.append { router in RegistryRoutes.add(to: router, registry: registry, exposePaths: false) }
        }
        return cfg
    }

    /// A llamacpp, vllm or openai spec: the backend through the serving layer, behind the proxy
    /// front door. The command-line engine flags override the spec's backend fields.
    func runFronted(_ original: Spec, logger: Logger) async throws {
        var spec = original
        if let v = maxSeqs { spec.backend.maxSeqs = v }
        if let v = maxBatchedTokens { spec.backend.maxBatchedTokens = v }
        if let v = ctx { spec.backend.contextLength = v }
        if let v = options.effectiveThreads(nil) { spec.backend.threads = v }
        if speculative != nil || speculativeK != nil {
            throw ValidationError("--speculative and --speculative-k set the native engine's speculative decoding; backend \(spec.backend.type.rawValue) runs its own engine (remove them)")
        }
        let environment = ProcessInfo.processInfo.environment
        do { try Fronting.preflight(spec, backendURL: backendURL, environment: environment) } catch {
            serveError(error.description)
            throw ExitCode(1)
        }
        var modelPath: String?
        var name = servedModelName
        switch spec.backend.type {
        case .llamacpp where backendURL == nil:
            let resolved = options.model != nil ? try options.resolveModel(default: ModelResolver.defaultAlias) : try resolveSpecModel(spec.model)
            modelPath = resolved.path
            name = name ?? resolved.name
        case .vllm:
            // --model through the registry: a reference pins the repo's commit (`--revision`).
            if let r = try options.resolveRepository() {
                spec.model.ref = r.repo
                spec.model.revision = r.revision
                name = name ?? r.name
            }
            name = name ?? VLLMBackend.repoID(spec.model.ref) ?? spec.model.ref
        default:
            name = name ?? spec.name
        }
        let host = self.host ?? (config == nil ? "127.0.0.1" : "0.0.0.0")
        let port = self.port ?? spec.server.port
        let drainTimeout = self.drainTimeout ?? Double(spec.server.drainTimeoutSeconds)
        let cfg = try serverConfig(config == nil ? nil : spec, servedModelName: name ?? spec.name, host: host, port: port, drainTimeout: drainTimeout)
        let upstreamKey = try upstreamKey(spec, environment: environment)
        let upstream: any Upstream
        do {
            upstream = try Fronting.upstream(spec, Fronting.Inputs(modelPath: modelPath, servedModelName: cfg.servedModelName,
                                                                   backendURL: backendURL, upstreamKey: upstreamKey,
                                                                   environment: environment)) { logger.info("\($0)") }
        } catch {
            serveError(error.description)
            throw ExitCode(1)
        }
        // A wrong key will not fix itself: refuse to start. An upstream that is down may come
        // back: serve (not ready) and keep probing.
        if let remote = upstream as? RemoteUpstream, let code = await remote.probeOnce() {
            if code == 401 || code == 403 {
                serveError(BackendError.upstreamRefusedKey(url: remote.baseURL ?? "", status: code).description)
                await remote.stop()
                throw ExitCode(1)
            }
        }
        logger.info("serving", metadata: [
            "backend": "\(spec.backend.type.rawValue)", "model": "\(cfg.servedModelName)", "host": "\(host)", "port": "\(port)",
            "upstream": "\(upstream.baseURL ?? "launched on loopback")",
            "auth": "\(cfg.apiKeys.isEmpty ? "off" : "\(cfg.apiKeys.count) keys")",
        ])
        let server = ProxyServer(upstream: upstream, config: cfg, logger: logger)
        try await server.run()
        logger.info("drained; exiting")
    }

    /// The key for an openai upstream: backend.apiKey ({env: VAR} must be set; a secretRef reads
    /// $AUTOGLM_UPSTREAM_API_KEY), else $AUTOGLM_UPSTREAM_API_KEY when set.
    func upstreamKey(_ spec: Spec, environment: [String: String]) throws -> String? {
        switch spec.backend.apiKey {
        case .env(let v)?:
            guard let k = environment[v], !k.isEmpty else {
                serveError("backend.apiKey reads $\(v), which is not set or empty; set it to the upstream's key or remove backend.apiKey")
                throw ExitCode(1)
            }
            return k
        case .secretRef(let n, let k)?:
            guard let v = environment["AUTOGLM_UPSTREAM_API_KEY"], !v.isEmpty else {
                serveError("backend.apiKey is secretRef \(n)/\(k), which only Kubernetes resolves; set AUTOGLM_UPSTREAM_API_KEY to the key")
                throw ExitCode(1)
            }
            return v
        case nil:
            return environment["AUTOGLM_UPSTREAM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    /// The keys in `$AUTOGLM_API_KEYS` (comma-separated), nil when it is not set.
    static func environmentKeys(_ environment: [String: String]) -> [String]? {
        environment["AUTOGLM_API_KEYS"].map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    /// Reads `--config` through the one spec loader (overlay, `${VAR}`), printing every problem.
    func loadServeSpec(_ file: String, env: String?) throws -> Spec {
        let loaded: LoadedSpec
        do {
            let text = try SpecLoader.readFile(file)
            loaded = try SpecLoader.load(yaml: text, file: file, environment: env, variables: SpecLoader.processEnvironment())
        } catch let e as DeployError {
            serveError(e.description)
            throw ExitCode(1)
        } catch let e as SpecError {
            for d in e.diagnostics { serveError(d.description) }
            throw ExitCode(1)
        }
        for n in loaded.notes { FileHandle.standardError.write(Data("note: \(n.description)\n".utf8)) }
        return loaded.spec
    }

    /// model.ref / version / channel through the registry (the same rule as the pod's
    /// `autoglm pull REF [--version V | --channel C] --models-dir DIR`).
    func resolveSpecModel(_ m: ModelSpec) throws -> ModelResolver.Resolved {
        let version = try m.version.map(parseVersion)
        let printer = ProgressPrinter()
        defer { printer.finish() }
        return try registryRun {
            let registry = try Registry()
            let puller = Puller(registry: registry, progress: { printer.update($0, $1, $2) },
                                log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
            let (v, pulled) = try SpecModel.ensure(ref: m.ref, version: version, channel: m.channel, puller: puller)
            if pulled { FileHandle.standardError.write(Data("pulled \(v.model)@\(v.version) into \(registry.home)\n".utf8)) }
            return ModelResolver.Resolved(path: try SpecModel.loadablePath(v, registry), name: v.model, version: v)
        }
    }

    /// server.apiKeys: each `{env: VAR}` must be set (a listed key that is missing would
    /// silently weaken auth, so it is an error).
    func specAPIKeys(_ sources: [APIKeySource], environment: [String: String]) throws -> Set<String> {
        var keys = Set<String>()
        for (i, k) in sources.enumerated() {
            switch k {
            case .env(let name):
                guard let v = environment[name], !v.isEmpty else {
                    serveError("server.apiKeys[\(i)] reads $\(name), which is not set or empty; set it (in Kubernetes the Deployment fills it from the Secret) or remove the entry")
                    throw ExitCode(1)
                }
                keys.insert(v)
            case .secretRef(let name, let key):
                // Outside Kubernetes nothing maps the Secret into the environment.
                guard let v = environment["AUTOGLM_API_KEY_\(i)"], !v.isEmpty else {
                    serveError("server.apiKeys[\(i)] is secretRef \(name)/\(key), which only Kubernetes resolves; set AUTOGLM_API_KEY_\(i) to the key, or serve the ConfigMap's spec rendered by `autoglm deploy render`")
                    throw ExitCode(1)
                }
                keys.insert(v)
            }
        }
        return keys
    }
}

private func serveError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}

enum AnyLogHandlerBox {
    static func json(_ label: String) -> any LogHandler { JSONLogHandler(label: label) }
    static func text(_ label: String) -> any LogHandler { StreamLogHandler.standardError(label: label) }
}

/// `--speculative` / `--speculative-k` over the spec's `backend.speculative` / `speculativeK`
/// (serve, generate): the engine setting, or a `ValidationError` naming the allowed values.
enum SpeculativeFlags {
    static func config(_ method: String?, k: Int?, spec: BackendSpec?) throws -> SpeculativeConfig? {
        let m: SpeculativeMethod
        do {
            m = try method.map(SpeculativeSyntax.method) ?? spec?.speculative ?? .off
        } catch {
            throw ValidationError("--speculative: \(error)")
        }
        do {
            return try SpeculativeConfig.make(method: m, k: k ?? spec?.speculativeK)
        } catch {
            throw ValidationError("--speculative-k: \(error)")
        }
    }
}
