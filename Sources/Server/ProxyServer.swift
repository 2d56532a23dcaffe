import Core
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Tracing
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// The front door in front of another backend (llama-server, vLLM, an OpenAI-compatible
/// upstream): the same auth, CORS, limits, logs, health, metrics and drain as the native server,
/// with the OpenAI routes forwarded to the backend. Streams are relayed line by line as they
/// arrive and checked on the way: a malformed or cut stream ends with an OpenAI-shaped error
/// event and `[DONE]`, never a hang.
///
/// Where a request goes is the router's choice: `serve`'s one backend (`SingleUpstream`) or a
/// fleet's replicas (`up`). A request that could not reach its backend before anything was sent to
/// the client is tried once more, on another backend when there is one.
///
/// Threads and state: handlers run on Hummingbird's tasks and only move bytes; the backends' state
/// is the router's (its own lock); this object holds configuration, an HTTP client and the
/// in-flight count and token tallies behind one lock.
public final class ProxyServer: Sendable {
    public let router: any UpstreamRouter
    public let config: ServerConfig
    public let metrics: ServerMetrics
    let logger: Logger
    let client: HTTPClient
    let draining = Flag()
    let state = Mutex(ProxyState())

    struct ProxyState {
        var inFlight = 0
        /// Tokens counted from responses' `usage` (used when the backend reports no counters).
        var seenPrompt = 0.0, seenGeneration = 0.0
        /// What the exported counters were last advanced to, per source.
        var lastBackendPrompt: Double?, lastBackendGeneration: Double?
        var lastSeenPrompt = 0.0, lastSeenGeneration = 0.0
    }

    /// The OpenAI routes forwarded as they are.
    public static let forwarded: [(HTTPRequest.Method, String)] = [
        (.get, "/v1/models"), (.post, "/v1/chat/completions"), (.post, "/v1/completions"), (.post, "/v1/embeddings"),
    ]

    public convenience init(upstream: any Upstream, config: ServerConfig, logger: Logger) {
        self.init(router: SingleUpstream(upstream), config: config, logger: logger)
    }

    /// `metrics`: a registry made by the caller (the fleet adds its own series to it); else a new one.
    public init(router: any UpstreamRouter, config: ServerConfig, logger: Logger, metrics: ServerMetrics? = nil) {
        self.router = router
        self.config = config
        self.logger = logger
        self.metrics = metrics ?? ServerMetrics(modelName: config.servedModelName)
        var hc = HTTPClient.Configuration()
        hc.redirectConfiguration = .disallow
        hc.decompression = .disabled
        hc.timeout = .init(connect: .seconds(2), read: .seconds(Int64(max(1, config.requestTimeout == 0 ? 86_400 : config.requestTimeout))))
        // Idle connections are dropped well before the backends drop them (llama.cpp's HTTP server
        // and uvicorn close idle keep-alive connections after 5 s): reusing one the other side has
        // just closed fails the request with `remoteConnectionClosed`.
        hc.connectionPool = .init(idleTimeout: .seconds(2), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        // No client spans of AsyncHTTPClient's own: `forward` makes one per try and sends its
        // context (AHC's would add a second `traceparent` header, which the backend cannot read).
        hc.tracing.tracer = nil
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: hc)
    }

    /// Most requests in flight at once: what the backend decodes plus the queue (429 above).
    var admissionLimit: Int { (router.slots ?? 0) + config.maxQueue }

    public func buildRouter() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        FrontDoor.addMiddleware(to: router, config: config, logger: logger)
        router.get("/healthz") { _, _ in self.healthz() }
        router.get("/readyz") { _, _ in self.readyz() }
        router.get("/metrics") { _, _ in
            let text = await self.renderMetrics()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        for (method, path) in Self.forwarded {
            router.on(RouterPath(path), method: method) { req, _ in await self.forward(req, path: path) }
        }
        for add in config.extraRoutes { add(router) }
        FrontDoor.addPreflight(to: router, config: config, paths: Self.forwarded.map(\.1))
        return router
    }

