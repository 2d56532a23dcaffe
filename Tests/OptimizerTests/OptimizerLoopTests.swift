import Foundation
import Optimizer
import Testing

/// Branin–Hoo on x₁ ∈ [−5, 10], x₂ ∈ [0, 15]; global minimum 0.397887 at (−π, 12.275), (π, 2.275),
/// (9.42478, 2.475).
func branin(_ x1: Double, _ x2: Double) -> Double {
    let a = 1.0, b = 5.1 / (4 * Double.pi * Double.pi), c = 5 / Double.pi, r = 6.0, s = 10.0, t = 1 / (8 * Double.pi)
    return a * pow(x2 - b * x1 * x1 + c * x1 - r, 2) + s * (1 - t) * cos(x1) + s
}
let braninMinimum = 0.397887

func braninSpace() throws -> SearchSpace {
    try SearchSpace(knobs: [Knob("x1", .real(-5...10)), Knob("x2", .real(0...15))])
}

@Suite struct OptimizerLoopTests {
    func runBranin(seed: UInt64, trials: Int, constrained: Bool) async throws -> StudyResult {
        try await Optimizer.run(space: try braninSpace(), direction: .minimize,
                                options: OptimizerOptions(seed: seed, maxTrials: trials)) { c in
            let x1 = c.double("x1") ?? .nan, x2 = c.double("x2") ?? .nan
            let f = branin(x1, x2)
            guard constrained else { return .feasible(Measurement(objective: f)) }
            // Disc constraint (x₁ − 2.5)² + (x₂ − 7.5)² ≤ 50: of the three minima only (π, 2.275) is inside.
            let slack = (pow(x1 - 2.5, 2) + pow(x2 - 7.5, 2)) / 50 - 1
            return .measured(Measurement(objective: f, slack: slack))
        }
    }

    @Test func findsBraninMinimumWithin40Evaluations() async throws {
        let r = try await runBranin(seed: 1, trials: 40, constrained: false)
        #expect(r.trials.count == 40)
        let best = try #require(r.best?.result.measurement?.objective)
        #expect(abs(best - braninMinimum) < 1e-2, "best \(best)")
    }

    @Test func sameSeedSameProposals() async throws {
        let a = try await runBranin(seed: 5, trials: 12, constrained: true)
        let b = try await runBranin(seed: 5, trials: 12, constrained: true)
        let c = try await runBranin(seed: 6, trials: 12, constrained: true)
        #expect(a.trials.map(\.config) == b.trials.map(\.config))
        #expect(a.trials.map(\.config) != c.trials.map(\.config))
    }

    @Test func constrainedBraninFindsTheFeasibleMinimum() async throws {
        let r = try await runBranin(seed: 2, trials: 40, constrained: true)
        let best = try #require(r.best)
        let x1 = try #require(best.config.double("x1")), x2 = try #require(best.config.double("x2"))
        #expect(pow(x1 - 2.5, 2) + pow(x2 - 7.5, 2) <= 50)
        let f = branin(x1, x2)
        #expect(abs(f - braninMinimum) < 1e-2, "best \(f) at (\(x1), \(x2))")
        #expect(abs(x1 - Double.pi) < 0.2 && abs(x2 - 2.275) < 0.3)
        // Infeasible trials were proposed and recorded, not dropped.
        #expect(r.trials.contains { $0.result.reason == .slo })
    }

    @Test func resumeContinuesLikeAnUninterruptedRun() async throws {
        let full = try await runBranin(seed: 11, trials: 10, constrained: true)
        let space = try braninSpace()
        let resumed = try await Optimizer.run(space: space, direction: .minimize,
                                              options: OptimizerOptions(seed: 11, maxTrials: 10),
                                              history: Array(full.trials.prefix(6))) { c in
            let x1 = c.double("x1") ?? .nan, x2 = c.double("x2") ?? .nan
            return .measured(Measurement(objective: branin(x1, x2), slack: (pow(x1 - 2.5, 2) + pow(x2 - 7.5, 2)) / 50 - 1))
        }
        #expect(resumed.trials.map(\.config) == full.trials.map(\.config))
    }
}

/// A fake serving backend whose throughput and p95 latency are known functions of its knobs;
/// configs whose KV cache exceeds memory crash.
struct FakeBackend {
    static let cores = 8
    static let sloMs = 120.0

