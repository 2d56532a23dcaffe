import Testing
@testable import Spec
import Fleet

private func tally(_ requests: Int, failed: Int = 0, ttft: Double? = nil, tpot: Double? = nil) -> SetTally {
    SetTally(requests: requests, failed: failed, ttftP95: ttft, tpotP95: tpot)
}

private func analysis(maxErrorRate: Double = 0.05, minRequests: Int = 20, duration: Double = 60) -> CanaryAnalysisSpec {
    var a = CanaryAnalysisSpec()
    a.maxErrorRate = maxErrorRate
    a.minRequests = minRequests
    a.durationSeconds = duration
    return a
}

/// Hermetic: tallies and elapsed seconds are plain values.
struct CanaryJudgeTests {
    @Test func defaultsAreTheDocumentedOnes() {
        let a = CanaryAnalysisSpec()
        #expect(a.maxErrorRate == 0.05 && a.maxTTFTRatio == 1.5 && a.maxTPOTRatio == 1.5)
        #expect(a.minRequests == 20 && a.durationSeconds == 60)
        #expect(a.failureBudget == 1)
    }

    @Test(arguments: [
        (0.05, 20, 1), (0.0, 20, 0), (0.01, 20, 1), (0.1, 100, 10), (0.29, 100, 29), (0.07, 100, 7), (1.0, 5, 5),
    ] as [(Double, Int, Int)])
    func failureBudget(_ c: (Double, Int, Int)) {
        #expect(analysis(maxErrorRate: c.0, minRequests: c.1).failureBudget == c.2, "\(c.0) × \(c.1)")
    }

    @Test(arguments: [
        (name: "waits for requests and time",
         a: analysis(), stable: tally(100, ttft: 0.2), canary: tally(5), elapsed: 10.0,
         verdict: CanaryVerdict.pending("waiting for 15 more canary requests (5 of 20) and 50 s more (10 of 60 s); 0 failed so far (budget 1)")),
        (name: "waits for time only",
         a: analysis(), stable: tally(100), canary: tally(30), elapsed: 45.0,
         verdict: .pending("waiting for 15 s more (45 of 60 s); 0 failed so far (budget 1)")),
        (name: "one failure is within the budget",
         a: analysis(), stable: tally(100), canary: tally(3, failed: 1), elapsed: 5.0,
         verdict: .pending("waiting for 17 more canary requests (3 of 20) and 55 s more (5 of 60 s); 1 failed so far (budget 1)")),
        (name: "over the budget rolls back at once",
         a: analysis(), stable: tally(100), canary: tally(3, failed: 2), elapsed: 5.0,
         verdict: .rollback("the canary failed 2 of 3 requests, over its failure budget of 1 (maxErrorRate 5% of minRequests 20, at least 1)")),
        (name: "maxErrorRate 0: the first failure rolls back",
         a: analysis(maxErrorRate: 0), stable: tally(100), canary: tally(1, failed: 1), elapsed: 1.0,
         verdict: .rollback("the canary failed 1 of 1 requests, over its failure budget of 0 (maxErrorRate 0% of minRequests 20)")),
        (name: "error rate above the limit after the analysis",
         a: analysis(maxErrorRate: 0.01), stable: tally(100), canary: tally(20, failed: 1), elapsed: 60.0,
         verdict: .rollback("the canary's error rate is 5% (1 of 20 requests), above maxErrorRate 1%")),
        (name: "TTFT ratio above the limit",
         a: analysis(), stable: tally(100, ttft: 0.2, tpot: 0.05), canary: tally(25, ttft: 0.5, tpot: 0.05), elapsed: 61.0,
         verdict: .rollback("the canary's p95 TTFT is 500 ms against the stable set's 200 ms: 2.5×, above maxTTFTRatio 1.5×")),
        (name: "TPOT ratio above the limit",
         a: analysis(), stable: tally(100, ttft: 0.2, tpot: 0.04), canary: tally(25, ttft: 0.2, tpot: 0.08), elapsed: 61.0,
         verdict: .rollback("the canary's p95 TPOT is 80 ms against the stable set's 40 ms: 2×, above maxTPOTRatio 1.5×")),
        (name: "ratios at the limit pass",
         a: analysis(), stable: tally(100, ttft: 0.2, tpot: 0.04), canary: tally(40, failed: 1, ttft: 0.3, tpot: 0.06), elapsed: 60.0,
         verdict: .promote("the canary passed after 40 requests in 60 s: error rate 2.5% ≤ 5%, p95 TTFT 1.5× stable ≤ 1.5×, p95 TPOT 1.5× stable ≤ 1.5×")),
        (name: "a ratio is compared only when both sides have it",
         a: analysis(), stable: tally(100, tpot: 0.04), canary: tally(20, ttft: 9, tpot: nil), elapsed: 90.0,
         verdict: .promote("the canary passed after 20 requests in 90 s: error rate 0% ≤ 5%, p95 TTFT not compared (the stable set has no measurement), p95 TPOT not compared (the canary has no measurement)")),
    ] as [(name: String, a: CanaryAnalysisSpec, stable: SetTally, canary: SetTally, elapsed: Double, verdict: CanaryVerdict)])
    func verdicts(_ c: (name: String, a: CanaryAnalysisSpec, stable: SetTally, canary: SetTally, elapsed: Double, verdict: CanaryVerdict)) {
        #expect(CanaryJudge.judge(c.a, stable: c.stable, canary: c.canary, elapsed: c.elapsed) == c.verdict, "\(c.name)")
    }

    /// A canary that fails every request is rolled back at its (budget + 1)-th failure, long
    /// before the minRequests a full analysis would cost.
    @Test(arguments: [(0.05, 20), (0.1, 50), (0.0, 20)] as [(Double, Int)])
    func aFailingCanaryCostsAtMostItsBudgetPlusOne(_ c: (Double, Int)) {
        let a = analysis(maxErrorRate: c.0, minRequests: c.1)
        var failures = 0
        var verdict = CanaryVerdict.pending("")
        while case .pending = verdict, failures < 1000 {
            failures += 1
            verdict = CanaryJudge.judge(a, stable: tally(100), canary: tally(failures, failed: failures),
                                        elapsed: Double(failures))
        }
        #expect(failures == a.failureBudget + 1)
        #expect(failures < a.minRequests)
        if case .rollback = verdict {} else { Issue.record("expected a rollback, got \(verdict)") }
    }
}