    public func makeApplication() -> some ApplicationProtocol {
        FrontDoor.application(buildRouter(), config: config, logger: logger)
    }

    // MARK: health

    func healthz() -> Response {
        let h = router.health
        if h.ok { return FrontDoor.json(.ok, ["status": "ok"]) }
        return FrontDoor.json(.serviceUnavailable, ["status": "unhealthy", "reason": .string(h.reason)])
    }

    public func beginDraining() { draining.set() }

    func readyz() -> Response {
        if draining.isSet {
            return FrontDoor.json(.serviceUnavailable, ["status": "draining", "reason": "the server is shutting down; send new requests elsewhere"])
        }
        switch router.state {
        case .ready: return FrontDoor.json(.ok, ["status": "ready", "model": .string(config.servedModelName)])
        case .starting(let why): return FrontDoor.json(.serviceUnavailable, ["status": "starting", "reason": .string(why)])
        case .down(let why): return FrontDoor.json(.serviceUnavailable, ["status": "not ready", "reason": .string(why)])
        }
    }

    // MARK: forwarding

    func unavailable(_ why: String) -> APIError {
        var e = APIError(status: .serviceUnavailable, message: "the backend is not available (\(why)); retry shortly",
                         type: "server_error", code: "backend_unavailable")
        e.headers = [(.retryAfter, "1")]
        return e
    }

