import ArgumentParser
import Engine
import Foundation
import Logging
import Registry
import Server

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API with continuous batching.")

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "Address to bind.") var host = "127.0.0.1"
    @Option(name: .long, help: "Port to listen on.") var port = 8080
    @Option(name: .customLong("max-seqs"), help: "Sequences decoded together.") var maxSeqs = 8
    @Option(name: .customLong("max-batched-tokens"), help: "Tokens per engine step (decode + prefill chunks).") var maxBatchedTokens = 512
    @Option(name: .customLong("kv-cache-mb"), help: "KV-cache budget in MiB.") var kvCacheMB = 512
    @Option(name: .long, help: "Context length per sequence (default: the model's, capped by the KV budget).") var ctx: Int?
    @Option(name: .customLong("max-queue"), help: "Waiting requests before 429.") var maxQueue = 64
    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable; also AUTOGLM_API_KEYS, comma-separated).") var apiKeys: [String] = []
    @Option(name: .customLong("served-model-name"), help: "Model name in the API (default: the file name).") var servedModelName: String?
    @Option(name: .customLong("log-format"), help: "text or json.") var logFormat = "text"
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM waits for in-flight requests.") var drainTimeout: Double = 30
    @Option(name: .customLong("unready-delay"), help: "Seconds after SIGTERM that /readyz answers 503 before the listener closes.") var unreadyDelay: Double = 0
    @Option(name: .customLong("request-timeout"), help: "Seconds before a request is cancelled (0: none).") var requestTimeout: Double = 600
    @Option(name: .customLong("max-body-mb"), help: "Largest request body in MiB.") var maxBodyMB: Double = 4

    func validate() throws {
        guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be in 0...65535 (got \(port))") }
        guard maxSeqs >= 1 else { throw ValidationError("--max-seqs must be ≥ 1 (got \(maxSeqs))") }
        guard maxBatchedTokens >= 1 else { throw ValidationError("--max-batched-tokens must be ≥ 1 (got \(maxBatchedTokens))") }
        guard kvCacheMB >= 1 else { throw ValidationError("--kv-cache-mb must be ≥ 1 (got \(kvCacheMB))") }
        if let c = ctx, c < 16 { throw ValidationError("--ctx must be ≥ 16 (got \(c))") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be ≥ 0 (got \(maxQueue))") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json (got \(logFormat))") }
        guard drainTimeout >= 0, requestTimeout >= 0, unreadyDelay >= 0 else {
            throw ValidationError("--drain-timeout, --request-timeout and --unready-delay must be ≥ 0")
        }
        guard maxBodyMB > 0 else { throw ValidationError("--max-body-mb must be > 0") }
    }

    func run() async throws {
        let json = LogFormat(rawValue: logFormat) == .json
        LoggingSystem.bootstrap { label in
            json ? AnyLogHandlerBox.json(label) : AnyLogHandlerBox.text(label)
        }
        let logger = Logger(label: "autoglm.serve")
        let resolved = try options.resolveModel(default: ModelResolver.defaultAlias)
        let lm = try LoadedModel(path: resolved.path, threads: options.threads)
        let c = lm.model.config
        let bytesPerPos = Scheduler.kvBytesPerPosition(c, precision: SchedulerConfig().kvPrecision)
        let kvPositions = kvCacheMB * 1_048_576 / max(1, bytesPerPos) / 16 * 16
        let context = min(ctx ?? c.contextLength, c.contextLength, kvPositions)
        guard context >= 16 else {
            throw ValidationError("--kv-cache-mb \(kvCacheMB) holds only \(kvPositions) positions of this model; raise it")
        }
        let scheduler = Scheduler(model: lm, config: SchedulerConfig(
            maxSeqs: maxSeqs, maxBatchedTokens: maxBatchedTokens, kvCacheMB: kvCacheMB, contextLength: context))
        var cfg = ServerConfig()
        cfg.host = host
        cfg.port = port
        cfg.servedModelName = servedModelName ?? resolved.name
        cfg.maxQueue = maxQueue
        cfg.drainTimeout = drainTimeout
        cfg.requestTimeout = requestTimeout
        cfg.unreadyDelay = unreadyDelay
        cfg.maxBodyBytes = Int(maxBodyMB * 1_048_576)
        var keys = Set(apiKeys.filter { !$0.isEmpty })
        if let env = ProcessInfo.processInfo.environment["AUTOGLM_API_KEYS"] {
            for k in env.split(separator: ",") where !k.isEmpty { keys.insert(String(k)) }
        }
        cfg.apiKeys = keys
        if let registry = openRegistryIfPresent() {
            cfg.extraRoutes.append { router in RegistryRoutes.add(to: router, registry: registry) }
        }
        logger.info("serving", metadata: [
            "model": "\(cfg.servedModelName)", "host": "\(host)", "port": "\(port)", "ctx": "\(context)",
            "max_seqs": "\(maxSeqs)", "max_batched_tokens": "\(maxBatchedTokens)", "kv_cache_mb": "\(kvCacheMB)",
            "kv_blocks": "\(scheduler.stats.kvBlocksTotal)", "auth": "\(keys.isEmpty ? "off" : "\(keys.count) keys")",
        ])
        let server = OpenAIServer(scheduler: scheduler, config: cfg, logger: logger)
        try await server.run()
        logger.info("drained; exiting")
    }
}

enum AnyLogHandlerBox {
    static func json(_ label: String) -> any LogHandler { JSONLogHandler(label: label) }
    static func text(_ label: String) -> any LogHandler { StreamLogHandler.standardError(label: label) }
}
