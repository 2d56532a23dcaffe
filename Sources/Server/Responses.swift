import Core
import Engine
import Foundation
import Grammar
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

struct ResponseContext: Sendable {
    var id: String
    var created: Int
    var chat: Bool
    var options: GenerationOptions
    var promptTokens: Int
    var jobs: [OpenAIServer.Job]
    /// When the handler got the request (TTFT and total time in the log line count from here).
    var started: ContinuousClock.Instant
    var path: String
    /// The request's server span (nil without tracing): the engine's phases become its children.
    var trace: RequestSpan? = nil
}

/// What one choice produced.
struct ChoiceResult: Sendable {
    var text = ""
    var logprobs: [TokenLogprob] = []
    var tokenTimes: [ContinuousClock.Instant] = []
    var completion: SequenceCompletion?
}

extension OpenAIServer {
    /// Non-streaming: waits for every choice, then answers one JSON object.
    func complete(_ ctx: ResponseContext, _ handles: [GenerationHandle], hangUp: HangUp?) async throws -> Response {
        let results = try await collect(handles, hangUp: hangUp)
        var choices: [JSONValue] = []
        var completionTokens = 0
        for (k, r) in results.enumerated() {
            let job = ctx.jobs[k]
            completionTokens += r.completion?.completionTokens ?? 0
            let finish = finishReason(r.completion)
            let lp = ctx.options.logprobs.map { logprobsJSON(r.logprobs, top: $0, chat: ctx.chat, offset: job.echo.utf8.count) } ?? .null
            if ctx.chat {
                var message: [String: JSONValue] = ["role": "assistant", "content": .string(r.text)]
                var finish = finish
                if ctx.options.structured.offersTools {
                    let parsed = toolFormat.parse(r.text, tools: ctx.options.structured.toolNames)
                    if !parsed.calls.isEmpty {
                        message["content"] = parsed.content.allSatisfy(\.isWhitespace) ? .null : .string(parsed.content)
                        message["tool_calls"] = .array(parsed.calls.enumerated().map { Self.toolCallJSON($1, index: nil) })
                        if r.completion?.reason == .stop { finish = ctx.options.structured.callFinishReason }
                    }
                }
                choices.append(["index": .int(job.index), "message": .object(message),
                                "logprobs": lp, "finish_reason": finish])
            } else {
                choices.append(["index": .int(job.index), "text": .string(job.echo + r.text), "logprobs": lp,
                                "finish_reason": finish])
            }
        }
        let body: JSONValue = [
            "id": .string(ctx.id), "object": .string(ctx.chat ? "chat.completion" : "text_completion"),
            "created": .int(ctx.created), "model": .string(config.servedModelName), "choices": .array(choices),
            "system_fingerprint": .string(systemFingerprint),
            "usage": usage(ctx.promptTokens, completionTokens, cached: cachedTokens(ctx, results)),
        ]
        logRequest(ctx, status: 200, results)
        return json(.ok, body)
    }

    /// Waits for every sequence of a non-streaming request: a hang-up (`hangUp`) or the request
    /// timeout cancels them; metrics are recorded; a cancelled, timed-out or failed request
    /// throws the error it answers with.
    func collect(_ handles: [GenerationHandle], hangUp: HangUp?) async throws(APIError) -> [ChoiceResult] {
        let timedOut = Flag()
        let ids = handles.map(\.id)
        let sched = scheduler
        // A client that goes away cancels its sequences (their KV blocks are freed within a step).
        let gone = Flag()
        hangUp?.attach { gone.set(); for id in ids { sched.cancel(id) } }
        let timeout = config.requestTimeout
        let timer = Task {
            guard timeout > 0 else { return }
            try await Task.sleep(for: .seconds(timeout))
            timedOut.set()
            for id in ids { sched.cancel(id) }
        }
        defer { timer.cancel() }
        let results: [ChoiceResult] = await withTaskCancellationHandler {
            await withTaskGroup(of: (Int, ChoiceResult).self) { group in
                for (k, h) in handles.enumerated() {
                    group.addTask {
                        var r = ChoiceResult()
                        for await e in h.events {
                            switch e {
                            case .token(let t):
                                r.text += t.text
                                if let lp = t.logprob { r.logprobs.append(lp) }
                                r.tokenTimes.append(t.time)
                            case .finished(let f):
                                r.text += f.text
                                r.completion = f
                            }
                        }
                        return (k, r)
                    }
                }
                var out = [ChoiceResult](repeating: ChoiceResult(), count: handles.count)
                for await (k, r) in group { out[k] = r }
                return out
            }
        } onCancel: {
            for id in ids { sched.cancel(id) }
        }
        for r in results { record(r, timedOut: timedOut.isSet, trace: RequestSpan.current) }
        if drainExpired.isSet && !timedOut.isSet && results.contains(where: { $0.completion?.reason == .cancelled }) {
            throw drainDeadlineError
        }
        if gone.isSet && !timedOut.isSet {
            throw APIError(status: .init(code: 499, reasonPhrase: "Client Closed Request"),
                           message: "the client closed the connection; the request was cancelled", type: "cancelled", code: "client_closed")
        }
        if timedOut.isSet {
            throw APIError(status: .gatewayTimeout, message: "the request took longer than \(Int(timeout)) s and was cancelled; lower max_tokens or raise --request-timeout",
                           type: "timeout_error", code: "timeout")
        }
        if let err = results.first(where: { $0.completion?.reason == .error })?.completion?.error {
            throw APIError(status: .internalServerError, message: err, type: "server_error")
        }
        return results
    }

