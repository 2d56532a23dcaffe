import Core
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOHTTP1
import Tracing

/// One request's server span, reachable from its handler (task-local `current`) and kept by the
/// response context for what runs after the handler returned (a streamed body, the log line).
public final class RequestSpan: Sendable {
    public let span: any Span
    /// The W3C trace id (32 hex digits) the span belongs to, for the request's log line.
    public let traceID: String?
    let tracer: any Tracer

    @TaskLocal public static var current: RequestSpan?

    init(span: any Span, tracer: any Tracer) {
        self.span = span
        self.tracer = tracer
        traceID = RequestTracing.traceID(of: span.context, tracer: tracer)
    }
}

/// Tracing of the OpenAI front doors (the native server and the gateway / proxy): W3C
/// `traceparent` / `tracestate` in and out, the request's server span, the engine's phases as
/// child spans. The tracer is handed in (`ServerConfig.tracer`): nil means no tracing at all.
public enum RequestTracing {
    /// The trace id of `context` as the propagator writes it (`traceparent`'s second field).
    public static func traceID(of context: ServiceContext, tracer: any Tracer) -> String? {
        var headers: [String: String] = [:]
        tracer.inject(context, into: &headers, using: DictionaryInjector())
        guard let tp = headers["traceparent"] else { return nil }
        let parts = tp.split(separator: "-")
        return parts.count == 4 ? String(parts[1]) : nil
    }

    /// Writes `context`'s trace headers into an outgoing request's headers.
    public static func inject(_ context: ServiceContext, into headers: inout HTTPHeaders, tracer: any Tracer) {
        tracer.inject(context, into: &headers, using: NIOHeadersInjector())
    }

    /// The context a request's headers carry (none: a new trace starts).
    public static func extract(_ headers: HTTPFields, tracer: any Tracer) -> ServiceContext {
        var context = ServiceContext.topLevel
        tracer.extract(headers, into: &context, using: HTTPFieldsExtractor())
        return context
    }

    /// The spans of one finished sequence, children of the request's span, from the engine's
    /// timestamps: queue wait (submit → admission), each prefill chunk, decode (first token →
    /// end, one span whatever the token count). Created here, off the engine thread.
    public static func recordPhases(_ c: SequenceCompletion, parent: RequestSpan) {
        let clock = WallClockMapping()
        let t = c.timings
        let tracer = parent.tracer, context = parent.span.context
        func span(_ name: String, _ from: ContinuousClock.Instant, _ to: ContinuousClock.Instant,
                  _ attributes: (inout SpanAttributes) -> Void) {
            let s = tracer.startSpan(name, context: context, ofKind: .internal, at: clock.instant(from))
            s.updateAttributes(attributes)
            s.end(at: clock.instant(max(from, to)))
        }
        let admitted = t.scheduled ?? t.finished ?? t.queued
        span("queue", t.queued, admitted) { $0["autoglm.preemptions"] = t.preemptions }
        for chunk in t.prefillChunks {
            span("prefill", chunk.start, chunk.end) { $0["autoglm.prefill.tokens"] = chunk.tokens }
        }
        if let first = t.firstToken, let end = t.finished {
            span("decode", first, end) {
                $0["autoglm.completion_tokens"] = c.completionTokens
                $0["autoglm.finish_reason"] = c.reason.rawValue
            }
        }
    }

    /// The span of sending the answer: from the first token (or `from`) until now.
    public static func recordRespond(_ name: String, from: ContinuousClock.Instant, parent: RequestSpan) {
        let clock = WallClockMapping()
        let s = parent.tracer.startSpan(name, context: parent.span.context, ofKind: .internal, at: clock.instant(from))
        s.end(at: clock.instant(ContinuousClock.now))
    }

    /// The request span's result attributes, set once the answer is known.
    public static func finish(_ r: RequestSpan, model: String, status: Int, promptTokens: Int?, completionTokens: Int?) {
        r.span.updateAttributes { a in
            a["gen_ai.request.model"] = model
            a["http.response.status_code"] = status
            if let p = promptTokens { a["gen_ai.usage.input_tokens"] = p }
            if let c = completionTokens { a["gen_ai.usage.output_tokens"] = c }
        }
        if status >= 500 { r.span.setStatus(SpanStatus(code: .error)) }
    }
}

/// The server span of every request through a front door: the caller's `traceparent` /
/// `tracestate` as its parent, the route and the status as attributes; it ends once the body is
/// written (a stream's last event). The handler finds it in `RequestSpan.current`.
struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    let tracer: any Tracer

    /// Probes and scrapes are not traced (a fleet's gateway polls them all the time).
    static func untraced(_ path: String) -> Bool { path == "/healthz" || path == "/readyz" || path == "/metrics" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.untraced(request.uri.path) { return try await next(request, context) }
        let parent = RequestTracing.extract(request.headers, tracer: tracer)
        let span = tracer.startSpan("\(request.method.rawValue) \(request.uri.path)", context: parent, ofKind: .server)
        span.updateAttributes { a in
            a["http.request.method"] = request.method.rawValue
            a["url.path"] = request.uri.path
        }
        let holder = RequestSpan(span: span, tracer: tracer)
        do {
            var response = try await RequestSpan.$current.withValue(holder) {
                try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
            }
            span.updateAttributes { a in
                a["http.route"] = context.endpointPath ?? request.uri.path
                a["http.response.status_code"] = Int(response.status.code)
            }
            if response.status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
            // The span ends once the body is written (a stream's last event), or failed to be.
            let body = response.body
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                defer { holder.span.end() }
                try await body.write(writer)
            }
            return response
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            span.end()
            throw error
        }
    }
}

/// A point in wall-clock time for span start / end.
struct WallInstant: TracerInstant {
    let nanosecondsSinceEpoch: UInt64
    static func < (a: Self, b: Self) -> Bool { a.nanosecondsSinceEpoch < b.nanosecondsSinceEpoch }
}

/// Maps the engine's monotonic instants to wall-clock instants (one reading of both clocks).
struct WallClockMapping {
    let wall = DefaultTracerClock.now.nanosecondsSinceEpoch
    let mono = ContinuousClock.now

    func instant(_ t: ContinuousClock.Instant) -> WallInstant {
        let back = (mono - t).inNanoseconds
        return WallInstant(nanosecondsSinceEpoch: UInt64(max(0, Int64(wall) - back)))
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var inNanoseconds: Int64 {
        let (s, a) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (s < 0 ? .min : .max) : ns &+ a / 1_000_000_000
    }
}

struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { carrier[$0] }
    }
}

struct NIOHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
