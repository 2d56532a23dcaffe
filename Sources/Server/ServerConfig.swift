import Engine
import Foundation
import Hummingbird
import Logging

/// Everything `autoglm serve` configures on the HTTP side.
public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var servedModelName = "model"
    /// Requests waiting in the engine queue before new ones get 429.
    public var maxQueue = 64
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
    /// Extra routes mounted after the OpenAI ones (e.g. the registry's REST API).
    public var extraRoutes: [@Sendable (Router<ServerRequestContext>) -> Void] = []

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