    /// The one log line of a completion request that answered 200: token counts, TTFT (first
    /// token of any choice) and total time, both from the handler's start. Other statuses are
    /// logged by `AccessLogMiddleware`.
    func logRequest(_ ctx: ResponseContext, status: Int, _ results: [ChoiceResult], outcome: String = "ok") {
        let completion = results.reduce(0) { $0 + ($1.completion?.completionTokens ?? 0) }
        var md: Logger.Metadata = [
            "method": "POST", "path": "\(ctx.path)", "status": "\(status)", "id": "\(ctx.id)",
            "stream": "\(ctx.options.stream)", "prompt_tokens": "\(ctx.promptTokens)", "completion_tokens": "\(completion)",
            "ms": "\(String(format: "%.1f", (ContinuousClock.now - ctx.started).inSeconds * 1000))",
        ]
        if let first = results.compactMap(\.tokenTimes.first).min() {
            md["ttft_ms"] = "\(String(format: "%.1f", (first - ctx.started).inSeconds * 1000))"
        }
        if outcome != "ok" { md["outcome"] = "\(outcome)" }
        if let trace = ctx.trace {
            if let id = trace.traceID { md["trace_id"] = "\(id)" }
            RequestTracing.finish(trace, model: config.servedModelName, status: status,
                                  promptTokens: ctx.promptTokens, completionTokens: completion)
            let first = results.compactMap(\.tokenTimes.first).min() ?? ctx.started
            RequestTracing.recordRespond(ctx.options.stream ? "stream" : "respond", from: first, parent: trace)
        }
        logger.info("request", metadata: md)
    }

    /// `usage` with OpenAI's `prompt_tokens_details.cached_tokens`: prompt tokens whose keys and
    /// values came from the prefix cache.
    func usage(_ prompt: Int, _ completion: Int, cached: Int) -> JSONValue {
        ["prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion),
         "prompt_tokens_details": ["cached_tokens": .int(min(cached, prompt))]]
    }

    /// Cached prompt tokens of a request: per prompt, its first choice's (the other n − 1
    /// choices share that prompt's blocks, and the prompt counts once in `prompt_tokens`).
    func cachedTokens(_ ctx: ResponseContext, _ results: [ChoiceResult]) -> Int {
        let n = max(1, ctx.options.n)
        var total = 0
        for (k, r) in results.enumerated() where k < ctx.jobs.count && ctx.jobs[k].index % n == 0 {
            total += r.completion?.cachedTokens ?? 0
        }
        return total
    }

    func finishReason(_ c: SequenceCompletion?) -> JSONValue {
        switch c?.reason {
        case .stop: return "stop"
        case .length: return "length"
        default: return .null
        }
    }

    /// What a request still running at the drain deadline gets (as its status, or as the last
    /// SSE event before `[DONE]`).
    var drainDeadlineError: APIError {
        APIError(status: .serviceUnavailable,
                 message: "the server is shutting down and its drain timeout (\(Int(config.drainTimeout)) s) ended before this response was complete; retry on another replica",
                 type: "server_error", code: "shutting_down")
    }

