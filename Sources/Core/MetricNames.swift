/// The Prometheus names `autoglm serve` exports on `/metrics` that other layers refer to by name
/// (the Kubernetes autoscaling objects `deploy render` writes: the HPA, the prometheus-adapter
/// rules, the KEDA trigger). One definition: the server registers its series under these and the
/// renderer reads them from here, so a renamed series cannot leave the autoscaler reading nothing.
public enum MetricNames {
    /// Gauge: sequences the engine (or the backend) is running now.
    public static let requestsRunning = "autoglm:num_requests_running"
    /// Gauge: requests waiting for a slot (queued beyond the running batch).
    public static let requestsWaiting = "autoglm:num_requests_waiting"
    /// Counter: generation requests received (counted on arrival, before admission, so a
    /// refused request counts too: the rate is the offered load, what an autoscaler scales on).
    public static let requestsReceived = "autoglm:requests_received_total"
    /// Histogram (seconds): time from a request's arrival to its first token
    /// (series `<name>_bucket{le}`, `<name>_sum`, `<name>_count`).
    public static let timeToFirstToken = "autoglm:time_to_first_token_seconds"

    /// The series a histogram's buckets are exported under.
    public static func buckets(_ histogram: String) -> String { histogram + "_bucket" }
}
