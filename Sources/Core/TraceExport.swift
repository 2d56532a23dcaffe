import Synchronization

/// Process-wide facts of the trace exporter that the layers below it report (the exporter is
/// bootstrapped once per process, above the server; the server's `/metrics` shows them).
public enum TraceExport {
    /// Finished spans that never reached the collector: dropped because the exporter's bounded
    /// queue was full (a slow collector), or in a batch whose export failed (collector down).
    public static let droppedSpans = Atomic<Int>(0)
}
