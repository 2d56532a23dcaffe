import Core
import CoreMetrics
import Engine
import Foundation
import Metrics
import Prometheus
import Synchronization

/// Prometheus metrics (prefix `autoglm:`, label `model_name`) through swift-metrics handles on
/// a private `PrometheusMetricsFactory`: no global bootstrap, so tests can build many servers.
/// Latencies are derived here, in the frontend, from the engine's monotonic timestamps.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let model: String
    let running: CoreMetrics.Gauge
    let waiting: CoreMetrics.Gauge
    /// Generation requests received (on arrival, before admission): the offered load.
    let requestsReceived: CoreMetrics.Counter
    /// Spans the trace exporter dropped (process-wide `TraceExport.droppedSpans`, brought up to date on render).
    let spansDropped: CoreMetrics.Counter
    let spansDroppedSeen = Mutex(0)
    /// Created on first use: a proxied backend that does not report KV usage shows no series
    /// rather than a false 0.
    let kvUsage: Mutex<CoreMetrics.Gauge?>
    let promptTokens: CoreMetrics.Counter
    let generationTokens: CoreMetrics.Counter
    /// Prompt tokens looked up in the prefix cache, and those found there (vLLM's
    /// prefix_cache_queries / prefix_cache_hits, counted in tokens).
    let prefixQueries: CoreMetrics.Counter
    let prefixHits: CoreMetrics.Counter
    /// Speculative decoding: draft tokens verified, and those accepted (vLLM's spec_decode_num_*).
    let specDraftTokens: CoreMetrics.Counter
    let specAcceptedTokens: CoreMetrics.Counter
    let ttft: CoreMetrics.Recorder
    let itl: CoreMetrics.Recorder
    let e2e: CoreMetrics.Recorder
    let queueTime: CoreMetrics.Recorder
    let batchSize: CoreMetrics.Recorder
    let batchTokens: CoreMetrics.Recorder
    /// Constrained decoding: grammar compile time per request; token masks computed (cache
    /// misses) and the seconds they took.
    let grammarCompile: CoreMetrics.Recorder
    let grammarMasks: CoreMetrics.Counter
    let grammarMaskSeconds: CoreMetrics.FloatingPointCounter

    static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5,
                                           7.5, 10, 20, 40, 80, 160, 640, 2560]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

    public init(modelName: String) {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultValueHistogramBuckets = Self.latencyBuckets
        f.valueHistogramBuckets = [MetricNames.batchSize: Self.batchBuckets, MetricNames.batchTokens: Self.batchBuckets]
        factory = f
        model = modelName
        let d = [("model_name", modelName)]
        running = CoreMetrics.Gauge(label: MetricNames.requestsRunning, dimensions: d, factory: f)
        waiting = CoreMetrics.Gauge(label: MetricNames.requestsWaiting, dimensions: d, factory: f)
        requestsReceived = CoreMetrics.Counter(label: MetricNames.requestsReceived, dimensions: d, factory: f)
        spansDropped = CoreMetrics.Counter(label: MetricNames.traceSpansDropped, dimensions: d, factory: f)
        kvUsage = Mutex(nil)
        promptTokens = CoreMetrics.Counter(label: MetricNames.promptTokens, dimensions: d, factory: f)
        generationTokens = CoreMetrics.Counter(label: MetricNames.generationTokens, dimensions: d, factory: f)
        prefixQueries = CoreMetrics.Counter(label: MetricNames.prefixCacheQueries, dimensions: d, factory: f)
        prefixHits = CoreMetrics.Counter(label: MetricNames.prefixCacheHits, dimensions: d, factory: f)
        specDraftTokens = CoreMetrics.Counter(label: MetricNames.specDraftTokens, dimensions: d, factory: f)
        specAcceptedTokens = CoreMetrics.Counter(label: MetricNames.specAcceptedTokens, dimensions: d, factory: f)
        ttft = CoreMetrics.Recorder(label: MetricNames.timeToFirstToken, dimensions: d, aggregate: true, factory: f)
        itl = CoreMetrics.Recorder(label: MetricNames.interTokenLatency, dimensions: d, aggregate: true, factory: f)
        e2e = CoreMetrics.Recorder(label: MetricNames.e2eLatency, dimensions: d, aggregate: true, factory: f)
        queueTime = CoreMetrics.Recorder(label: MetricNames.queueTime, dimensions: d, aggregate: true, factory: f)
        batchSize = CoreMetrics.Recorder(label: MetricNames.batchSize, dimensions: d, aggregate: true, factory: f)
        batchTokens = CoreMetrics.Recorder(label: MetricNames.batchTokens, dimensions: d, aggregate: true, factory: f)
        grammarCompile = CoreMetrics.Recorder(label: MetricNames.grammarCompile, dimensions: d, aggregate: true, factory: f)
        grammarMasks = CoreMetrics.Counter(label: MetricNames.grammarMasks, dimensions: d, factory: f)
        grammarMaskSeconds = CoreMetrics.FloatingPointCounter(label: MetricNames.grammarMaskSeconds, dimensions: d, factory: f)
        // Pre-create the labelled counters so they show (at 0) before the first request.
        requestsReceived.increment(by: 0)
        for r in ["stop", "length"] { success(r, count: 0) }
        for r in ["cancelled", "timeout", "error"] { failure(r, count: 0) }
    }

    func success(_ reason: String, count: Int = 1) {
        CoreMetrics.Counter(label: MetricNames.requestSuccess,
                            dimensions: [("model_name", model), ("finish_reason", reason)], factory: factory)
            .increment(by: count)
    }

    func failure(_ reason: String, count: Int = 1) {
        CoreMetrics.Counter(label: MetricNames.requestFailure,
                            dimensions: [("model_name", model), ("reason", reason)], factory: factory)
            .increment(by: count)
    }

    /// A gauge in this registry (with the `model_name` label added), for layers above the server
    /// (the fleet's replica counts).
    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, dimensions: [("model_name", model)] + dimensions, factory: factory)
    }

    /// A counter in this registry (with the `model_name` label added).
    public func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: label, dimensions: [("model_name", model)] + dimensions, factory: factory)
    }

    /// Records one finished sequence from its engine timestamps and token times.
    func record(_ c: SequenceCompletion, tokenTimes: [ContinuousClock.Instant]) {
        let t = c.timings
        promptTokens.increment(by: c.promptTokens)
        generationTokens.increment(by: c.completionTokens)
        if t.scheduled != nil {
            prefixQueries.increment(by: c.promptTokens)
            prefixHits.increment(by: c.cachedTokens)
        }
        if c.draftTokens > 0 {
            specDraftTokens.increment(by: c.draftTokens)
            specAcceptedTokens.increment(by: c.acceptedDraftTokens)
        }
        if let s = t.scheduled { queueTime.record((s - t.queued).inSeconds) }
        if let f = t.firstToken { ttft.record((f - t.queued).inSeconds) }
        if tokenTimes.count > 1 {
            for i in 1..<tokenTimes.count { itl.record((tokenTimes[i] - tokenTimes[i - 1]).inSeconds) }
        }
        if let e = t.finished { e2e.record((e - t.queued).inSeconds) }
        if c.grammarMasks > 0 {
            grammarMasks.increment(by: c.grammarMasks)
            grammarMaskSeconds.increment(by: c.grammarMaskSeconds)
        }
    }

    /// One generation request arrived (before its body is read or it is admitted).
    func arrived() { requestsReceived.increment() }

    func step(_ info: StepInfo) {
        batchSize.record(Double(info.sequences))
        batchTokens.record(Double(info.tokens))
    }

    /// Prometheus text, with the engine gauges refreshed from `stats`.
    func render(_ stats: SchedulerStats) -> String {
        render(running: Double(stats.running), waiting: Double(stats.waiting), kvUsage: stats.kvUsage)
    }

    /// Prometheus text with the serving gauges set to these values (`kvUsage` nil: not reported).
    func render(running r: Double, waiting w: Double, kvUsage kv: Double?) -> String {
        running.record(r)
        waiting.record(w)
        let dropped = TraceExport.droppedSpans.load(ordering: .relaxed)
        let delta = spansDroppedSeen.withLock { seen -> Int in
            defer { seen = max(seen, dropped) }
            return dropped - seen
        }
        if delta > 0 { spansDropped.increment(by: delta) }
        if let kv {
            let (f, m) = (factory, model)
            kvUsage.withLock { g in
                if g == nil { g = CoreMetrics.Gauge(label: MetricNames.kvCacheUsage, dimensions: [("model_name", m)], factory: f) }
                g?.record(kv)
            }
        }
        return registry.emitToString()
    }
}