    func record(_ r: ChoiceResult, timedOut: Bool, trace: RequestSpan? = nil) {
        guard let c = r.completion else { return }
        if let trace { RequestTracing.recordPhases(c, parent: trace) }
        metrics.record(c, tokenTimes: r.tokenTimes)
        switch c.reason {
        case .stop, .length: metrics.success(c.reason.rawValue)
        case .cancelled: metrics.failure(timedOut ? "timeout" : drainExpired.isSet ? "shutdown" : "cancelled")
        case .error: metrics.failure("error")
        }
    }

    func piece(_ id: Int32) -> String { tokenizer.decode([id]) }

    func logprobsJSON(_ lps: [TokenLogprob], top: Int, chat: Bool, offset: Int) -> JSONValue {
        if chat {
            return ["content": .array(lps.map { lp in
                let t = piece(lp.id)
                return ["token": .string(t), "logprob": .double(Double(lp.logprob)), "bytes": .array(t.utf8.map { .int(Int($0)) }),
                        "top_logprobs": .array(lp.top.prefix(top).map { alt in
                            let at = piece(alt.id)
                            return ["token": .string(at), "logprob": .double(Double(alt.logprob)),
                                    "bytes": .array(at.utf8.map { .int(Int($0)) })]
                        })]
            })]
        }
        var tokens: [JSONValue] = [], values: [JSONValue] = [], tops: [JSONValue] = [], offsets: [JSONValue] = []
        var pos = offset
        for lp in lps {
            let t = piece(lp.id)
            tokens.append(.string(t))
            values.append(.double(Double(lp.logprob)))
            var d: [String: JSONValue] = [:]
            for alt in lp.top.prefix(top) { d[piece(alt.id)] = .double(Double(alt.logprob)) }
            tops.append(.object(d))
            offsets.append(.int(pos))
            pos += t.utf8.count
        }
        return ["tokens": .array(tokens), "token_logprobs": .array(values), "top_logprobs": .array(tops),
                "text_offset": .array(offsets)]
    }

    // MARK: streaming

