import Foundation
import Histogram

/// Percentiles of one latency, in milliseconds (HdrHistogram, 3 significant digits, µs resolution).
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p95: Double
    public var p99: Double
    /// Exact arithmetic mean of the recorded values.
    public var mean: Double
    public var max: Double

    public init(count: Int = 0, p50: Double = 0, p90: Double = 0, p95: Double = 0, p99: Double = 0, mean: Double = 0, max: Double = 0) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p95 = p95
        self.p99 = p99
        self.mean = mean
        self.max = max
    }
}

/// The result of one run.
public struct LoadReport: Sendable, Codable {
    public var ttft: LatencySummary
    public var tpot: LatencySummary
    public var itl: LatencySummary
    public var e2e: LatencySummary
    public var completed: Int
    public var failed: Int
    /// Failures by kind: http_429, http_5xx, http_4xx, timeout, connection, bad_stream.
    public var errors: [String: Int]
    /// The first message seen for each error kind.
    public var errorExamples: [String: String]
    public var outputTokens: Int
    public var promptTokens: Int
    /// From the first measured request's start to the last one's end.
    public var durationSeconds: Double
    public var outputTokensPerSecond: Double
    public var requestsPerSecond: Double
    /// Requests per second that met every SLO target (nil without an SLO).
    public var goodput: Double?
    /// True when `abortWhen` stopped the run.
    public var aborted: Bool
    /// Multi-turn runs: TTFT of each turn (index 0 = first turns), so the cost of a repeated
    /// conversation prefix shows; nil otherwise.
    public var ttftByTurn: [LatencySummary]?
    /// The model name the requests asked for.
    public var model: String
}

/// Statistics while a run is going, handed to `progress` and `abortWhen`.
public struct LiveStats: Sendable {
    public var elapsedSeconds: Double
    /// Measured requests planned.
    public var total: Int
    public var started: Int
    public var completed: Int
    public var failed: Int
    public var inFlight: Int
    public var outputTokens: Int
    public var errors: [String: Int]
    /// Completed requests that met / missed the SLO (both 0 without one).
    public var sloMet: Int
    public var sloMissed: Int
    /// So far (ms).
    public var ttft: LatencySummary
    public var tpot: LatencySummary
    public var e2e: LatencySummary
}

/// Per-request latencies in seconds, derived from recorded instants.
public struct RequestTimings: Sendable, Equatable {
    /// First content chunk − start (nil when no content arrived).
    public var ttft: Double?
    /// (e2e − ttft) / (outputTokens − 1); nil with fewer than 2 tokens or no content.
    public var tpot: Double?
    /// Every gap between consecutive content chunks.
    public var itl: [Double]
    /// End − start.
    public var e2e: Double

    public init(ttft: Double?, tpot: Double?, itl: [Double], e2e: Double) {
        self.ttft = ttft
        self.tpot = tpot
        self.itl = itl
        self.e2e = e2e
    }

    /// The definitions above applied to one request's instants (seconds on any common clock).
    public static func compute(start: Double, contentTimes: [Double], end: Double, outputTokens: Int) -> RequestTimings {
        let e2e = end - start
        guard let first = contentTimes.first else { return RequestTimings(ttft: nil, tpot: nil, itl: [], e2e: e2e) }
        let ttft = first - start
        var itl: [Double] = []
        itl.reserveCapacity(Swift.max(0, contentTimes.count - 1))
        if contentTimes.count > 1 {
            for i in 1..<contentTimes.count { itl.append(contentTimes[i] - contentTimes[i - 1]) }
        }
        let tpot = outputTokens > 1 ? (e2e - ttft) / Double(outputTokens - 1) : nil
        return RequestTimings(ttft: ttft, tpot: tpot, itl: itl, e2e: e2e)
    }
}

/// A latency recorder: HdrHistogram in microseconds plus the exact sum and max.
struct LatencyRecorder: Sendable {
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                                      numberOfSignificantValueDigits: .three)
    var sum = 0.0
    var maximum = 0.0
    var count = 0

    init() { histogram.autoResize = true }

    mutating func record(seconds: Double) {
        guard seconds.isFinite else { return }
        let s = Swift.max(0, seconds)
        let us = UInt64(Swift.min(s * 1e6, 3.6e12).rounded())
        _ = histogram.record(Swift.max(1, us))
        sum += s
        maximum = Swift.max(maximum, s)
        count += 1
    }

    var summary: LatencySummary {
        guard count > 0 else { return LatencySummary() }
        // HdrHistogram answers a bucket's highest equivalent value (≤ 0.1 % above the true one):
        // clamp to the exact maximum so that p99 ≤ max always holds.
        func ms(_ p: Double) -> Double { Swift.min(Double(histogram.valueAtPercentile(p)) / 1000, maximum * 1000) }
        return LatencySummary(count: count, p50: ms(50), p90: ms(90), p95: ms(95), p99: ms(99),
                              mean: sum / Double(count) * 1000, max: maximum * 1000)
    }
}
