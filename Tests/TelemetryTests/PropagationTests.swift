import Core
import Engine
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryTracing
import NIOHTTP1
import OTel
import Logging
import Testing
import Tracing
@testable import Server
@testable import Telemetry

/// W3C trace context through the front door's extract / inject, with the propagator swift-otel
/// provides (the one `--otlp-endpoint` bootstraps), without touching the process-global tracer.
@Suite struct PropagationTests {
    static func otelTracer() throws -> any Tracer {
        var c = OTel.Configuration.default
        c.logs.enabled = false
        c.metrics.enabled = false
        c.propagators = [.traceContext]
        c.traces.exporter = .none
        return try OTel.makeTracingBackend(configuration: c).factory
    }

    @Test func traceparentRoundTrip() throws {
        let tracer = try Self.otelTracer()
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736", caller = "00f067aa0ba902b7"
        let incoming: HTTPFields = [HTTPField.Name("traceparent")!: "00-\(trace)-\(caller)-01",
                                    HTTPField.Name("tracestate")!: "vendor=abc"]
        let parent = RequestTracing.extract(incoming, tracer: tracer)
        // The extracted context is the caller's: injecting it gives back the same header.
        var echoed = HTTPHeaders()
        RequestTracing.inject(parent, into: &echoed, tracer: tracer)
        #expect(echoed.first(name: "traceparent") == "00-\(trace)-\(caller)-01")
        #expect(echoed.first(name: "tracestate") == "vendor=abc")

        // A child span (what the gateway's forward span is) carries the trace on with its own span id.
        let child = tracer.startSpan("forward", context: parent, ofKind: .client)
        defer { child.end() }
        var out = HTTPHeaders()
        RequestTracing.inject(child.context, into: &out, tracer: tracer)
        let fields = try #require(out.first(name: "traceparent")).split(separator: "-").map(String.init)
        #expect(fields.count == 4)
        #expect(fields[1] == trace)
        #expect(fields[2] != caller && fields[2].count == 16)
        #expect(fields[3] == "01")
        #expect(RequestTracing.traceID(of: child.context, tracer: tracer) == trace)

        // And the replica extracts what the gateway sent: same trace, the child as parent.
        var replicaFields = HTTPFields()
        for h in out { replicaFields[HTTPField.Name(h.name)!] = h.value }
        let replica = RequestTracing.extract(replicaFields, tracer: tracer)
        var again = HTTPHeaders()
        RequestTracing.inject(replica, into: &again, tracer: tracer)
        #expect(again.first(name: "traceparent") == out.first(name: "traceparent"))
    }

    @Test func noHeadersStartsANewTrace() throws {
        let tracer = try Self.otelTracer()
        let parent = RequestTracing.extract(HTTPFields(), tracer: tracer)
        #expect(RequestTracing.traceID(of: parent, tracer: tracer) == nil)
        let span = tracer.startSpan("root", context: parent, ofKind: .server)
        defer { span.end() }
        let id = try #require(RequestTracing.traceID(of: span.context, tracer: tracer))
        #expect(id.count == 32 && id != String(repeating: "0", count: 32))
    }
}

/// The spans a request makes, recorded by an in-memory tracer: the server span under the
/// caller's context, the engine's phases (from its timestamps) under the server span.
@Suite struct SpanNestingTests {
    static func completion(base: ContinuousClock.Instant) -> SequenceCompletion {
        var t = SequenceTimings(queued: base)
        t.scheduled = base + .milliseconds(5)
        t.prefillChunks = [PrefillChunk(start: base + .milliseconds(5), end: base + .milliseconds(9), tokens: 16),
                           PrefillChunk(start: base + .milliseconds(9), end: base + .milliseconds(12), tokens: 7)]
        t.firstToken = base + .milliseconds(12)
        t.finished = base + .milliseconds(30)
        return SequenceCompletion(reason: .stop, text: "", promptTokens: 23, completionTokens: 6, timings: t)
    }

    @Test func phasesAreChildrenOfTheRequestSpanWithTheEngineTimes() throws {
        let tracer = InMemoryTracer()
        let root = tracer.startSpan("POST /v1/chat/completions", context: .topLevel, ofKind: .server)
        let request = RequestSpan(span: root, tracer: tracer)
        let base = ContinuousClock.now - .milliseconds(100)
        RequestTracing.recordPhases(Self.completion(base: base), parent: request)
        RequestTracing.finish(request, model: "m", status: 200, promptTokens: 23, completionTokens: 6)
        root.end()

        let spans = tracer.finishedSpans
        let server = try #require(spans.first { $0.operationName == "POST /v1/chat/completions" })
        let phases = spans.filter { $0.operationName != server.operationName }
        #expect(phases.map(\.operationName) == ["queue", "prefill", "prefill", "decode"])
        for p in phases {
            #expect(p.traceID == server.traceID)
            #expect(p.parentSpanID == server.spanID)
        }
        func ms(_ s: FinishedInMemorySpan) -> (Int64, Int64) {
            (Int64(s.startInstant.nanosecondsSinceEpoch) / 1_000_000, Int64(s.endInstant.nanosecondsSinceEpoch) / 1_000_000)
        }
        // Durations come from the engine's timestamps (±1 ms of rounding), whatever the wall clock.
        let (q0, q1) = ms(phases[0]), (p0, p1) = ms(phases[1]), (d0, d1) = ms(phases[3])
        #expect(abs((q1 - q0) - 5) <= 1)
        #expect(abs((p1 - p0) - 4) <= 1)
        #expect(abs((d1 - d0) - 18) <= 1)
        #expect(abs(p0 - q1) <= 1)
        #expect(phases[1].attributes["autoglm.prefill.tokens"]?.toSpanAttribute() == 16)
        #expect(phases[2].attributes["autoglm.prefill.tokens"]?.toSpanAttribute() == 7)
        #expect(phases[3].attributes["autoglm.completion_tokens"]?.toSpanAttribute() == 6)
        #expect(server.attributes["gen_ai.request.model"]?.toSpanAttribute() == "m")
        #expect(server.attributes["gen_ai.usage.input_tokens"]?.toSpanAttribute() == 23)
        #expect(server.attributes["gen_ai.usage.output_tokens"]?.toSpanAttribute() == 6)
    }

