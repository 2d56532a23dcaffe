import Foundation

/// Where a backend stands, as the front door's probes see it.
public enum UpstreamState: Sendable, Equatable {
    /// Launched (or first contacted) and not answering its readiness check yet.
    case starting(String)
    case ready
    /// Was reachable and is not now (process exited, probe failing, connection refused).
    case down(String)
}

/// The backend's own serving gauges and counters, mapped to autoglm's names (nil: the backend
/// does not report it).
public struct BackendStats: Sendable, Equatable {
    public var running: Double?
    public var waiting: Double?
    public var kvUsage: Double?
    public var promptTokens: Double?
    public var generationTokens: Double?
    public init(running: Double? = nil, waiting: Double? = nil, kvUsage: Double? = nil,
                promptTokens: Double? = nil, generationTokens: Double? = nil) {
        self.running = running; self.waiting = waiting; self.kvUsage = kvUsage
        self.promptTokens = promptTokens; self.generationTokens = generationTokens
    }
}

/// A backend the proxy front door forwards to: a server process autoglm launched and supervises
/// (llama-server, vLLM) or an OpenAI-compatible server that runs elsewhere. Implemented by the
/// Backends module; the Server module only forwards and reports.
public protocol Upstream: Sendable {
    /// `http://host:port` of the backend's API now (changes when a process is restarted on a new
    /// port); nil while none is running.
    var baseURL: String? { get }
    /// Bearer key autoglm sends to the backend (never the client's own key).
    var apiKey: String? { get }
    var state: UpstreamState { get }
    /// False while a supervised process is dead or restarting (/healthz answers 503).
    var health: (ok: Bool, reason: String) { get }
    /// Sequences the backend decodes at once, when known (the rest of the in-flight requests
    /// count as waiting).
    var slots: Int? { get }
    /// A forwarded request could not connect: not ready until the next good probe.
    func markUnreachable(_ reason: String)
    /// Launches/contacts the backend and keeps watching it (probes, restarts) until `stop()`.
    func run() async
    /// Stops watching and stops a supervised process (SIGTERM, then SIGKILL).
    func stop() async
    /// The backend's metrics mapped to autoglm's names; nil when it exposes none.
    func stats() async -> BackendStats?
}
