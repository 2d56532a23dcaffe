import Foundation

public enum Direction: String, Sendable, Codable {
    case minimize, maximize
}

/// What a trial measured. `slack` is the constraint margin: ≤ 0 when every SLO holds (e.g. the
/// largest log(pXX / limit) over the SLOs); nil when the study has no constraint.
public struct Measurement: Sendable, Codable, Equatable {
    public var objective: Double
    public var slack: Double?
    public var metrics: [String: Double]
    public init(objective: Double, slack: Double? = nil, metrics: [String: Double] = [:]) {
        self.objective = objective; self.slack = slack; self.metrics = metrics
    }
}

public enum InfeasibleReason: String, Sendable, Codable, Equatable {
    /// The process exited or the backend could not start.
    case crash
    /// Out of memory (killed by the kernel, or allocation failed).
    case oom
    /// Did not become ready or did not finish in time.
    case timeout
    /// Ran, but violated a service-level objective.
    case slo
}

/// Outcome of one trial. Infeasible trials still inform the constraint model.
public enum TrialResult: Sendable, Codable, Equatable {
    case feasible(Measurement)
    case infeasible(reason: InfeasibleReason, detail: String, measurement: Measurement?)

    public var measurement: Measurement? {
        switch self {
        case .feasible(let m): return m
        case .infeasible(_, _, let m): return m
        }
    }
    public var isFeasible: Bool { if case .feasible = self { return true }; return false }
    public var reason: InfeasibleReason? { if case .infeasible(let r, _, _) = self { return r }; return nil }

    /// Classifies a measurement by its slack: feasible when slack ≤ 0 (or absent).
    public static func measured(_ m: Measurement, sloDetail: String = "SLO violated") -> TrialResult {
        if let s = m.slack, s > 0 { return .infeasible(reason: .slo, detail: sloDetail, measurement: m) }
        return .feasible(m)
    }
}

public enum TrialOrigin: String, Sendable, Codable {
    case initial, bayes, random
    /// Exhaustive grid (`Optimizer.runGrid`).
    case grid
}

public struct Trial: Sendable, Codable, Equatable {
    public var index: Int
    public var config: Config
    public var result: TrialResult
    public var origin: TrialOrigin
    public var seconds: Double
    public init(index: Int, config: Config, result: TrialResult, origin: TrialOrigin, seconds: Double = 0) {
        self.index = index; self.config = config; self.result = result; self.origin = origin; self.seconds = seconds
    }
}

/// Stops a trial early once its latency SLO can no longer be met (or is clearly missed).
public struct EarlyStop: Sendable, Equatable {
    /// The latency limit (ms) and the percentile it applies to (e.g. 95).
    public var limit: Double
    public var percentile: Double
    /// Heuristic: after `minSamples`, stop when the running percentile exceeds limit × factor.
    public var factor: Double
    public var minSamples: Int
    public init(limit: Double, percentile: Double, factor: Double = 2, minSamples: Int = 8) {
        self.limit = limit; self.percentile = percentile; self.factor = factor; self.minSamples = minSamples
    }

    /// True when more than (1 − p) of the planned total already exceed the limit, so the final
    /// p-th percentile must exceed it whatever the remaining samples are.
    public func certainlyViolated(_ samples: [Double], plannedTotal: Int) -> Bool {
        let over = samples.reduce(0) { $0 + ($1 > limit ? 1 : 0) }
        // Nearest rank: the p-th percentile of N is the ⌈pN/100⌉-th smallest, so it exceeds the
        // limit as soon as more than N − ⌈pN/100⌉ samples do.
        let rank = Int((percentile / 100 * Double(plannedTotal) - 1e-9).rounded(.up))
        return over > plannedTotal - rank
    }

    /// `certainlyViolated`, or the running percentile (nearest rank) above limit × factor once
    /// `minSamples` are in.
    public func shouldStop(_ samples: [Double], plannedTotal: Int) -> Bool {
        if certainlyViolated(samples, plannedTotal: plannedTotal) { return true }
        guard samples.count >= minSamples else { return false }
        let sorted = samples.sorted()
        let rank = Int((percentile / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)] > limit * factor
    }
}

/// Identity of a study: the same model, space, workload and objective resume the same trials.
public func studyID(modelDigest: String, space: SearchSpace, workload: String, objective: String) -> String {
    stableHash([modelDigest, space.signature, workload, objective].joined(separator: "\n"))
}
