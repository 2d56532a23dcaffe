import AsyncHTTPClient
import Foundation
import NIOCore
import Server
import Synchronization

/// A backend server process autoglm launches on 127.0.0.1 and supervises: its liveness checked
/// and its readiness probed every 200 ms (so /readyz follows an exit within a fraction of a
/// second; a live process is called down after 3 failed probes in a row), restarted with exponential backoff
/// (0.5 s doubling to 30 s, back to 0.5 s after a minute of health) when it exits, stopped with
/// SIGTERM then SIGKILL. With `announces` the server is started on port 0 and its address read
/// from its output (the kernel picks the port: no race); otherwise each start gets a fresh port.
public final class ManagedServer: Upstream {
    /// `llama-server`, `vllm`: for messages.
    public let program: String
    public let slots: Int?
    /// The key autoglm sends (a fleet gives its native replicas one of their own).
    public let apiKey: String?
    let command: @Sendable (_ port: Int) -> (executable: String, arguments: [String])
    let readyPath: String
    let announces: Bool
    /// Set in the process's environment on top of autoglm's own.
    let environment: [String: String]
    let log: @Sendable (String) -> Void
    var client: HTTPClient { ProbeClient.shared }
    let s = Mutex(Supervision())

    struct Supervision {
        var process: ServerProcess?
        var base: String?
        var state: UpstreamState = .starting("not launched yet")
        var health: (ok: Bool, reason: String) = (true, "starting")
        var stopped = false
        var starts = 0
        var attempts = 0
    }

    public init(program: String, slots: Int?, readyPath: String, announces: Bool = false, apiKey: String? = nil,
                environment: [String: String] = [:], log: @escaping @Sendable (String) -> Void,
                command: @escaping @Sendable (_ port: Int) -> (executable: String, arguments: [String])) {
        self.program = program; self.slots = slots; self.readyPath = readyPath; self.announces = announces; self.apiKey = apiKey
        self.environment = environment
        self.log = log; self.command = command
    }

    /// How long a server started on port 0 may take to print its address.
    static let announceTimeout = 300.0

    public var baseURL: String? { s.withLock { $0.base } }
    public var state: UpstreamState { s.withLock { $0.state } }
    public var health: (ok: Bool, reason: String) { s.withLock { $0.health } }
    /// How many times the process has been started.
    public var starts: Int { s.withLock { $0.starts } }
    /// How many times a start was tried (a process that exits before it announces its address
    /// counts here, not in `starts`).
    public var attempts: Int { s.withLock { $0.attempts } }
    /// The running process's id (tests kill it to check the restart).
    public var pid: Int32? { s.withLock { $0.process?.pid } }

    public func markUnreachable(_ reason: String) {
        s.withLock { if case .ready = $0.state { $0.state = .down(reason) } }
    }

    var stopped: Bool { s.withLock { $0.stopped } }

    public func run() async {
        let backoffStart = 0.5, backoffMax = 30.0
        var backoff = backoffStart
        while !stopped && !Task.isCancelled {
            let p: ServerProcess
            s.withLock { $0.attempts += 1 }
            do {
                if announces {
                    let (exe, args) = command(0)
                    p = try await ServerProcess.startAnnouncing(executable: exe, arguments: args, timeout: Self.announceTimeout,
                                                               environment: environment)
                } else {
                    let port = try freePort()
                    let (exe, args) = command(port)
                    p = try ServerProcess.start(executable: exe, arguments: args, port: port, environment: environment)
                }
            } catch {
                let why = "\(program) could not be started: \(error.detail); retrying in \(backoff) s"
                s.withLock { $0.state = .down(why); $0.health = (false, why) }
                log(why)
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, backoffMax)
                continue
            }
            let keep: Bool = s.withLock { st in
                guard !st.stopped else { return false }
                st.process = p; st.base = p.baseURL; st.starts += 1
                st.state = .starting("\(program) is loading the model"); st.health = (true, "ok")
                return true
            }
            guard keep else { _ = await p.stop(); return }
            log("started \(program) (pid \(p.pid)) on \(p.baseURL); its log: \(p.logPath)")
            var readySince: ContinuousClock.Instant?
            // A live process that was ready is called down only after `missesAllowed` probes in a
            // row fail (one slow answer on a busy machine is not an outage); an exit is seen at once.
            let missesAllowed = 3
            var misses = 0
            while !stopped && !Task.isCancelled {
                if !p.isAlive { break }
                let code = await Probe.status(client, p.baseURL + readyPath, apiKey: apiKey)
                let now = ContinuousClock.now
                if code == 200 {
                    misses = 0
                    if readySince == nil { readySince = now; log("\(program) is ready on \(p.baseURL)") }
                    if let r = readySince, now - r > .seconds(60) { backoff = backoffStart }
                } else {
                    misses += 1
                }
                let missed = misses
                s.withLock { st in
                    guard !st.stopped, st.process === p else { return }
                    if code == 200 { st.state = .ready }
                    else if readySince != nil {
                        if missed >= missesAllowed { st.state = .down("\(program) stopped answering its health check (\(code.map { "HTTP \($0)" } ?? "no answer"))") }
                    }
                    else { st.state = .starting("\(program) is loading the model (health: \(code.map { "HTTP \($0)" } ?? "not listening yet"))") }
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
            if stopped || Task.isCancelled { return }
            let why = "\(program) exited (\(await p.exitDescription().text)); restarting in \(backoff) s"
            s.withLock { st in
                st.state = .down(why); st.health = (false, why); st.base = nil; st.process = nil
            }
            log(why)
            _ = await p.stop()
            try? await Task.sleep(for: .seconds(backoff))
            backoff = min(backoff * 2, backoffMax)
        }
    }

    public func stop() async {
        let p: ServerProcess? = s.withLock { st in
            st.stopped = true
            st.state = .down("stopped")
            defer { st.process = nil; st.base = nil }
            return st.process
        }
        if let p { _ = await p.stop() }
    }

    public func stats() async -> BackendStats? {
        guard let base = baseURL else { return nil }
        return await Probe.metrics(client, base + "/metrics", apiKey: apiKey)
    }
}

/// A backend that runs elsewhere: an OpenAI-compatible upstream, or a vLLM the pod runs next to
/// the front door (`serve --backend-url`). Probed every second: `readyPath` answering 200 means
/// ready; 401/403 means autoglm's key is wrong (not ready, and said so).
public final class RemoteUpstream: Upstream {
    public let baseURL: String?
    public let apiKey: String?
    public let slots: Int?
    let readyPath: String
    let log: @Sendable (String) -> Void
    var client: HTTPClient { ProbeClient.shared }
    let s = Mutex<(state: UpstreamState, stopped: Bool)>((.starting("not contacted yet"), false))

