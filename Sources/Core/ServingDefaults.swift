/// Defaults of the serving front door that several layers must agree on (the server, the CLI
/// flags, the alerts `deploy render` writes from them).
public enum ServingDefaults {
    /// Waiting sequences before new requests get 429 (`serve --max-queue`, `up --max-queue`).
    public static let maxQueue = 64
}

/// Defaults of request tracing (`--otlp-endpoint`, `--trace-sample-ratio` on serve, up, pull,
/// optimize and deploy; `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER_ARG`).
public enum TracingDefaults {
    /// Share of new traces recorded once an endpoint is set (a caller's sampled flag is followed).
    public static let sampleRatio = 1.0
    /// The OTLP/HTTP path appended to an endpoint given without one.
    public static let tracesPath = "/v1/traces"
    /// The environment variables that stand in for the flags.
    public static let endpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT"
    public static let sampleRatioVariable = "OTEL_TRACES_SAMPLER_ARG"
}
