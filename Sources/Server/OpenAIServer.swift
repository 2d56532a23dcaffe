import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Tokenizers

/// The OpenAI-compatible frontend over one `Scheduler`.
///
/// Threads and state: route handlers run on Hummingbird's tasks; they only parse, tokenize,
/// submit to the scheduler and await its per-request event streams. The scheduler's own engine
/// thread runs every forward pass and owns all sequence and KV state. This object holds only
/// immutable configuration plus thread-safe metrics.
public final class OpenAIServer: Sendable {
    public let scheduler: Scheduler
    public let config: ServerConfig
    public let metrics: ServerMetrics
    let tokenizer: Tokenizer
    let chat: ChatFormat
    let logger: Logger
    /// Set when graceful shutdown begins: /readyz answers 503 from then on.
    let drainingFlag = Flag()

    public init(scheduler: Scheduler, config: ServerConfig, logger: Logger) {
        self.scheduler = scheduler
        self.config = config
        self.logger = logger
        tokenizer = scheduler.loaded.tokenizer
        chat = ChatFormat(tokenizer: scheduler.loaded.tokenizer)
        let m = ServerMetrics(modelName: config.servedModelName)
        metrics = m
        scheduler.setStepObserver { info in m.step(info) }
    }

    // MARK: router

    public func buildRouter() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: AccessLogMiddleware(logger: logger))
        router.add(middleware: AuthMiddleware(keys: config.apiKeys))
        router.get("/healthz") { _, _ in self.healthz() }
        router.get("/readyz") { _, _ in self.readyz() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.render(self.scheduler.stats))))
        }
        router.get("/v1/models") { _, _ in self.models() }
        router.post("/v1/completions") { req, ctx in await self.handle(req, chat: false, channel: ctx.channel) }
        router.post("/v1/chat/completions") { req, ctx in await self.handle(req, chat: true, channel: ctx.channel) }
        for add in config.extraRoutes { add(router) }
        return router
    }

    public func makeApplication() -> some ApplicationProtocol {
        Application(router: buildRouter(),
                    configuration: .init(address: .hostname(config.host, port: config.port), serverName: "autoglm"),
                    logger: logger)
    }

    // MARK: health

    func healthz() -> Response {
        let s = scheduler.stats
        let beat = secs(ContinuousClock.now - s.lastHeartbeat)
        if s.alive && (s.idle || beat < config.healthTimeout) {
            return json(.ok, ["status": "ok"])
        }
        return json(.serviceUnavailable, ["status": "unhealthy", "reason": .string(
            s.alive ? "engine loop has not gone round for \(Int(beat)) s" : "engine loop has stopped")])
    }

    /// Marks the server as draining (graceful shutdown began): /readyz answers 503 so load
    /// balancers stop sending, while in-flight requests finish.
    public func beginDraining() { drainingFlag.set() }

    public var isDraining: Bool { drainingFlag.isSet }

    func readyz() -> Response {
        if drainingFlag.isSet {
            return json(.serviceUnavailable, ["status": "draining", "reason": "the server is shutting down; send new requests elsewhere"])
        }
        let s = scheduler.stats
        let busy = s.running + s.waiting > 0
        let since = secs(ContinuousClock.now - s.lastProgress)
        if s.alive && (!busy || since < config.readyTimeout) {
            return json(.ok, ["status": "ready", "model": .string(config.servedModelName)])
        }
        return json(.serviceUnavailable, ["status": "not ready", "reason": .string(
            s.alive ? "no engine progress for \(Int(since)) s with work queued" : "engine stopped")])
    }

    func models() -> Response {
        json(.ok, ["object": "list", "data": [[
            "id": .string(config.servedModelName), "object": "model", "created": .int(Self.startTime),
            "owned_by": "autoglm", "max_model_len": .int(scheduler.contextLength),
        ]]])
    }

    static let startTime = Int(Date().timeIntervalSince1970)

    // MARK: completions

    struct Job: Sendable {
        var index: Int
        var request: GenerationRequest
        var echo: String
    }

    func handle(_ req: Request, chat isChat: Bool, channel: (any Channel)? = nil) async -> Response {
        let t0 = ContinuousClock.now
        do {
            if scheduler.stats.waiting >= config.maxQueue {
                var e = APIError(status: .tooManyRequests,
                                 message: "the server queue is full (\(config.maxQueue) waiting); retry shortly",
                                 type: "rate_limit_error", code: "queue_full")
                e.headers = [(.retryAfter, "1")]
                throw e
            }
            let body = try await readBody(req)
            let (jobs, options, promptTokens) = try prepare(body, chat: isChat)
            var handles: [GenerationHandle] = []
            do {
                for j in jobs { handles.append(try scheduler.submit(j.request)) }
            } catch {
                for h in handles { scheduler.cancel(h.id) }
                throw mapSchedulerError(error)
            }
            let ctx = ResponseContext(id: (isChat ? "chatcmpl-" : "cmpl-") + Self.randomID(),
                                      created: Int(Date().timeIntervalSince1970), chat: isChat, options: options,
                                      promptTokens: promptTokens, jobs: jobs, started: t0,
                                      path: req.uri.path)
            if options.stream { return stream(ctx, handles) }
            return try await complete(ctx, handles, channel: channel)
        } catch let e as APIError {
            if e.status == .tooManyRequests { metrics.failure("queue_full") }
            return errorResponse(e)
        } catch {
            return errorResponse(APIError(status: .internalServerError, message: "internal error: \(error)", type: "server_error"))
        }
    }

    func readBody(_ req: Request) async throws(APIError) -> JSONValue {
        let tooLarge = APIError(status: .contentTooLarge,
                                message: "the request body exceeds \(config.maxBodyBytes) bytes; send a smaller request",
                                type: "invalid_request_error", code: "body_too_large")
        if let len = req.headers[.contentLength].flatMap(Int.init), len > config.maxBodyBytes { throw tooLarge }
        let buffer: ByteBuffer
        do {
            buffer = try await req.body.collect(upTo: config.maxBodyBytes)
        } catch {
            throw tooLarge
        }
        do {
            return try JSONValue.parse(Data(buffer.readableBytesView))
        } catch {
            throw APIError.invalid("the request body is not valid JSON (UTF-8): \(Self.shortError(error))", code: "invalid_json")
        }
    }

    static func shortError(_ e: any Error) -> String {
        String(String(describing: e).prefix(200))
    }

    func prepare(_ body: JSONValue, chat isChat: Bool) throws(APIError) -> ([Job], GenerationOptions, Int) {
        var prompts: [(ids: [Int32], text: String)] = []
        let options: GenerationOptions
        if isChat {
            let r = try RequestParser.chat(body)
            options = r.options
            let p = try chat.encode(r.messages)
            prompts = [(p.ids, p.text)]
        } else {
            let r = try RequestParser.completion(body)
            options = r.options
            for p in r.prompts {
                switch p {
                case .text(let t): prompts.append((tokenizer.encode(t), t))
                case .ids(let ids): prompts.append((ids, tokenizer.decode(ids)))
                }
            }
        }
        if let m = options.model, m != config.servedModelName {
            throw APIError(status: .notFound, message: "the model '\(m)' does not exist; this server serves '\(config.servedModelName)'",
                           type: "invalid_request_error", param: "model", code: "model_not_found")
        }
        var jobs: [Job] = []
        var promptTokens = 0
        for (pi, p) in prompts.enumerated() {
            promptTokens += p.ids.count
            let maxTokens = options.maxTokens ?? (isChat ? max(0, scheduler.contextLength - p.ids.count) : 16)
            for j in 0..<options.n {
                var sampling = options.sampling
                if let s = sampling.seed { sampling.seed = s &+ UInt64(j) }
                let g = GenerationRequest(promptIDs: p.ids, maxTokens: maxTokens, sampling: sampling,
                                          ignoreEOS: options.ignoreEOS, stop: options.stop, logprobs: options.logprobs)
                do { try scheduler.validate(g) } catch { throw mapSchedulerError(error) }
                jobs.append(Job(index: pi * options.n + j, request: g, echo: options.echo ? p.text : ""))
            }
        }
        return (jobs, options, promptTokens)
    }

    func mapSchedulerError(_ e: any Error) -> APIError {
        guard let s = e as? SchedulerError else {
            return APIError(status: .internalServerError, message: "\(e)", type: "server_error")
        }
        switch s {
        case .shuttingDown:
            return APIError(status: .serviceUnavailable, message: s.description, type: "server_error", code: "shutting_down")
        case .exceedsContext:
            return APIError.invalid(s.description, param: "max_tokens", code: "context_length_exceeded")
        case .exceedsKVBudget:
            return APIError.invalid(s.description, param: "max_tokens", code: "kv_budget_exceeded")
        case .emptyPrompt:
            return APIError.invalid(s.description, param: "prompt")
        case .invalid(let m):
            return APIError.invalid(m, param: "prompt")
        }
    }

    static func randomID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<24).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    func json(_ status: HTTPResponse.Status, _ v: JSONValue, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        for (k, val) in extra { headers[k] = val }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: v.serialized())))
    }

    func errorResponse(_ e: APIError) -> Response {
        json(e.status, e.json, extra: e.headers)
    }
}

/// Request context that keeps the connection's channel, so a non-streaming handler can notice
/// its client going away.
public struct ServerRequestContext: RequestContext {
    public typealias Source = ApplicationRequestContextSource
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?

    public init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Put first in a connection's pipeline while a non-streaming request runs: the client closing
/// its side (EOF, with remote half-closure on) or the connection dropping calls `onDisconnect` once.
final class DisconnectWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    private let onDisconnect: @Sendable () -> Void
    private var fired = false

    init(_ onDisconnect: @escaping @Sendable () -> Void) { self.onDisconnect = onDisconnect }

    private func fire() {
        guard !fired else { return }
        fired = true
        onDisconnect()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fire()
        context.fireChannelInactive()
    }
}

/// Lock-protected flag shared between a handler and its timeout task.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
