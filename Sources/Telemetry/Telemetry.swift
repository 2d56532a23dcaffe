import Core
import Foundation
import Logging
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

/// A tracing setting the user got wrong; the message says how to fix it.
public enum TracingError: Error, CustomStringConvertible, Sendable {
    case badEndpoint(String, source: String)
    case badRatio(String, source: String)
    case bootstrap(String)

    public var description: String {
        switch self {
        case .badEndpoint(let v, let src):
            return "\(src) '\(v)' is not an OTLP/HTTP collector URL: give http://HOST:PORT (the path \(TracingDefaults.tracesPath) is added) or a full URL such as http://localhost:4318/v1/traces"
        case .badRatio(let v, let src):
            return "\(src) '\(v)' is not a sampling ratio: give a number from 0 to 1 (1 records every trace)"
        case .bootstrap(let m):
            return "the OpenTelemetry exporter could not start: \(m); check --otlp-endpoint and the OTEL_* environment variables"
        }
    }
}

/// Where spans go and how many are kept, from the flags or the OTel environment variables.
public struct TracingSettings: Sendable, Equatable {
    /// The collector's OTLP/HTTP traces URL.
    public var endpoint: String
    public var sampleRatio: Double
    public var serviceName: String

    /// The settings of `--otlp-endpoint` / `--trace-sample-ratio` (a flag wins over its variable).
    /// No endpoint anywhere: nil — nothing is bootstrapped and tracing costs nothing.
    public static func resolve(endpoint flag: String?, sampleRatio ratioFlag: Double?, serviceName: String,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws(TracingError) -> TracingSettings? {
        let fromEnv = environment[TracingDefaults.endpointVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let raw = flag ?? fromEnv else { return nil }
        let src = flag != nil ? "--otlp-endpoint" : "$\(TracingDefaults.endpointVariable)"
        guard let url = URLComponents(string: raw), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else { throw .badEndpoint(raw, source: src) }
        let endpoint = url.path.isEmpty || url.path == "/"
            ? raw.trimmingSuffix("/") + TracingDefaults.tracesPath : raw
        var ratio = TracingDefaults.sampleRatio
        if let r = ratioFlag {
            guard r.isFinite, (0...1).contains(r) else { throw .badRatio("\(r)", source: "--trace-sample-ratio") }
            ratio = r
        } else if let s = environment[TracingDefaults.sampleRatioVariable], !s.isEmpty {
            guard let r = Double(s), r.isFinite, (0...1).contains(r) else {
                throw .badRatio(s, source: "$\(TracingDefaults.sampleRatioVariable)")
            }
            ratio = r
        }
        return TracingSettings(endpoint: endpoint, sampleRatio: ratio, serviceName: serviceName)
    }
}

/// The bootstrapped tracer and the exporter's background service.
public struct TracingHandle: Sendable {
    public let tracer: any Tracer
    let service: any Service

    /// Starts the exporter's background work (batching, export).
    public func startExporting() -> ExportRun {
        let group = ServiceGroup(configuration: .init(services: [service], logger: Logger(label: "autoglm.otel") { _ in SwiftLogNoOpLogHandler() }))
        return ExportRun(group: group, task: Task { try await group.run() })
    }

    /// Runs `body` with the exporter running beside it; afterwards the exporter flushes what it
    /// still holds (bounded by its export timeout) and stops.
    public func exporting<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let run = startExporting()
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        await run.finish()
        return try result.get()
    }
}

/// The exporter running in the background.
public struct ExportRun: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    /// Flushes what the exporter holds (bounded by its export timeout) and stops it.
    public func finish() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}

public enum Telemetry {
    static let bootstrapped = Atomic<Bool>(false)

    /// The process's tracer once `bootstrap` ran, else nil (the server adds no tracing then).
    public static var tracer: (any Tracer)? {
        bootstrapped.load(ordering: .acquiring) ? InstrumentationSystem.tracer : nil
    }

    /// The OTel variables the flags stand for: left out of what the exporter reads, so a flag
    /// given beside its variable wins and the endpoint means the same everywhere.
    static let resolvedVariables: Set<String> = [
        TracingDefaults.endpointVariable, TracingDefaults.sampleRatioVariable, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ]

    /// Bootstraps the process's tracer (once per process): OTLP/HTTP protobuf to the settings'
    /// endpoint, W3C trace context, a parent-based ratio sampler, the batch span processor (its
    /// queue is bounded: `OTEL_BSP_MAX_QUEUE_SIZE`, default 2048). Spans it loses (queue full, or a
    /// failed export when the collector is slow or down) count in `TraceExport.droppedSpans`.
    public static func bootstrap(_ s: TracingSettings, logger: Logger) throws(TracingError) -> TracingHandle {
        var c = OTel.Configuration.default
        c.serviceName = s.serviceName
        c.logs.enabled = false
        c.metrics.enabled = false
        c.propagators = [.traceContext]
        c.traces.enabled = true
        c.traces.exporter = .otlp
        c.traces.otlpExporter.protocol = .httpProtobuf
        c.traces.otlpExporter.endpoint = s.endpoint
        guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: s.sampleRatio) else {
            throw .badRatio("\(s.sampleRatio)", source: "--trace-sample-ratio")
        }
        c.traces.sampler = sampler
        c.diagnosticLogLevel = .warning
        c.diagnosticLogger = .custom(Logger(label: "autoglm.otel") { _ in DropCountingLogHandler(forward: logger) })
        let env = ProcessInfo.processInfo.environment.filter { !resolvedVariables.contains($0.key) }
        do {
            let service = try OTel.bootstrap(configuration: c, environment: env)
            bootstrapped.store(true, ordering: .releasing)
            return TracingHandle(tracer: InstrumentationSystem.tracer, service: service)
        } catch {
            throw .bootstrap("\(error)")
        }
    }
}

/// The exporter's diagnostic log: the batch span processor reports spans it dropped (queue full)
/// and batches whose export failed only there, so their counts are read from it into
/// `TraceExport.droppedSpans`. The first failure is passed on to the server's log (later ones
/// would flood it while a collector is down; the counter keeps counting).
struct DropCountingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    let forward: Logger
    static let reported = Atomic<Bool>(false)

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let text = event.message.description
        var lost = 0
        if text.hasPrefix("Failed to export batch"), let n = all["batch_size"].flatMap({ Int("\($0)") }) { lost = n }
        if text.hasPrefix("Spans were dropped"), let n = all["dropped_count"].flatMap({ Int("\($0)") }) { lost = n }
        guard lost > 0 else { return }
        TraceExport.droppedSpans.add(lost, ordering: .relaxed)
        if !Self.reported.exchange(true, ordering: .relaxed) {
            let why = event.error.map { "\($0)" } ?? all["error"].map { "\($0)" } ?? "-"
            forward.warning("trace export is losing spans (counted in \(MetricNames.traceSpansDropped)); is the collector at --otlp-endpoint up?",
                            metadata: ["reason": "\(text)", "error": "\(why)"])
        }
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String {
        var out = self
        while out.hasSuffix(s) { out.removeLast(s.count) }
        return out
    }
}
