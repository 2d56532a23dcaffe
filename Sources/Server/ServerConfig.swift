import Core
import Engine
import Foundation
import Hummingbird
import Logging
import Tracing

/// Everything `autoglm serve` configures on the HTTP side.
public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var servedModelName = "model"
    /// Sequences (prompts × n of every request) waiting in the engine queue before new requests
    /// get 429.
    public var maxQueue = ServingDefaults.maxQueue
    /// Most sequences one request may ask for (400 above).
    public var maxSeqsPerRequest = 64
    /// Largest prompt text of one request in UTF-8 bytes, checked before tokenizing (413 above).
    public var maxPromptBytes = 1 << 20
    /// Seconds a connection may sit idle — no new request, or a request head or body that
    /// stops arriving — before it is closed.
    public var idleTimeout: Double = 60
    /// Seconds a request head may take to arrive in full (a client trickling it is closed).
    public var headerTimeout: Double = 10
    /// Largest request body in bytes (413 above).
    public var maxBodyBytes = 4 << 20
    /// Seconds a request may run before it is cancelled (0: no limit).
    public var requestTimeout: Double = 600
    /// Accepted API keys for /v1/* (empty: no auth).
    public var apiKeys: Set<String> = []
    /// Seconds the engine loop may go without a heartbeat while busy before /healthz fails.
    public var healthTimeout: Double = 120
    /// Seconds without engine progress while work is queued before /readyz fails.
    public var readyTimeout: Double = 120
    /// Seconds SIGTERM waits for in-flight requests.
    public var drainTimeout: Double = 30
    /// Seconds between SIGTERM and closing the listener, while /readyz already answers 503
    /// (time for load balancers to notice).
    public var unreadyDelay: Double = 0
    /// Origins browsers may call the API from (`Access-Control-Allow-Origin`; `*` for any);
    /// empty: no CORS headers. At most `ServerConfig.maxCORSOrigins`.
    public var corsOrigins: [String] = []
    public static let maxCORSOrigins = 16
    /// Extra routes mounted after the OpenAI ones (e.g. the registry's REST API).
    public var extraRoutes: [@Sendable (Router<ServerRequestContext>) -> Void] = []
    /// Request tracing (server spans, W3C trace context in and out, the engine's phases): the
    /// bootstrapped tracer when `--otlp-endpoint` is set, else nil (no middleware, no spans).
    public var tracer: (any Tracer)? = nil

    public init() {}
}

public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// A swift-log handler printing one JSON object per line to stderr.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message, extra = event.metadata
        var o: [String: JSONValue] = [
            "ts": .string(ISO8601DateFormatter().string(from: Date())),
            "level": .string(level.rawValue),
            "logger": .string(label),
            "msg": .string(message.description),
        ]
        for (k, v) in metadata.merging(extra ?? [:], uniquingKeysWith: { $1 }) { o[k] = .string(v.description) }
        FileHandle.standardError.write(Data((JSONValue.object(o).serialized() + "\n").utf8))
    }
}