    static func space() throws -> SearchSpace {
        try SearchSpace(knobs: [
            Knob("threads", .int(1...16)),
            Knob("maxSeqs", .logInt(1...64)),
            Knob("kvType", .categorical(["f16", "q8_0"])),
        ], constraints: [SpaceConstraint("threads ≤ cores") { ($0.int("threads") ?? 99) <= cores }])
    }

    /// Tokens/s grows with threads (sub-linearly) and with batch (saturating); q8 KV is 10% slower.
    static func throughput(_ c: Config) -> Double {
        let t = Double(c.int("threads") ?? 1), s = Double(c.int("maxSeqs") ?? 1)
        let kv = c.string("kvType") == "q8_0" ? 0.9 : 1.0
        return 20 * pow(t, 0.8) * (s / (s + 6)) * 10 * kv
    }
    /// p95 latency rises with batch, falls with threads.
    static func p95(_ c: Config) -> Double {
        let t = Double(c.int("threads") ?? 1), s = Double(c.int("maxSeqs") ?? 1)
        return 40 + 300 * s / (t * 16)
    }
    /// f16 KV for more than 24 sequences does not fit in memory.
    static func crashes(_ c: Config) -> Bool { c.string("kvType") == "f16" && (c.int("maxSeqs") ?? 0) > 24 }

    static func evaluate(_ c: Config) -> TrialResult {
        if crashes(c) { return .infeasible(reason: .oom, detail: "killed: out of memory", measurement: nil) }
        let p = p95(c)
        return .measured(Measurement(objective: throughput(c), slack: log(p / sloMs), metrics: ["p95_ms": p]))
    }
}

@Suite struct FakeBackendLoopTests {
    @Test func optimiserFindsTheBestFeasibleServingConfig() async throws {
        let space = try FakeBackend.space()
        // Oracle: exhaustive enumeration of the discrete space.
        let grid = try #require(space.grid())
        let feasible = grid.filter { space.feasible($0) && !FakeBackend.crashes($0) && FakeBackend.p95($0) <= FakeBackend.sloMs }
        let trueBest = try #require(feasible.map(FakeBackend.throughput).max())
        let totalFeasible = grid.filter { space.feasible($0) }.count

        var proposals: [Config] = []
        let r = try await Optimizer.run(space: space, direction: .maximize,
                                        options: OptimizerOptions(seed: 3, maxTrials: 30)) { c in
            proposals.append(c)
            return FakeBackend.evaluate(c)
        }
        #expect(r.trials.count == 30)
        #expect(30 * 4 < totalFeasible, "the budget is a small share of the space (\(totalFeasible) configs)")
        // Machine constraints: no infeasible config was ever launched.
        #expect(proposals.allSatisfy { ($0.int("threads") ?? 99) <= FakeBackend.cores })
        #expect(Set(proposals).count == proposals.count, "no config tried twice")
        let best = try #require(r.best)
        #expect(best.result.isFeasible)
        #expect(FakeBackend.p95(best.config) <= FakeBackend.sloMs)
        #expect(!FakeBackend.crashes(best.config))
        let got = FakeBackend.throughput(best.config)
        #expect(got >= 0.95 * trueBest, "best \(got) vs oracle \(trueBest)")
        // The loop went on after crashes and SLO violations.
        #expect(r.trials.contains { $0.result.reason == .oom } || r.trials.contains { $0.result.reason == .slo })
    }

    @Test func progressReportsEveryTrial() async throws {
        let space = try FakeBackend.space()
        final class Box: @unchecked Sendable { var seen: [Int] = [] }
        let box = Box()
        _ = try await Optimizer.run(space: space, direction: .maximize, options: OptimizerOptions(seed: 1, maxTrials: 6),
                                    evaluate: { FakeBackend.evaluate($0) },
                                    progress: { box.seen.append($0.completed) })
        #expect(box.seen == [1, 2, 3, 4, 5, 6])
    }

    @Test func anErrorFromProgressStopsTheStudy() async throws {
        struct NotStored: Error {}
        let space = try FakeBackend.space()
        var evaluated = 0
        do {
            _ = try await Optimizer.run(space: space, direction: .maximize, options: OptimizerOptions(seed: 1, maxTrials: 6),
                                        evaluate: { evaluated += 1; return FakeBackend.evaluate($0) },
                                        progress: { if $0.completed == 2 { throw NotStored() } })
            Issue.record("the study went on after its progress callback failed")
        } catch {
            #expect(error is NotStored)
        }
        #expect(evaluated == 2, "no trial runs after the one whose progress failed")
    }
}
