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

/// What the front door knows of a request when it picks where to send it.
public struct RouteHint: Sendable {
    /// Cumulative hashes of the prompt's leading blocks (`PromptPrefix.hashes`): equal leading
    /// hashes mean a shared prefix. Empty when the router does not ask for them.
    public var prefixHashes: [UInt64]
    public init(prefixHashes: [UInt64] = []) { self.prefixHashes = prefixHashes }
}

/// One request's hold on a backend: where it goes, until `UpstreamRouter.release`.
public struct RouteLease: Sendable {
    public let upstream: any Upstream
    /// The router's own name for the backend (a replica id).
    public let id: Int
    public let baseURL: String
    public init(upstream: any Upstream, id: Int, baseURL: String) { self.upstream = upstream; self.id = id; self.baseURL = baseURL }
}

/// How a forwarded request ended, as the router tallies it.
public struct RouteOutcome: Sendable {
    /// The backend failed it (no answer, 5xx, a broken stream); a client error is not a failure.
    public var failed: Bool
    public var ttft: Double?
    /// Seconds per output token after the first (streams with ≥ 2 tokens).
    public var tpot: Double?
    public init(failed: Bool, ttft: Double? = nil, tpot: Double? = nil) { self.failed = failed; self.ttft = ttft; self.tpot = tpot }
}

/// Where the proxy front door sends requests: the one backend of `serve` (`SingleUpstream`) or a
/// fleet's replicas behind `up`'s gateway (Fleet's `ReplicaPool`).
public protocol UpstreamRouter: Sendable {
    /// Ready when at least one backend is.
    var state: UpstreamState { get }
    var health: (ok: Bool, reason: String) { get }
    /// Sequences all backends decode at once, when known (admission: these + the queue).
    var slots: Int? { get }
    /// Whether `acquire` uses `RouteHint.prefixHashes` (else the front door does not compute them).
    var usesPrefixes: Bool { get }
    /// A ready backend for the request, other than those in `excluding`; nil when none is.
    func acquire(_ hint: RouteHint, excluding: Set<Int>) -> RouteLease?
    func release(_ lease: RouteLease, _ outcome: RouteOutcome)
    func run() async
    func stop() async
    func stats() async -> BackendStats?
}

/// `serve`'s router: every request goes to its one backend.
public struct SingleUpstream: UpstreamRouter {
    public let upstream: any Upstream
    public init(_ upstream: any Upstream) { self.upstream = upstream }
    public var state: UpstreamState { upstream.state }
    public var health: (ok: Bool, reason: String) { upstream.health }
    public var slots: Int? { upstream.slots }
    public var usesPrefixes: Bool { false }
    public func acquire(_ hint: RouteHint, excluding: Set<Int>) -> RouteLease? {
        guard !excluding.contains(0), case .ready = upstream.state, let base = upstream.baseURL else { return nil }
        return RouteLease(upstream: upstream, id: 0, baseURL: base)
    }
    public func release(_ lease: RouteLease, _ outcome: RouteOutcome) {}
    public func run() async { await upstream.run() }
    public func stop() async { await upstream.stop() }
    public func stats() async -> BackendStats? { await upstream.stats() }
}

/// Prompt prefixes as block hashes, for prefix-affinity routing: the prompt text (a completion's
/// `prompt`, or a chat's messages as role + content in order) cut into `blockBytes`-byte blocks,
/// each hash covering everything before it (FNV-1a, chained), so two prompts share their first k
/// hashes exactly when they share their first k blocks.
public enum PromptPrefix {
    public static let blockBytes = 256
    /// At most this many blocks are hashed (64 KiB of prompt).
    public static let maxBlocks = 256

    public static func hashes(_ text: some Sequence<UInt8>) -> [UInt64] {
        var out: [UInt64] = []
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var n = 0
        for b in text {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3
            n += 1
            if n == blockBytes {
                out.append(h)
                n = 0
                if out.count == maxBlocks { break }
            }
        }
        return out
    }

    /// The routing text of a request body: chat messages as "role\u{1}content\u{2}…", else `prompt`.
    public static func text(of body: JSONValue) -> [UInt8] {
        guard case .object(let o) = body else { return [] }
        var out: [UInt8] = []
        if case .array(let msgs)? = o["messages"] {
            for m in msgs {
                guard case .object(let mo) = m else { continue }
                if case .string(let r)? = mo["role"] { out += Array(r.utf8) }
                out.append(1)
                switch mo["content"] {
                case .string(let c)?: out += Array(c.utf8)
                case .array(let parts)?:
                    for p in parts { if case .object(let po) = p, case .string(let t)? = po["text"] { out += Array(t.utf8) } }
                default: break
                }
                out.append(2)
            }
        } else if case .string(let p)? = o["prompt"] {
            out += Array(p.utf8)
        } else if case .array(let ps)? = o["prompt"], case .string(let p)? = ps.first {
            out += Array(p.utf8)
        }
        return out
    }
}