    @Test func middlewareMakesAServerSpanUnderTheCallersContext() async throws {
        let tracer = InMemoryTracer()
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: RequestTracingMiddleware(tracer: tracer))
        router.post("/v1/chat/completions") { _, _ -> Response in
            // The handler sees its request's span (what the engine's phases hang under).
            guard let r = RequestSpan.current else { return Response(status: .internalServerError) }
            RequestTracing.recordPhases(Self.completion(base: ContinuousClock.now - .milliseconds(50)), parent: r)
            return Response(status: .ok)
        }
        router.get("/healthz") { _, _ in Response(status: .ok) }
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/chat/completions", method: .post,
                                     headers: [HTTPField.Name(InMemoryTracer.traceIDKey)!: "caller-trace",
                                               HTTPField.Name(InMemoryTracer.spanIDKey)!: "caller-span"]) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
        }
        let spans = tracer.finishedSpans
        let server = try #require(spans.first { $0.kind == .server })
        #expect(server.operationName == "POST /v1/chat/completions")
        #expect(server.traceID == "caller-trace")
        #expect(server.parentSpanID == "caller-span")
        #expect(server.attributes["http.response.status_code"]?.toSpanAttribute() == 200)
        let children = spans.filter { $0.parentSpanID == server.spanID }.map(\.operationName)
        #expect(children == ["queue", "prefill", "prefill", "decode"])
        // Probes are not traced.
        #expect(spans.filter { $0.kind == .server }.count == 1)
    }
}

/// `--otlp-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT` and the ratio: one rule for every command.
@Suite struct TracingSettingsTests {
    @Test func noEndpointMeansNoTracing() throws {
        #expect(try TracingSettings.resolve(endpoint: nil, sampleRatio: nil, serviceName: "s", environment: [:]) == nil)
    }

    @Test func flagWinsOverVariableAndThePathIsAdded() throws {
        let env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_TRACES_SAMPLER_ARG": "0.25"]
        let a = try #require(try TracingSettings.resolve(endpoint: "http://flag:4318/", sampleRatio: nil, serviceName: "s", environment: env))
        #expect(a.endpoint == "http://flag:4318/v1/traces")
        #expect(a.sampleRatio == 0.25)
        let b = try #require(try TracingSettings.resolve(endpoint: nil, sampleRatio: 0.5, serviceName: "s", environment: env))
        #expect(b.endpoint == "http://env:4318/v1/traces")
        #expect(b.sampleRatio == 0.5)
        let c = try #require(try TracingSettings.resolve(endpoint: "https://c:1/custom/path", sampleRatio: nil, serviceName: "s", environment: [:]))
        #expect(c.endpoint == "https://c:1/custom/path")
        #expect(c.sampleRatio == TracingDefaults.sampleRatio)
    }

    @Test func badValuesSayWhatToGive() {
        #expect(throws: TracingError.self) { try TracingSettings.resolve(endpoint: "localhost:4318", sampleRatio: nil, serviceName: "s", environment: [:]) }
        #expect(throws: TracingError.self) { try TracingSettings.resolve(endpoint: "http://h:1", sampleRatio: 1.5, serviceName: "s", environment: [:]) }
        #expect(throws: TracingError.self) {
            try TracingSettings.resolve(endpoint: "http://h:1", sampleRatio: nil, serviceName: "s", environment: ["OTEL_TRACES_SAMPLER_ARG": "half"])
        }
    }

    @Test func exporterLossesAreCounted() {
        let before = TraceExport.droppedSpans.load(ordering: .relaxed)
        var logger = Logger(label: "t") { _ in DropCountingLogHandler(forward: Logger(label: "f") { _ in SwiftLogNoOpLogHandler() }) }
        logger.logLevel = .debug
        var batch = logger
        batch[metadataKey: "batch_size"] = "7"
        batch.warning("Failed to export batch.")
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["dropped_count": "5"])
        logger.warning("something else", metadata: ["batch_size": "100"])
        #expect(TraceExport.droppedSpans.load(ordering: .relaxed) - before == 12)
    }
}