    /// SSE: `data: {chunk}\n\n` per event, `data: [DONE]\n\n` at the end. A write failure
    /// (client gone) cancels every sequence of the request.
    func stream(_ ctx: ResponseContext, _ handles: [GenerationHandle]) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (merged, pump, timedOut) = self.mergedEvents(handles)
            let ids = handles.map(\.id)
            let sched = self.scheduler
            var results = [ChoiceResult](repeating: ChoiceResult(), count: handles.count)
            var started = [Bool](repeating: false, count: handles.count)
            // Tool calls are read out of each choice's text as it streams.
            let st = ctx.options.structured
            var toolStreams = [ToolCallStream?](repeating: ctx.chat && st.offersTools ? ToolCallStream(format: self.toolFormat, tools: st.toolNames) : nil,
                                                count: handles.count)
            var callsSent = [Int](repeating: 0, count: handles.count)
            func toolChunks(_ k: Int, _ events: [ToolCallStream.Event], lp: JSONValue?) -> [JSONValue] {
                var out: [JSONValue] = []
                for e in events {
                    switch e {
                    case .content(let c):
                        out.append(self.chunk(ctx, ctx.jobs[k].index, ["content": .string(c)], lp: lp, finish: .null))
                    case .call(let c):
                        out.append(self.chunk(ctx, ctx.jobs[k].index, ["tool_calls": [Self.toolCallJSON(c, index: callsSent[k])]], lp: lp, finish: .null))
                        callsSent[k] += 1
                    }
                }
                if out.isEmpty, let lp { out.append(self.chunk(ctx, ctx.jobs[k].index, [:], lp: lp, finish: .null)) }
                return out
            }
            do {
                for await (k, e) in merged {
                    let job = ctx.jobs[k]
                    var chunks: [JSONValue] = []
                    if ctx.chat && !started[k] {
                        chunks.append(self.chunk(ctx, job.index, ["role": "assistant", "content": .null], lp: nil, finish: .null))
                    }
                    if !ctx.chat && !started[k] && !job.echo.isEmpty {
                        chunks.append(self.chunk(ctx, job.index, .string(job.echo), lp: nil, finish: .null))
                    }
                    started[k] = true
                    switch e {
                    case .token(let t):
                        results[k].tokenTimes.append(t.time)
                        if let lp = t.logprob { results[k].logprobs.append(lp) }
                        let lpJSON = ctx.options.logprobs.flatMap { top in t.logprob.map { self.logprobsJSON([$0], top: top, chat: ctx.chat, offset: 0) } }
                        if toolStreams[k] != nil {
                            let events = toolStreams[k]?.feed(t.text) ?? []
                            chunks += toolChunks(k, events, lp: lpJSON)
                        } else if !t.text.isEmpty || lpJSON != nil {
                            chunks.append(self.chunk(ctx, job.index, ctx.chat ? ["content": .string(t.text)] : .string(t.text),
                                                     lp: lpJSON, finish: .null))
                        }
                    case .finished(let f):
                        results[k].completion = f
                        if let err = self.streamEndError(f, timedOut: timedOut.isSet) {
                            chunks.append(err.json)
                        } else if toolStreams[k] != nil {
                            var events = toolStreams[k]?.feed(f.text) ?? []
                            events += toolStreams[k]?.finish() ?? []
                            chunks += toolChunks(k, events, lp: nil)
                            let finish: JSONValue = callsSent[k] > 0 && f.reason == .stop ? st.callFinishReason : self.finishReason(f)
                            chunks.append(self.chunk(ctx, job.index, [:], lp: nil, finish: finish))
                        } else {
                            chunks.append(self.chunk(ctx, job.index, ctx.chat ? (f.text.isEmpty ? [:] : ["content": .string(f.text)]) : .string(f.text),
                                                     lp: nil, finish: self.finishReason(f)))
                        }
                    }
                    for c in chunks { try await writer.write(ByteBuffer(string: "data: \(c.serialized())\n\n")) }
                }
                if ctx.options.includeUsage {
                    let ct = results.reduce(0) { $0 + ($1.completion?.completionTokens ?? 0) }
                    let u: JSONValue = ["id": .string(ctx.id), "object": .string(ctx.chat ? "chat.completion.chunk" : "text_completion"),
                                        "created": .int(ctx.created), "model": .string(self.config.servedModelName),
                                        "system_fingerprint": .string(self.systemFingerprint), "choices": [], "usage": self.usage(ctx.promptTokens, ct, cached: self.cachedTokens(ctx, results))]
                    try await writer.write(ByteBuffer(string: "data: \(u.serialized())\n\n"))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                let cut = self.drainExpired.isSet && results.contains { $0.completion?.reason == .cancelled }
                self.logRequest(ctx, status: 200, results, outcome: timedOut.isSet ? "timeout" : cut ? "drain_deadline" : "ok")
                try await writer.finish(nil)
            } catch {
                for id in ids { sched.cancel(id) }
                pump.cancel()
                for r in results { self.record(r, timedOut: false, trace: ctx.trace) }
                self.logRequest(ctx, status: 200, results, outcome: "client_gone")
                throw error
            }
            for r in results { self.record(r, timedOut: timedOut.isSet, trace: ctx.trace) }
        })
    }

    /// What a streamed sequence's end tells the client when it did not finish normally: the drain
    /// deadline cut it, the request timeout cancelled it, or the engine failed. nil for stop /
    /// length, and for a cancel the client itself caused.
    func streamEndError(_ f: SequenceCompletion, timedOut: Bool) -> APIError? {
        if f.reason == .cancelled && drainExpired.isSet && !timedOut { return drainDeadlineError }
        if f.reason == .error || (f.reason == .cancelled && timedOut) {
            let msg = f.error ?? "the request took longer than \(Int(config.requestTimeout)) s and was cancelled"
            return APIError(status: f.reason == .error ? .internalServerError : .gatewayTimeout, message: msg,
                            type: f.reason == .error ? "server_error" : "timeout_error")
        }
        return nil
    }

    /// A streaming request's events, all sequences merged in arrival order (index of the
    /// sequence, event); the request timeout cancels them and sets the flag. Cancel the task when
    /// the client goes away.
    func mergedEvents(_ handles: [GenerationHandle]) -> (AsyncStream<(Int, GenerationEvent)>, Task<Void, Never>, Flag) {
        let (merged, cont) = AsyncStream<(Int, GenerationEvent)>.makeStream()
        let ids = handles.map(\.id)
        let sched = scheduler
        let timedOut = Flag()
        let timeout = config.requestTimeout
        let pump = Task {
            await withTaskGroup(of: Bool.self) { group in
                for (k, h) in handles.enumerated() {
                    group.addTask {
                        for await e in h.events { cont.yield((k, e)) }
                        return true
                    }
                }
                if timeout > 0 {
                    group.addTask {
                        if (try? await Task.sleep(for: .seconds(timeout))) != nil {
                            timedOut.set()
                            for id in ids { sched.cancel(id) }
                        }
                        return false
                    }
                }
                var remaining = handles.count
                for await isChoice in group where isChoice {
                    remaining -= 1
                    if remaining == 0 { group.cancelAll() }
                }
            }
            cont.finish()
        }
        return (merged, pump, timedOut)
    }

    /// One tool call as OpenAI writes it; `index` is set in streamed deltas (the call's position
    /// among the choice's calls).
    static func toolCallJSON(_ c: ParsedToolCall, index: Int?) -> JSONValue {
        var o: [String: JSONValue] = ["id": .string("call_" + randomID()), "type": "function",
                                      "function": ["name": .string(c.name), "arguments": .string(c.arguments)]]
        if let index { o["index"] = .int(index) }
        return .object(o)
    }

    func chunk(_ ctx: ResponseContext, _ index: Int, _ payload: JSONValue, lp: JSONValue?, finish: JSONValue) -> JSONValue {
        var choice: [String: JSONValue] = ["index": .int(index), "logprobs": lp ?? .null, "finish_reason": finish]
        if ctx.chat { choice["delta"] = payload } else { choice["text"] = payload }
        var o: [String: JSONValue] = [
            "id": .string(ctx.id), "object": .string(ctx.chat ? "chat.completion.chunk" : "text_completion"),
            "created": .int(ctx.created), "model": .string(config.servedModelName), "choices": [.object(choice)],
            "system_fingerprint": .string(systemFingerprint),
        ]
        if ctx.options.includeUsage { o["usage"] = .null }
        return .object(o)
    }
}

