import ArgumentParser
import Core
import Dispatch
import Foundation
import Logging
import Spec
import Telemetry
import Tracing

/// `--otlp-endpoint` / `--trace-sample-ratio`: the same two flags (and variables) on serve, up,
/// pull, optimize and deploy. No endpoint: no tracer is bootstrapped (zero cost).
struct TracingOptions: ParsableArguments {
    @Option(name: .customLong("otlp-endpoint"),
            help: "Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://localhost:4318 (\(TracingDefaults.tracesPath) is added when no path is given; also $\(TracingDefaults.endpointVariable)). Off when unset.")
    var otlpEndpoint: String?
    @Option(name: .customLong("trace-sample-ratio"),
            help: "Share of new traces recorded, 0...1 (default \(TracingDefaults.sampleRatio); also $\(TracingDefaults.sampleRatioVariable)); a caller's traceparent decides for its trace.")
    var traceSampleRatio: Double?

    func validate() throws {
        do { _ = try settings(service: "autoglm") } catch { throw ValidationError(error.description) }
    }

    /// The flags, else the spec's `server.otlpEndpoint` / `server.traceSampleRatio`, else the variables.
    func settings(service: String, spec: ServerSpec? = nil) throws(TracingError) -> TracingSettings? {
        try TracingSettings.resolve(endpoint: otlpEndpoint ?? spec?.otlpEndpoint, sampleRatio: traceSampleRatio ?? spec?.traceSampleRatio,
                                    serviceName: service)
    }

    /// Bootstraps the tracer when an endpoint is set (once per process).
    func start(service: String, spec: ServerSpec? = nil, logger: Logger) throws -> TracingHandle? {
        guard let s = try settings(service: service, spec: spec) else { return nil }
        let h = try Telemetry.bootstrap(s, logger: logger)
        logger.info("tracing", metadata: ["otlp_endpoint": "\(s.endpoint)", "sample_ratio": "\(s.sampleRatio)"])
        return h
    }

    /// Passes the resolved settings on to child processes (a fleet's replicas) through the OTel variables.
    func exportToChildren(service: String, spec: ServerSpec? = nil) throws {
        guard let s = try settings(service: service, spec: spec) else { return }
        setenv(TracingDefaults.endpointVariable, s.endpoint, 1)
        setenv(TracingDefaults.sampleRatioVariable, String(s.sampleRatio), 1)
    }
}

/// Runs `body` with the exporter running beside it (flushed at the end); without tracing, just `body`.
func withTracing<T: Sendable>(_ handle: TracingHandle?, _ body: () async throws -> T) async throws -> T {
    guard let handle else { return try await body() }
    return try await handle.exporting(body)
}

/// A span around one step of a CLI command (`pull`, `deploy apply`): a no-op without a tracer.
func traced<T>(_ name: String, _ attributes: [String: String] = [:], _ body: () async throws -> T) async throws -> T {
    try await withSpan(name) { span in
        for (k, v) in attributes { span.attributes[k] = v }
        return try await body()
    }
}

/// A synchronous command (`pull`, `deploy apply`) as one span `name`, with the exporter running
/// beside it and flushed before returning; without tracing, just `body`.
func tracedCommand<T>(_ handle: TracingHandle?, _ name: String, _ body: () throws -> T) throws -> T {
    guard let handle else { return try body() }
    let run = handle.startExporting()
    defer {
        let done = DispatchSemaphore(value: 0)
        Task { await run.finish(); done.signal() }
        done.wait()
    }
    let span = startSpan(name, context: .topLevel, ofKind: .internal)
    defer { span.end() }
    do {
        return try ServiceContext.$current.withValue(span.context) { try body() }
    } catch {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error))
        throw error
    }
}