    func forward(_ req: Request, path: String) async -> Response {
        let t0 = ContinuousClock.now
        let trace = RequestSpan.current
        if path != "/v1/models" { metrics.arrived() }
        let admitted: Bool = state.withLock { s in
            guard s.inFlight < admissionLimit else { return false }
            s.inFlight += 1
            return true
        }
        guard admitted else {
            metrics.failure("queue_full")
            return FrontDoor.errorResponse(.queueFull("\(admissionLimit) requests are already in flight (the backend's slots + --max-queue); retry shortly"))
        }
        var streaming = false
        defer { if !streaming { state.withLock { $0.inFlight -= 1 } } }
        do {
            if draining.isSet {
                throw APIError(status: .serviceUnavailable, message: "the server is shutting down; send new requests elsewhere",
                               type: "server_error", code: "shutting_down")
            }
            var body: ByteBuffer?
            var wantsStream = false
            var hint = RouteHint()
            if req.method == .post {
                let bytes = try await FrontDoor.readBody(req, maxBytes: config.maxBodyBytes)
                // Parse only to refuse what is not a JSON object and to know whether a stream is asked for.
                // The common OpenAI fields are checked the way the native server checks them, so
                // every backend refuses the same bad requests with the same errors.
                let maxSeqs = config.maxSeqsPerRequest
                let prefixes = router.usesPrefixes
                (wantsStream, hint) = try await OpenAIServer.offPool { () throws(APIError) -> (Bool, RouteHint) in
                    let parsed = try OpenAIServer.parseBody(bytes)
                    let reader = try FieldReader(parsed)
                    let hint = RouteHint(prefixHashes: prefixes ? PromptPrefix.hashes(PromptPrefix.text(of: parsed)) : [])
                    guard path != "/v1/embeddings" else { return (false, hint) }
                    let o = try RequestParser.options(reader, chat: path == "/v1/chat/completions")
                    if o.n > maxSeqs {
                        throw APIError.invalid("this request asks for \(o.n) sequences; a request may hold at most \(maxSeqs) (--max-seqs-per-request)",
                                               param: "n", code: "too_many_sequences")
                    }
                    return (o.stream, hint)
                }
                body = bytes
            }
            let timeout = TimeAmount.seconds(Int64(config.requestTimeout == 0 ? 86_400 : config.requestTimeout))
            func request(_ l: RouteLease) -> HTTPClientRequest {
                var out = HTTPClientRequest(url: l.baseURL + path + (req.uri.query.map { "?" + $0 } ?? ""))
                out.method = req.method == .post ? .POST : .GET
                out.headers.add(name: "Content-Type", value: "application/json")
                out.headers.add(name: "Accept", value: wantsStream ? "text/event-stream" : "application/json")
                if let k = l.upstream.apiKey { out.headers.add(name: "Authorization", value: "Bearer \(k)") }
                // A stream gets a connection of its own: llama-server closes the connection after a
                // streamed (chunked) answer although it announces keep-alive, and a request sent on
                // such a connection in that moment would fail.
                if wantsStream { out.headers.add(name: "Connection", value: "close") }
                if let body { out.body = .bytes(body) }
                return out
            }
            // Up to two tries. A backend that refused the connection, or closed it before any
            // answer (closed or reset: a pooled connection it had just closed, or a process that
            // died holding the request), has sent nothing the client can see, and generation has no
            // side effects: the request goes once more — to another backend when the router has one,
            // else to the same one. A timeout is not retried.
            var lease: RouteLease?
            var resp: HTTPClientResponse?
            var tried: Set<Int> = []
            var failure: String?
            var closedOnly = false
            // Each try is a client span under the request's span; its context goes to the backend
            // in `traceparent`, so the backend's spans are its children.
            var forwardSpan: (any Span)?
            for attempt in 0..<2 {
                let l: RouteLease
                if let next = router.acquire(hint, excluding: tried) { l = next }
                else if attempt > 0, closedOnly, let same = router.acquire(hint, excluding: []) { l = same }
                else { break }
                let span = trace.map { $0.tracer.startSpan("forward", context: $0.span.context, ofKind: .client) }
                var outgoing = request(l)
                if let span, let trace {
                    span.updateAttributes { $0["server.address"] = l.baseURL; $0["autoglm.attempt"] = attempt }
                    RequestTracing.inject(span.context, into: &outgoing.headers, tracer: trace.tracer)
                }
                do {
                    resp = try await client.execute(outgoing, timeout: timeout)
                    lease = l
                    forwardSpan = span
                    break
                } catch {
                    span?.recordError(error)
                    span?.setStatus(SpanStatus(code: .error))
                    span?.end()
                    router.release(l, RouteOutcome(failed: true))
                    tried.insert(l.id)
                    closedOnly = Self.closedBeforeAnswer(error)
                    let why = "\(l.baseURL) did not answer: \(Self.short(error))"
                    failure = why
                    if Self.isRefused(error) { l.upstream.markUnreachable(why) } else if !closedOnly { break }
                }
            }
            guard let lease, let resp else {
                if let failure { throw unavailable(failure) }
                switch router.state {
                case .starting(let why), .down(let why): throw unavailable(why)
                case .ready: throw unavailable("no backend can take the request now")
                }
            }
            var released = false
            defer { if !released { router.release(lease, RouteOutcome(failed: true)) } }
            defer { if !streaming { forwardSpan?.end() } }
            if resp.status == .unauthorized || resp.status == .forbidden {
                throw APIError(status: .badGateway,
                               message: "the backend refused autoglm's key (HTTP \(resp.status.code)); set backend.apiKey (or $AUTOGLM_UPSTREAM_API_KEY) to a key the upstream accepts",
                               type: "server_error", code: "upstream_auth_failed")
            }
            let isSSE = resp.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
            if resp.status == .ok && isSSE {
                streaming = true
                released = true
                return relay(resp, path: path, started: t0, lease: lease, trace: trace, forwardSpan: forwardSpan)
            }
            let bytes = try await collect(resp)
            released = true
            router.release(lease, RouteOutcome(failed: resp.status.code >= 500, ttft: nil))
            return try complete(resp.status.code, bytes, path: path, started: t0)
        } catch let e as APIError {
            // Logged by the access log (one line per request: the handler logs only what succeeded).
            metrics.failure(e.status == .tooManyRequests ? "queue_full" : "error")
            return FrontDoor.errorResponse(e)
        } catch {
            metrics.failure("error")
            return FrontDoor.errorResponse(APIError(status: .badGateway, message: "forwarding failed: \(Self.short(error))", type: "server_error"))
        }
    }