// MARK: - middleware

/// Every route except the public probes needs `Authorization: Bearer KEY` when keys are
/// configured. Keys are never logged.
///
/// The decision is made on the route the router resolved (`context.endpointPath`, set before
/// any middleware runs), never on the raw path: the router's own path rule (empty segments
/// dropped, ...) is then the only one, so no spelling of a path can reach a protected handler
/// without the key. Deny by default: a path that matched no route, or a route added later, needs
/// the key too; only `publicRoutes` are open.
/// The API key check of every front end (HTTP's `Authorization` header, gRPC's `authorization`
/// metadata): `Bearer <key>` with one of `keys`; no keys: no auth.
public enum APIKeys {
    /// nil when the request may go on, else the 401 it gets.
    public static func refusal(authorization header: String?, keys: Set<String>) -> APIError? {
        if keys.isEmpty { return nil }
        let header = header ?? ""
        let prefix = "Bearer "
        if header.hasPrefix(prefix), keys.contains(String(header.dropFirst(prefix.count))) { return nil }
        return APIError(status: .unauthorized,
                        message: header.isEmpty ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key",
                        type: "invalid_request_error", code: "invalid_api_key")
    }
}

struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: Set<String>
    /// Routes that answer without a key: Kubernetes probes and Prometheus scrapes carry none.
    static var publicRoutes: Set<String> { ["/healthz", "/readyz", "/metrics"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let route = context.endpointPath, Self.publicRoutes.contains(route) { return try await next(request, context) }
        guard let e = APIKeys.refusal(authorization: request.headers[.authorization], keys: keys) else {
            return try await next(request, context)
        }
        return Response(status: .unauthorized, headers: [.contentType: "application/json", .wwwAuthenticate: "Bearer"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: e.json.serialized())))
    }
}

/// One log line per request: method, path, status, duration. A completion endpoint's 200 is
/// logged by its handler instead, when the answer is done (with token counts and TTFT).
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    static func loggedByHandler(_ path: String, _ status: HTTPResponse.Status) -> Bool {
        status == .ok && ["/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses"].contains(path)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let t0 = ContinuousClock.now
        do {
            let r = try await next(request, context)
            if Self.loggedByHandler(context.endpointPath ?? request.uri.path, r.status) { return r }
            log(request, status: "\(r.status.code)", since: t0)
            return r
        } catch {
            log(request, status: "error", since: t0, error: error)
            throw error
        }
    }

    /// The line (with the request's trace id when it is traced).
    func log(_ request: Request, status: String, since t0: ContinuousClock.Instant, error: (any Error)? = nil) {
        var md: Logger.Metadata = [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(status)",
            "ms": "\(Int((ContinuousClock.now - t0).inSeconds * 1000))",
        ]
        if let error { md["error"] = "\(error)" }
        if let id = RequestSpan.current?.traceID { md["trace_id"] = "\(id)" }
        logger.info("request", metadata: md)
    }
}
