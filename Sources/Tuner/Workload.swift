import Foundation
import LoadGen
import Optimizer

/// The workloads a study measures every trial with, and what an objective means.
public enum Workload {
    /// The built-in workloads `--workload` names.
    public static let presetNames = ["chat", "code", "long-context"]

    /// A built-in workload's request template (url filled in per trial); nil for an unknown name.
    public static func preset(_ name: String) -> LoadSpec? {
        switch name {
        case "chat": return LoadSpec(url: "", requests: 24, promptTokens: .normal(mean: 128, sd: 32, min: 32, max: 256),
                                     maxTokens: .normal(mean: 96, sd: 24, min: 16, max: 160))
        case "code": return LoadSpec(url: "", requests: 16, promptTokens: .uniform(256, 512), maxTokens: .uniform(64, 192))
        case "long-context": return LoadSpec(url: "", requests: 8, promptTokens: .uniform(1024, 2048), maxTokens: .fixed(64))
        default: return nil
        }
    }

    /// The longest value a length distribution produces.
    public static func upperBound(_ d: LengthDist) -> Int {
        switch d {
        case .fixed(let n): return n
        case .uniform(_, let hi): return hi
        case .normal(_, _, _, let hi): return hi
        }
    }

    /// Positions one sequence of `w` may need: its longest prompt plus its longest output.
    public static func tokensPerSequence(_ w: LoadSpec) -> Int { upperBound(w.promptTokens) + upperBound(w.maxTokens) }
}

/// What `--objective` optimises: `throughput` (output tok/s), `goodput` (req/s within the SLOs),
/// `latency` (end-to-end at the SLO percentile), `memory` (peak RSS of the servers).
public enum Objectives {
    public static let all = ["throughput", "goodput", "latency", "memory"]

    public static func direction(_ objective: String) -> Direction {
        objective == "latency" || objective == "memory" ? .minimize : .maximize
    }

    public static func unit(_ objective: String) -> String {
        switch objective {
        case "throughput": return "tok/s"
        case "goodput": return "req/s"
        case "latency": return "ms"
        default: return "MiB"
        }
    }
}
