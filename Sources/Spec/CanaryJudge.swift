import Core
/// One set's requests during a canary analysis (counted since the analysis began).
public struct SetTally: Sendable, Equatable {
    /// Requests that ended, failed ones included.
    public var requests: Int
    public var failed: Int
    /// p95 time to first token, seconds (nil: none measured).
    public var ttftP95: Double?
    /// p95 time per output token, seconds (nil: none measured).
    public var tpotP95: Double?

    public init(requests: Int, failed: Int, ttftP95: Double?, tpotP95: Double?) {
        self.requests = requests
        self.failed = failed
        self.ttftP95 = ttftP95
        self.tpotP95 = tpotP95
    }
}

public enum CanaryVerdict: Sendable, Equatable {
    /// Keep going; the sentence says what the analysis waits for.
    case pending(String)
    /// The canary passed every check.
    case promote(String)
    /// The canary broke a limit; the sentence names it with the numbers.
    case rollback(String)
}

/// Pure verdicts on a canary from the stable and canary sets' tallies (the rollout loop calls it
/// each interval with `elapsed` = seconds since the canary took traffic).
public enum CanaryJudge {
    /// In order:
    /// 1. rollback at once when the canary's failures exceed `CanaryAnalysisSpec.failureBudget`
    ///    (whatever its request count or age, so a bad canary costs at most budget + 1 failed
    ///    requests instead of an analysis' worth);
    /// 2. pending until the canary has finished `minRequests` requests and run `durationSeconds`;
    /// 3. then rollback when its error rate is above `maxErrorRate`, or its p95 TTFT (TPOT) over
    ///    the stable set's is above `maxTTFTRatio` (`maxTPOTRatio`) — a ratio is checked only when
    ///    both sets measured it and the stable one is above 0;
    /// 4. else promote.
    public static func judge(_ a: CanaryAnalysisSpec, stable: SetTally, canary: SetTally, elapsed: Double) -> CanaryVerdict {
        let budget = a.failureBudget
        if canary.failed > budget {
            return .rollback("the canary failed \(canary.failed) of \(canary.requests) requests, over its failure budget of \(budget) (maxErrorRate \(percent(a.maxErrorRate)) of minRequests \(a.minRequests)\(budget == 0 ? "" : ", at least 1"))")
        }
        var waits: [String] = []
        if canary.requests < a.minRequests {
            waits.append("\(a.minRequests - canary.requests) more canary requests (\(canary.requests) of \(a.minRequests))")
        }
        if elapsed < a.durationSeconds {
            waits.append("\(shortDecimal(a.durationSeconds - elapsed)) s more (\(shortDecimal(max(0, elapsed))) of \(shortDecimal(a.durationSeconds)) s)")
        }
        if !waits.isEmpty {
            return .pending("waiting for " + waits.joined(separator: " and ")
                            + "; \(canary.failed) failed so far (budget \(budget))")
        }
        let rate = canary.requests > 0 ? Double(canary.failed) / Double(canary.requests) : 0
        if rate > a.maxErrorRate {
            return .rollback("the canary's error rate is \(percent(rate)) (\(canary.failed) of \(canary.requests) requests), above maxErrorRate \(percent(a.maxErrorRate))")
        }
        var passed = ["error rate \(percent(rate)) ≤ \(percent(a.maxErrorRate))"]
        let latencies: [(String, Double?, Double?, Double)] = [
            ("TTFT", canary.ttftP95, stable.ttftP95, a.maxTTFTRatio),
            ("TPOT", canary.tpotP95, stable.tpotP95, a.maxTPOTRatio),
        ]
        for (name, c, s, limit) in latencies {
            guard let c, let s, s > 0 else {
                let why = c == nil ? "the canary has no measurement" : s == nil ? "the stable set has no measurement" : "the stable set's is 0"
                passed.append("p95 \(name) not compared (\(why))")
                continue
            }
            let ratio = c / s
            if ratio > limit {
                return .rollback("the canary's p95 \(name) is \(seconds(c)) against the stable set's \(seconds(s)): \(shortDecimal(ratio))×, above max\(name)Ratio \(shortDecimal(limit))×")
            }
            passed.append("p95 \(name) \(shortDecimal(ratio))× stable ≤ \(shortDecimal(limit))×")
        }
        return .promote("the canary passed after \(canary.requests) requests in \(shortDecimal(elapsed)) s: " + passed.joined(separator: ", "))
    }

    static func percent(_ x: Double) -> String { "\(shortDecimal(x * 100))%" }
    static func seconds(_ x: Double) -> String { x < 1 ? "\(shortDecimal(x * 1000)) ms" : "\(shortDecimal(x)) s" }
}