    public init(url: String, apiKey: String?, slots: Int?, readyPath: String, log: @escaping @Sendable (String) -> Void) {
        baseURL = Self.normalize(url)
        self.apiKey = apiKey; self.slots = slots; self.readyPath = readyPath; self.log = log
    }

    /// `http://host:port/v1/` → `http://host:port` (the front door adds the `/v1/...` path).
    public static func normalize(_ url: String) -> String {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        if u.hasSuffix("/v1") { u.removeLast(3) }
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    public var state: UpstreamState { s.withLock { $0.state } }
    public var health: (ok: Bool, reason: String) { (true, "ok") }

    public func markUnreachable(_ reason: String) {
        s.withLock { if case .ready = $0.state { $0.state = .down(reason) } }
    }

    /// One probe: the status the readiness path answers, nil when nothing answers.
    public func probeOnce() async -> Int? {
        await Probe.status(client, (baseURL ?? "") + readyPath, apiKey: apiKey)
    }

    public func run() async {
        var last: UpstreamState?
        while !s.withLock({ $0.stopped }) && !Task.isCancelled {
            let code = await probeOnce()
            let next: UpstreamState
            switch code {
            case 200: next = .ready
            case 401, 403: next = .down("\(baseURL ?? "") refused autoglm's key (HTTP \(code ?? 0)); set backend.apiKey or $AUTOGLM_UPSTREAM_API_KEY")
            case .some(let c): next = .down("\(baseURL ?? "")\(readyPath) answered HTTP \(c)")
            case nil: next = .down("\(baseURL ?? "") does not answer (connection refused or timed out)")
            }
            s.withLock { if !$0.stopped { $0.state = next } }
            if next != last { log("backend \(baseURL ?? ""): \(next == .ready ? "ready" : "\(next)")"); last = next }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    public func stop() async {
        s.withLock { $0.stopped = true; $0.state = .down("stopped") }
    }

    public func stats() async -> BackendStats? {
        guard let base = baseURL else { return nil }
        return await Probe.metrics(client, base + "/metrics", apiKey: apiKey)
    }
}

/// Short HTTP GETs for probes and metric scrapes, on AsyncHTTPClient's shared client (2 s deadline each).
enum Probe {
    static func get(_ client: HTTPClient, _ url: String, apiKey: String? = nil) async -> (Int, ByteBuffer)? {
        var r = HTTPClientRequest(url: url)
        if let k = apiKey { r.headers.add(name: "Authorization", value: "Bearer \(k)") }
        do {
            let resp = try await client.execute(r, timeout: .seconds(2))
            let body = try await resp.body.collect(upTo: 4 << 20)
            return (Int(resp.status.code), body)
        } catch {
            return nil
        }
    }

    static func status(_ client: HTTPClient, _ url: String, apiKey: String? = nil) async -> Int? {
        await get(client, url, apiKey: apiKey)?.0
    }

    static func metrics(_ client: HTTPClient, _ url: String, apiKey: String?) async -> BackendStats? {
        guard let (code, body) = await get(client, url, apiKey: apiKey), code == 200 else { return nil }
        return BackendMetrics.map(String(decoding: body.readableBytesView, as: UTF8.self))
    }
}

/// The client of readiness probes and metric scrapes: AsyncHTTPClient's shared client without its
/// own tracing (a probe every few hundred milliseconds would otherwise be a trace each).
enum ProbeClient {
    static let shared: HTTPClient = {
        var c = HTTPClient.Configuration.singletonConfiguration  // what `HTTPClient.shared` uses
        c.tracing.tracer = nil
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
    }()
}
