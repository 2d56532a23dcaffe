/// The Prometheus series `autoglm serve` exports on `/metrics` (every backend's front door:
/// `OpenAIServer` and `ProxyServer` register them through `ServerMetrics`) that other layers refer
/// to by name: the Kubernetes autoscaling objects (HPA, prometheus-adapter rules, KEDA trigger), the
/// PrometheusRule alerts and the Grafana dashboard `deploy render` writes. One definition: the server
/// registers its series under these and the renderer reads them from here, so a renamed series
/// cannot leave an autoscaler or an alert reading nothing.
public enum MetricNames {
    /// Gauge: sequences the engine (or the backend) is running now.
    public static let requestsRunning = "autoglm:num_requests_running"
    /// Gauge: requests waiting for a slot (queued beyond the running batch).
    public static let requestsWaiting = "autoglm:num_requests_waiting"
    /// Counter: generation requests received (counted on arrival, before admission, so a
    /// refused request counts too: the rate is the offered load, what an autoscaler scales on).
    public static let requestsReceived = "autoglm:requests_received_total"
    public static let kvCacheUsage = "autoglm:kv_cache_usage_ratio"
    public static let promptTokens = "autoglm:prompt_tokens_total"
    public static let generationTokens = "autoglm:generation_tokens_total"
    public static let prefixCacheQueries = "autoglm:prefix_cache_queries_total"
    public static let prefixCacheHits = "autoglm:prefix_cache_hits_total"
    /// Counters (speculative decoding, vLLM's names): draft tokens proposed and verified, and
    /// those the target model accepted. Their ratio is the acceptance rate.
    public static let specDraftTokens = "autoglm:spec_decode_num_draft_tokens_total"
    public static let specAcceptedTokens = "autoglm:spec_decode_num_accepted_tokens_total"
    /// Histogram (seconds): time from a request's arrival to its first token.
    public static let timeToFirstToken = "autoglm:time_to_first_token_seconds"
    public static let interTokenLatency = "autoglm:inter_token_latency_seconds"
    public static let e2eLatency = "autoglm:e2e_request_latency_seconds"
    public static let queueTime = "autoglm:request_queue_time_seconds"
    public static let batchSize = "autoglm:batch_size"
    public static let batchTokens = "autoglm:batch_tokens"
    public static let grammarCompile = "autoglm:grammar_compile_seconds"
    public static let grammarMasks = "autoglm:grammar_masks_built_total"
    public static let grammarMaskSeconds = "autoglm:grammar_mask_seconds_total"
    public static let requestSuccess = "autoglm:request_success_total"
    public static let requestFailure = "autoglm:request_failure_total"
    /// Counter: spans the OTLP trace exporter dropped (queue full or export failed); 0 without `--otlp-endpoint`.
    public static let traceSpansDropped = "autoglm:trace_spans_dropped_total"

    /// Histograms (each emits `NAME_bucket{le=…}`, `NAME_sum`, `NAME_count`).
    public static let histograms: [String] = [timeToFirstToken, interTokenLatency, e2eLatency, queueTime, batchSize, batchTokens, grammarCompile]
    /// Gauges and counters (one series per label set, under the name itself).
    public static let scalars: [String] = [requestsRunning, requestsWaiting, requestsReceived, kvCacheUsage, promptTokens, generationTokens,
                                           prefixCacheQueries, prefixCacheHits, specDraftTokens, specAcceptedTokens, grammarMasks, grammarMaskSeconds, requestSuccess, requestFailure,
                                           traceSpansDropped]
    /// Every series name Prometheus scrapes: the scalars, and each histogram's three series.
    public static var seriesNames: Set<String> {
        Set(scalars + histograms.flatMap { [buckets($0), $0 + "_sum", $0 + "_count"] })
    }

    /// The series a histogram's buckets are exported under.
    public static func buckets(_ histogram: String) -> String { histogram + "_bucket" }
}
