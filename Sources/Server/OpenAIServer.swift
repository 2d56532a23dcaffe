import Core
import Engine
import Foundation
import Grammar
import Synchronization
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
    /// How this model writes tool calls (from its chat template).
    let toolFormat: ToolCallFormat
    let logger: Logger
    /// Set when graceful shutdown begins: /readyz answers 503 from then on.
    let drainingFlag = Flag()
    /// Set when the drain timeout ends with work still running: that work is cancelled and each
    /// of its responses ends with a `shutting_down` error (never cut silently).
    let drainExpired = Flag()
    /// Finished `/v1/responses` answers, for `previous_response_id` and `GET /v1/responses/{id}`.
    let responseStore = ResponseStore(capacity: 1000, ttl: .seconds(3600))
    /// OpenAI's `system_fingerprint`: names the serving configuration (the served name and the
    /// weights: file name, tensor count and bytes), so a client can tell when it changed.
    let systemFingerprint: String

    public init(scheduler: Scheduler, config: ServerConfig, logger: Logger) {
        self.scheduler = scheduler
        self.config = config
        self.logger = logger
        tokenizer = scheduler.loaded.tokenizer
        chat = ChatFormat(tokenizer: scheduler.loaded.tokenizer)
        toolFormat = ToolCallFormat.detect(template: scheduler.loaded.tokenizer.chatTemplate)
        let file = scheduler.loaded.file
        let weights = "\(file.path.split(separator: "/").last ?? "")|\(file.tensors.count)|\(file.tensors.reduce(0) { $0 + $1.byteCount })"
        systemFingerprint = "fp_" + fnv1a64Hex(config.servedModelName + "|" + weights).prefix(12)
        let m = ServerMetrics(modelName: config.servedModelName)
        metrics = m
        scheduler.setStepObserver { info in m.step(info) }
    }

    // MARK: router

    public func buildRouter() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        FrontDoor.addMiddleware(to: router, config: config, logger: logger)
        router.get("/healthz") { _, _ in self.healthz() }
        router.get("/readyz") { _, _ in self.readyz() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.render(self.scheduler.stats))))
        }
        router.get("/v1/models") { _, _ in self.models() }
        router.post("/v1/completions") { req, ctx in await self.handle(req, chat: false, channel: ctx.channel) }
        router.post("/v1/chat/completions") { req, ctx in await self.handle(req, chat: true, channel: ctx.channel) }
        router.post("/v1/responses") { req, ctx in await self.handleResponses(req, channel: ctx.channel) }
        router.get("/v1/responses/{id}") { _, ctx in self.getResponse(ctx.parameters.get("id") ?? "") }
        router.delete("/v1/responses/{id}") { _, ctx in self.deleteResponse(ctx.parameters.get("id") ?? "") }
        for add in config.extraRoutes { add(router) }
        FrontDoor.addPreflight(to: router, config: config,
                               paths: ["/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/responses/{id}"])
        return router
    }

    public func makeApplication() -> some ApplicationProtocol {
        FrontDoor.application(buildRouter(), config: config, logger: logger)
    }

    // MARK: health

    func healthz() -> Response {
        let s = scheduler.stats
        let beat = (ContinuousClock.now - s.lastHeartbeat).inSeconds
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

    /// Whether this server takes new work (what /readyz and gRPC health report): not while
    /// draining, nor when the engine stopped or made no progress for `readyTimeout` with work queued.
    public var readiness: Readiness {
        if drainingFlag.isSet { return .draining }
        let s = scheduler.stats
        let busy = s.running + s.waiting > 0
        let since = (ContinuousClock.now - s.lastProgress).inSeconds
        if s.alive && (!busy || since < config.readyTimeout) { return .ready }
        return .notReady(s.alive ? "no engine progress for \(Int(since)) s with work queued" : "engine stopped")
    }

    func readyz() -> Response {
        switch readiness {
        case .ready:
            return json(.ok, ["status": "ready", "model": .string(config.servedModelName)])
        case .draining:
            return json(.serviceUnavailable, ["status": "draining", "reason": "the server is shutting down; send new requests elsewhere"])
        case .notReady(let reason):
            return json(.serviceUnavailable, ["status": "not ready", "reason": .string(reason)])
        }
    }

    /// The prompt token ids a chat request with these messages gets (what `/v1/chat/completions`
    /// feeds the engine).
    public func chatPromptIDs(_ messages: [(role: String, content: String)]) throws -> [Int32] {
        try chat.encode(messages.map { ChatMessageInput(role: $0.role, content: $0.content) }, tools: nil).ids
    }

    func models() -> Response {
        json(.ok, ["object": "list", "data": [[
            "id": .string(servedModel.id), "object": "model", "created": .int(Self.startTime),
            "owned_by": "autoglm", "max_model_len": .int(servedModel.maxModelLen),
        ]]])
    }

    static let startTime = Int(Date().timeIntervalSince1970)

    // MARK: completions

    struct Job: Sendable {
        var index: Int
        var request: GenerationRequest
        var echo: String
    }

    /// What `prepare` makes of a request: its sequences, their options, the prompt tokens.
    typealias Prepared = (jobs: [Job], options: GenerationOptions, promptTokens: Int)

    func handle(_ req: Request, chat isChat: Bool, channel: (any Channel)? = nil) async -> Response {
        await generate(req, channel: channel, chat: isChat, idPrefix: isChat ? "chatcmpl-" : "cmpl-") { bytes throws(APIError) in
            (try self.prepare(try Self.parseBody(bytes), raw: Array(bytes.readableBytesView), chat: isChat), ())
        } answer: { ctx, handles, hangUp, _ in
            if ctx.options.stream { return self.stream(ctx, handles) }
            return try await self.complete(ctx, handles, hangUp: hangUp)
        }
    }

    /// The one path of every generation endpoint: early queue check, body read, `prepare` off the
    /// cooperative pool, the disconnect watcher, admission, then `answer` (stream or complete).
    /// `Extra` is what an endpoint's `prepare` passes on to its `answer` beside the jobs.
    func generate<Extra: Sendable>(
        _ req: Request, channel: (any Channel)?, chat isChat: Bool, idPrefix: String,
        prepare: @escaping @Sendable (ByteBuffer) throws(APIError) -> (Prepared, Extra),
        answer: (ResponseContext, [GenerationHandle], HangUp?, Extra) async throws -> Response
    ) async -> Response {
        let t0 = ContinuousClock.now
        do {
            try arrive()
            let bytes = try await readBody(req)
            // JSON parsing, chat-template rendering and tokenization of a large prompt take
            // CPU time: they run on the tokenizer queue, never on the event loops or the
            // cooperative pool that answers /healthz and /readyz.
            let (prepared, extra) = try await Self.offPool { () throws(APIError) in try prepare(bytes) }
            let (jobs, options, promptTokens) = prepared
            // The disconnect watcher goes in before anything runs, so a hang-up at any point after
            // this cancels the request (see `HangUp`).
            var hangUp: HangUp?
            if !options.stream, let channel {
                let h = HangUp(channel: channel)
                if await h.install() { hangUp = h }
            }
            defer { hangUp?.remove() }
            let handles = try admit(jobs)
            let ctx = ResponseContext(id: idPrefix + Self.randomID(),
                                      created: Int(Date().timeIntervalSince1970), chat: isChat, options: options,
                                      promptTokens: promptTokens, jobs: jobs, started: t0,
                                      path: req.uri.path, trace: RequestSpan.current)
            return try await answer(ctx, handles, hangUp, extra)
        } catch let e as APIError {
            if e.status == .tooManyRequests { metrics.failure("queue_full") }
            return errorResponse(e)
        } catch {
            return errorResponse(APIError(status: .internalServerError, message: "internal error: \(error)", type: "server_error"))
        }
    }

    func queueFull(_ message: String) -> APIError { APIError.queueFull(message) }

    /// A generation request arrived (any front end): counted, then refused early when the queue
    /// is already full (before its body is read or its prompt tokenized).
    func arrive() throws(APIError) {
        metrics.arrived()
        // Cheap early refusal; the exact admission is `submitAll`'s (`admit`).
        if scheduler.stats.waiting >= config.maxQueue {
            throw queueFull(SchedulerError.queueFull(waiting: scheduler.stats.waiting, asked: 1, limit: config.maxQueue).description)
        }
    }

    /// Queues a request's sequences, all or none, under the queue limit.
    func admit(_ jobs: [Job]) throws(APIError) -> [GenerationHandle] {
        do {
            return try scheduler.submitAll(jobs.map(\.request), maxWaiting: config.maxQueue)
        } catch {
            throw mapSchedulerError(error)
        }
    }

    /// Where request preparation (parse, template, tokenize) runs: GCD threads, not the
    /// cooperative pool (2 threads on this box) whose tasks answer health probes.
    static let prepareQueue = DispatchQueue(label: "autoglm.prepare", qos: .userInitiated, attributes: .concurrent)

    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws(APIError) -> T) async throws(APIError) -> T {
        let r: Result<T, APIError> = await withCheckedContinuation { cont in
            prepareQueue.async {
                do throws(APIError) { cont.resume(returning: .success(try work())) } catch { cont.resume(returning: .failure(error)) }
            }
        }
        return try r.get()
    }

    func readBody(_ req: Request) async throws(APIError) -> ByteBuffer {
        try await FrontDoor.readBody(req, maxBytes: config.maxBodyBytes)
    }

    static func parseBody(_ buffer: ByteBuffer) throws(APIError) -> JSONValue {
        do {
            return try JSONValue.parse(Data(buffer.readableBytesView))
        } catch {
            throw APIError.invalid("the request body is not valid JSON (UTF-8): \(Self.shortError(error))", code: "invalid_json")
        }
    }

    static func shortError(_ e: any Error) -> String {
        String(String(describing: e).prefix(200))
    }

    func prepare(_ body: JSONValue, raw: [UInt8], chat isChat: Bool) throws(APIError) -> Prepared {
        let structured = try RequestParser.structured(body, raw: raw, chat: isChat)
        if isChat {
            let r = try RequestParser.chat(body)
            let p = try chatPrompt(r.messages, options: r.options, structured: structured, param: "messages")
            return try jobs([p], options: r.options, structured: structured, chat: true)
        }
        let r = try RequestParser.completion(body)
        var bytes = 0
        for p in r.prompts { if case .text(let t) = p { bytes += t.utf8.count } }
        if bytes > config.maxPromptBytes { throw promptTooLong("prompt", bytes) }
        let sequences = r.prompts.count * r.options.n
        if sequences > config.maxSeqsPerRequest { throw tooManySequences(sequences) }
        let prompts = r.prompts.map { p -> (ids: [Int32], text: String) in
            switch p {
            case .text(let t): return (tokenizer.encode(t), t)
            case .ids(let ids): return (ids, tokenizer.decode(ids))
            }
        }
        return try jobs(prompts, options: r.options, structured: structured, chat: false)
    }

    /// A chat conversation rendered with the model's template (and the tools it offers) and
    /// tokenized, after the size checks. `param` names the field that held the messages.
    func chatPrompt(_ messages: [ChatMessageInput], options: GenerationOptions, structured: StructuredOptions,
                    param: String) throws(APIError) -> (ids: [Int32], text: String) {
        let bytes = messages.reduce(0) { $0 + $1.content.utf8.count }
        if bytes > config.maxPromptBytes { throw promptTooLong(param, bytes) }
        if options.n > config.maxSeqsPerRequest { throw tooManySequences(options.n) }
        return try chat.encode(messages, tools: structured.offersTools ? structured.templateTools : nil)
    }

    /// The sequences for tokenized prompts: the grammar, the model check, each prompt × n as a
    /// validated `GenerationRequest`.
    func jobs(_ prompts: [(ids: [Int32], text: String)], options: GenerationOptions, structured: StructuredOptions,
              chat isChat: Bool) throws(APIError) -> Prepared {
        var options = options
        if prompts.count * options.n > config.maxSeqsPerRequest { throw tooManySequences(prompts.count * options.n) }
        options.structured = structured
        let compileStart = ContinuousClock.now
        let grammar = try self.grammar(for: structured)
        if grammar != nil { metrics.grammarCompile.record((ContinuousClock.now - compileStart).inSeconds) }
        // The vocabulary as bytes is built once, here (a request-preparation thread), not on the engine.
        if grammar != nil { _ = scheduler.loaded.tokenVocabulary }
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
                                          ignoreEOS: options.ignoreEOS, stop: options.stop, logprobs: options.logprobs,
                                          grammar: grammar)
                do { try scheduler.validate(g) } catch { throw mapSchedulerError(error) }
                jobs.append(Job(index: pi * options.n + j, request: g, echo: options.echo ? p.text : ""))
            }
        }
        return (jobs, options, promptTokens)
    }

    func promptTooLong(_ param: String, _ bytes: Int) -> APIError {
        APIError(status: .contentTooLarge,
                 message: "the prompt text is \(bytes) bytes, more than the \(config.maxPromptBytes) this server tokenizes (--max-prompt-mb); send a shorter prompt",
                 type: "invalid_request_error", param: param, code: "prompt_too_large")
    }

    /// One request asking for more sequences (prompts × n) than a request may hold.
    func tooManySequences(_ n: Int) -> APIError {
        APIError.invalid("this request asks for \(n) sequences (prompts × n); a request may hold at most \(config.maxSeqsPerRequest) (--max-seqs-per-request): send fewer prompts or a smaller n",
                         param: "n", code: "too_many_sequences")
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
        case .queueFull:
            return queueFull(s.description)
        }
    }

    static func randomID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<24).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    func json(_ status: HTTPResponse.Status, _ v: JSONValue, extra: [(HTTPField.Name, String)] = []) -> Response {
        FrontDoor.json(status, v, extra: extra)
    }

    func errorResponse(_ e: APIError) -> Response {
        FrontDoor.errorResponse(e)
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

/// A non-streaming request's link to its connection: a `DisconnectWatcher` put in the pipeline
/// before the request is submitted; what to do on a hang-up is attached once the sequences exist.
/// A hang-up before that runs the action as soon as it is attached.
final class HangUp: Sendable {
    let channel: any Channel
    let watcher: DisconnectWatcher
    let state: HangUpState

    init(channel: any Channel) {
        self.channel = channel
        let st = HangUpState()
        state = st
        watcher = DisconnectWatcher { st.happen() }
    }

    func install() async -> Bool {
        (try? await channel.pipeline.addHandler(watcher, position: .first).get()) != nil
    }

    func remove() { channel.pipeline.removeHandler(watcher, promise: nil) }

    func attach(_ action: @escaping @Sendable () -> Void) { state.attach(action) }
}

/// Whether the client hung up, and what to do about it (set once the sequences exist).
final class HangUpState: Sendable {
    private let m = Mutex<(happened: Bool, action: (@Sendable () -> Void)?)>((false, nil))

    func happen() {
        let action = m.withLock { s -> (@Sendable () -> Void)? in
            s.happened = true
            return s.action
        }
        action?()
    }

    func attach(_ action: @escaping @Sendable () -> Void) {
        let now = m.withLock { s -> Bool in
            s.action = action
            return s.happened
        }
        if now { action() }
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

/// A flag shared between a handler and its timeout task (set once, read anywhere).
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
