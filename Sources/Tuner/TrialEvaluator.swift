import Backends
import Foundation
import LoadGen
import Optimizer

/// Runs one trial: launch, load at each level, stop, classify.
public struct TrialEvaluator: Sendable {
    let backend: any ServingBackend
    let template: LoadSpec
    let levels: [LoadShape]
    let slo: [(String, Double)]
    let percentile: Int
    let objective: String
    let startupTimeout: Double

    func pick(_ s: LatencySummary) -> Double { percentile == 99 ? s.p99 : s.p95 }

    public init(backend: any ServingBackend, template: LoadSpec, levels: [LoadShape], slo: [(String, Double)],
                percentile: Int, objective: String, startupTimeout: Double) {
        self.backend = backend; self.template = template; self.levels = levels; self.slo = slo
        self.percentile = percentile; self.objective = objective; self.startupTimeout = startupTimeout
    }

    public func evaluate(_ config: Config) async -> TrialResult {
        let handle: TrialHandle
        do { handle = try await backend.launch(config, startupTimeout: startupTimeout) } catch {
            return .infeasible(reason: error.reason, detail: error.detail, measurement: nil)
        }
        var reports: [LoadReport] = []
        let sloSpec = slo.isEmpty ? nil : SLO(ttftMs: slo.first { $0.0 == "ttft" }?.1, tpotMs: slo.first { $0.0 == "tpot" }?.1,
                                              e2eMs: slo.first { $0.0 == "e2e" }?.1)
        let limits = slo
        let pct = percentile
        for level in levels {
            var spec = template
            spec.url = handle.baseURLs.first ?? ""
            spec.replicaURLs = Array(handle.baseURLs.dropFirst())
            spec.model = handle.modelName
            if handle.apiKey != nil { spec.apiKey = handle.apiKey }
            // Every replica gets its warm-up requests.
            spec.warmupRequests = template.warmupRequests * max(handle.baseURLs.count, 1)
            spec.load = level
            spec.slo = sloSpec
            // Early stop: once 8 requests are in, a running percentile above twice a limit will not recover.
            if !limits.isEmpty {
                spec.abortWhen = { st in
                    guard st.completed >= 8 else { return false }
                    for (name, limit) in limits {
                        let s = name == "ttft" ? st.ttft : name == "tpot" ? st.tpot : st.e2e
                        if (pct == 99 ? s.p99 : s.p95) > 2 * limit { return true }
                    }
                    return false
                }
            }
            do { reports.append(try await LoadGen.run(spec)) } catch {
                _ = await backend.stop(handle)
                return .infeasible(reason: .crash, detail: "load generator: \(error)", measurement: nil)
            }
            if let why = await backend.exited(handle) {
                _ = await backend.stop(handle)
                return .infeasible(reason: why.oom ? .oom : .crash, detail: "server exited during the load run (\(why.text))", measurement: nil)
            }
        }
        let peak = await backend.stop(handle)
        guard let last = reports.last, last.completed > 0 else {
            let errs = reports.last?.errors.map { "\($0.key) \($0.value)" }.joined(separator: ", ") ?? "no report"
            let timedOut = (reports.last?.errors[LoadGen.ErrorKind.timeout] ?? 0) > 0
            return .infeasible(reason: timedOut ? .timeout : .crash, detail: "no request completed (\(errs))", measurement: nil)
        }
        var metrics: [String: Double] = [
            "ttft_p50_ms": last.ttft.p50, "ttft_p95_ms": last.ttft.p95, "ttft_p99_ms": last.ttft.p99,
            "tpot_p50_ms": last.tpot.p50, "tpot_p95_ms": last.tpot.p95, "tpot_p99_ms": last.tpot.p99,
            "itl_p95_ms": last.itl.p95, "itl_p99_ms": last.itl.p99,
            "e2e_p50_ms": last.e2e.p50, "e2e_p95_ms": last.e2e.p95, "e2e_p99_ms": last.e2e.p99,
            "output_tokens_per_s": last.outputTokensPerSecond, "requests_per_s": last.requestsPerSecond,
            "completed": Double(last.completed), "failed": Double(last.failed),
        ]
        if let g = last.goodput { metrics["goodput"] = g }
        if let p = peak { metrics["peak_rss_mb"] = Double(p) / 1_048_576 }
        var slack: Double?
        var worst = ""
        for r in reports {
            for (name, limit) in slo {
                let s = name == "ttft" ? r.ttft : name == "tpot" ? r.tpot : r.e2e
                let v = pick(s)
                let sl = Foundation.log(max(v, 1e-6) / limit)
                if sl > (slack ?? -Double.infinity) {
                    slack = sl
                    worst = String(format: "%@ p%d %.1f ms vs %.1f ms", name as NSString, percentile, v, limit)
                }
            }
        }
        if let s = slack { metrics["slack"] = s }
        let value: Double
        switch objective {
        case "throughput": value = last.outputTokensPerSecond
        case "goodput": value = last.goodput ?? 0
        case "latency": value = pick(last.e2e)
        default: value = metrics["peak_rss_mb"] ?? 0
        }
        let m = Measurement(objective: value, slack: slack, metrics: metrics)
        let failedShare = Double(last.failed) / Double(max(last.completed + last.failed, 1))
        if failedShare > 0.25 {
            let timedOut = (last.errors[LoadGen.ErrorKind.timeout] ?? 0) > 0
            return .infeasible(reason: timedOut ? .timeout : .crash,
                               detail: "\(last.failed) of \(last.completed + last.failed) requests failed: \(last.errors)", measurement: m)
        }
        if reports.contains(where: \.aborted) {
            return .infeasible(reason: .slo, detail: "stopped early: \(worst)", measurement: m)
        }
        return .measured(m, sloDetail: worst)
    }
}