    /// A whole (non-streamed) response: passed through as it is; token counts read from `usage`.
    func collect(_ resp: HTTPClientResponse) async throws(APIError) -> ByteBuffer {
        do {
            return try await resp.body.collect(upTo: 256 << 20)
        } catch {
            throw APIError(status: .badGateway, message: "the backend's response could not be read: \(Self.short(error))",
                           type: "server_error", code: "upstream_read_failed")
        }
    }

    func complete(_ status: UInt, _ bytes: ByteBuffer, path: String, started: ContinuousClock.Instant) throws(APIError) -> Response {
        let parsed = try? JSONValue.parse(Data(bytes.readableBytesView))
        guard case .object(var o)? = parsed else {
            throw APIError(status: .badGateway,
                           message: "the backend answered HTTP \(status) with a body that is not JSON: '\(String(decoding: bytes.readableBytesView.prefix(120), as: UTF8.self))'",
                           type: "server_error", code: "upstream_invalid_response")
        }
        var out = bytes
        var offsets: [Int: Int] = [:]
        if path == "/v1/completions", (200..<300).contains(status), LegacyLogprobs.rewrite(&o, offsets: &offsets) {
            out = ByteBuffer(string: JSONValue.object(o).serialized())
        }
        var usage: (Int, Int)?
        if case .object(let u)? = o["usage"], let p = u["prompt_tokens"]?.int {
            usage = (p, u["completion_tokens"]?.int ?? 0)
        }
        if (200..<300).contains(status) {
            if let usage { tally(prompt: usage.0, generation: usage.1) }
            let e2e = (ContinuousClock.now - started).inSeconds
            if path != "/v1/models" { metrics.e2e.record(e2e); metrics.success("stop") }
        } else {
            metrics.failure("error")
        }
        if status == 200 { logRequest(path: path, status: 200, started: started, stream: false, usage: usage, ttft: nil, outcome: "ok") }
        return Response(status: .init(code: Int(status)), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: out))
    }

    /// Relays an event stream line by line.
    func relay(_ resp: HTTPClientResponse, path: String, started: ContinuousClock.Instant, lease: RouteLease,
               trace: RequestSpan? = nil, forwardSpan: (any Span)? = nil) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var parser = SSERelay()
            parser.legacyLogprobs = path == "/v1/completions"
            var first: ContinuousClock.Instant?
            var last: ContinuousClock.Instant?
            var outcome = "ok"
            var clientGone = false
            defer {
                forwardSpan?.end()
                self.state.withLock { $0.inFlight -= 1 }
                let tokens = parser.usage?.completion ?? parser.textChunks
                var tpot: Double?
                if let f = first, let l = last, tokens > 1 { tpot = (l - f).inSeconds / Double(tokens - 1) }
                self.router.release(lease, RouteOutcome(failed: outcome.hasPrefix("upstream"),
                                                        ttft: first.map { ($0 - started).inSeconds }, tpot: tpot))
                if let u = parser.usage { self.tally(prompt: u.prompt, generation: u.completion) }
                self.logRequest(path: path, status: 200, started: started, stream: true, trace: trace,
                                usage: parser.usage.map { ($0.prompt, $0.completion) } ?? (nil, parser.textChunks),
                                ttft: first.map { ($0 - started).inSeconds }, outcome: outcome)
            }
            func send(_ b: ByteBuffer) async throws {
                do { try await writer.write(b) } catch { clientGone = true; throw error }
            }
            do {
                var afterDone = 0
                for try await chunk in resp.body {
                    // After [DONE] the response is read to its end (so the connection goes back to
                    // the pool instead of being torn down), forwarding nothing more; a backend
                    // that keeps sending is cut off after 64 KiB.
                    if parser.done {
                        afterDone += chunk.readableBytes
                        if afterDone > 64 << 10 { break } else { continue }
                    }
                    var out = ByteBuffer()
                    let text = try parser.feed(chunk, into: &out)
                    if text {
                        let now = ContinuousClock.now
                        if first == nil { first = now; self.metrics.ttft.record((now - started).inSeconds) }
                        else if let l = last { self.metrics.itl.record((now - l).inSeconds) }
                        last = now
                    }
                    if out.readableBytes > 0 { try await send(out) }
                }
                if !parser.done {
                    outcome = "upstream_cut"
                    try await send(Self.errorEvent("the backend closed the stream before it finished (no [DONE])", code: "upstream_stream_cut"))
                    self.metrics.failure("error")
                } else {
                    self.metrics.e2e.record((ContinuousClock.now - started).inSeconds)
                    self.metrics.success("stop")
                }
            } catch let m as SSERelay.Malformed {
                outcome = "upstream_malformed"
                self.metrics.failure("error")
                try? await send(Self.errorEvent(m.description, code: "upstream_stream_malformed"))
            } catch {
                if clientGone {
                    outcome = "client_gone"
                    self.metrics.failure("cancelled")
                    return  // the upstream connection closes as the body iterator goes away
                }
                outcome = "upstream_error"
                self.metrics.failure("error")
                if Self.isRefused(error) { lease.upstream.markUnreachable("\(lease.baseURL): \(Self.short(error))") }
                try? await send(Self.errorEvent("the backend's stream failed: \(Self.short(error))", code: "upstream_stream_failed"))
            }
            try await writer.finish(nil)
        })
    }

    /// An error event and the end of the stream.
    static func errorEvent(_ message: String, code: String) -> ByteBuffer {
        let e = APIError(status: .badGateway, message: message, type: "server_error", code: code)
        return ByteBuffer(string: "data: \(e.json.serialized())\n\ndata: [DONE]\n\n")
    }

    func tally(prompt: Int, generation: Int) {
        state.withLock { $0.seenPrompt += Double(prompt); $0.seenGeneration += Double(generation) }
    }

    func logRequest(path: String, status: Int, started: ContinuousClock.Instant, stream: Bool,
                    trace: RequestSpan? = RequestSpan.current, usage: (Int?, Int)?, ttft: Double?, outcome: String) {
        guard path != "/v1/models" else { return }
        var md: Logger.Metadata = [
            "method": "POST", "path": "\(path)", "status": "\(status)", "stream": "\(stream)",
            "ms": "\(String(format: "%.1f", (ContinuousClock.now - started).inSeconds * 1000))",
        ]
        if let u = usage {
            if let p = u.0 { md["prompt_tokens"] = "\(p)" }
            md["completion_tokens"] = "\(u.1)"
        }
        if let ttft { md["ttft_ms"] = "\(String(format: "%.1f", ttft * 1000))" }
        if outcome != "ok" { md["outcome"] = "\(outcome)" }
        if let trace {
            if let id = trace.traceID { md["trace_id"] = "\(id)" }
            RequestTracing.finish(trace, model: config.servedModelName, status: status, promptTokens: usage?.0 ?? nil,
                                  completionTokens: usage?.1)
        }
        logger.info("request", metadata: md)
    }

    // MARK: metrics

    /// Our registry, with the backend's gauges and token counters mapped onto autoglm's names.
    /// Token counters come from the backend's own counters when it reports them (a restarted
    /// backend's reset counts as a new baseline), else from the responses' `usage`.
    func renderMetrics() async -> String {
        let b = await router.stats()
        let slots = router.slots
        let (prompt, generation, inFlight) = state.withLock { s -> (Double, Double, Int) in
            func advance(_ now: Double?, _ last: inout Double?) -> Double? {
                guard let now else { return nil }
                defer { last = now }
                guard let l = last else { return now }
                return now >= l ? now - l : now
            }
            var p = advance(b?.promptTokens, &s.lastBackendPrompt)
            var g = advance(b?.generationTokens, &s.lastBackendGeneration)
            if p == nil { p = s.seenPrompt - s.lastSeenPrompt; s.lastSeenPrompt = s.seenPrompt }
            if g == nil { g = s.seenGeneration - s.lastSeenGeneration; s.lastSeenGeneration = s.seenGeneration }
            return (p ?? 0, g ?? 0, s.inFlight)
        }
        if prompt > 0 { metrics.promptTokens.increment(by: Int(prompt)) }
        if generation > 0 { metrics.generationTokens.increment(by: Int(generation)) }
        let running = b?.running ?? Double(slots.map { min($0, inFlight) } ?? inFlight)
        let waiting = b?.waiting ?? Double(slots.map { max(0, inFlight - $0) } ?? 0)
        return metrics.render(running: running, waiting: waiting, kvUsage: b?.kvUsage)
    }

    // MARK: errors

    static func short(_ e: any Error) -> String { String(String(describing: e).prefix(200)) }

    /// The connection was closed under the request before a response head arrived.
    static func closedBeforeAnswer(_ e: any Error) -> Bool {
        if let c = e as? HTTPClientError, c == .remoteConnectionClosed { return true }
        if let c = e as? ChannelError, c == .ioOnClosedChannel || c == .eof { return true }
        // Reset before any answer: the backend died holding the request (a SIGKILLed replica).
        if let io = e as? IOError, io.errnoCode == ECONNRESET || io.errnoCode == EPIPE { return true }
        return false
    }

    /// Nothing accepts connections at the backend's address (refused, or the connect timed out):
    /// the backend is down. A connection closed or reset mid-way is not proof of that (the
    /// supervisor sees an exited process by itself).
    static func isRefused(_ e: any Error) -> Bool {
        if let c = e as? HTTPClientError, c == .connectTimeout { return true }
        let d = String(describing: e)
        return d.contains("connectTimeout") || d.contains("refused") || d.contains("ECONNREFUSED") || d.contains("connect(")
    }

    // MARK: lifecycle

    /// Closes the HTTP client (`run()` does it itself; for routers built without `run()`).
    public func shutdown() async { try? await client.shutdown() }

    /// Serves until SIGTERM/SIGINT, then drains: /readyz answers 503, the listener stops taking
    /// connections and in-flight responses finish (bounded by the drain timeout), then the backend
    /// is stopped.
    public func run() async throws {
        let app = makeApplication()
        var cfg = ServiceGroupConfiguration(
            services: [
                .init(service: UpstreamService(upstream: router)),
                .init(service: app),
                .init(service: ProxyDrain(server: self)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        cfg.maximumGracefulShutdownDuration = .seconds(config.drainTimeout + config.unreadyDelay + 5)
        let group = ServiceGroup(configuration: cfg)
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            await router.stop()
            throw error
        }
        try? await client.shutdown()
    }
}

/// Runs the backend's watcher; on shutdown (after the HTTP server has drained, services stop in
/// reverse order) stops the backend.
struct UpstreamService: Service {
    let upstream: any UpstreamRouter
    func run() async throws {
        let u = upstream
        let watcher = Task { await u.run() }
        try? await gracefulShutdown()
        await u.stop()
        watcher.cancel()
        _ = await watcher.value
    }
}

/// First to hear of graceful shutdown: marks the proxy draining (/readyz 503), waits the unready delay.
struct ProxyDrain: Service {
    let server: ProxyServer
    func run() async throws {
        try? await gracefulShutdown()
        server.beginDraining()
        server.logger.info("draining: /readyz now answers 503", metadata: ["unready_delay_s": "\(server.config.unreadyDelay)"])
        if server.config.unreadyDelay > 0 { try? await Task.sleep(for: .seconds(server.config.unreadyDelay)) }
    }
}
