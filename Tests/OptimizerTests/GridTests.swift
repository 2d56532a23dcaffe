import Foundation
import Optimizer
import Testing

/// Discretised spaces, the exhaustive grid strategy, and the comparison on the fake
/// backend: on the same discretised space, Bayesian search gets within 5% of the grid's best with
/// at most a quarter of the grid's trials.
@Suite struct GridTests {
    @Test func discretisationSpreadsLevelsOverEachRange() throws {
        let space = try SearchSpace(knobs: [
            Knob("a", .int(1...100)),
            Knob("b", .logInt(16...2048)),
            Knob("c", .int(1...2)),
            Knob("d", .categorical(["x", "y"])),
        ])
        let d = try space.discretized(levels: 3)
        #expect(d.knobs[0].kind == .ordinal([1, 51, 100]))
        #expect(d.knobs[1].kind == .ordinal([16, 181, 2048]))  // 16·(2048/16)^½ = 181.02
        #expect(d.knobs[2].kind == .int(1...2))                // already within 3 values
        #expect(d.knobs[3].kind == .categorical(["x", "y"]))
        #expect(d.signature.contains("a:ord[1,51,100]"))
        // Encode/decode round-trips every grid point; values outside the list are rejected.
        let grid = try #require(d.grid())
        #expect(grid.count == 3 * 3 * 2 * 2)
        for c in grid {
            #expect(d.decode(d.encode(c)) == c)
            try d.validate(c)
        }
        #expect(throws: SearchSpaceError.self) { try d.validate(Config(["a": .int(50), "b": .int(16), "c": .int(1), "d": .category("x")])) }
        // Levels beyond a small range collapse the rounding duplicates.
        let small = try SearchSpace(knobs: [Knob("e", .logInt(1...4))]).discretized(levels: 3)
        #expect(small.knobs[0].kind == .ordinal([1, 2, 4]))
        #expect(throws: SearchSpaceError.self) { try SearchSpace(knobs: [Knob("f", .ordinal([3, 2]))]) }
    }

    @Test func gridVisitsEveryFeasibleConfigurationOnceAndResumes() async throws {
        let space = try FakeBackend.space().discretized(levels: 4)
        let grid = try #require(space.grid())
        let feasible = grid.filter { space.feasible($0) }
        var seen: [Config] = []
        let r = try await Optimizer.runGrid(space: space, direction: .maximize, options: OptimizerOptions(maxTrials: 1000)) { c in
            seen.append(c)
            return FakeBackend.evaluate(c)
        }
        #expect(r.stopReason == .exhausted)
        #expect(seen == feasible)
        #expect(r.trials.allSatisfy { $0.origin == .grid })
        let bestThroughput = feasible.filter { !FakeBackend.crashes($0) && FakeBackend.p95($0) <= FakeBackend.sloMs }
            .map(FakeBackend.throughput).max()
        #expect(r.best.map { FakeBackend.throughput($0.config) } == bestThroughput)
        // Resuming after 5 trials runs exactly the rest; a trial cap stops early.
        var rest: [Config] = []
        let resumed = try await Optimizer.runGrid(space: space, direction: .maximize, options: OptimizerOptions(maxTrials: 1000),
                                                  history: Array(r.trials.prefix(5))) { c in rest.append(c); return FakeBackend.evaluate(c) }
        #expect(rest == Array(feasible.dropFirst(5)))
        #expect(resumed.trials.count == feasible.count)
        let capped = try await Optimizer.runGrid(space: space, direction: .maximize, options: OptimizerOptions(maxTrials: 7)) { FakeBackend.evaluate($0) }
        #expect(capped.trials.count == 7 && capped.stopReason == .maxTrials)
    }

    @Test func continuousSpaceHasNoGrid() async throws {
        let space = try SearchSpace(knobs: [Knob("x", .real(0...1))])
        await #expect(throws: SearchSpaceError.self) {
            _ = try await Optimizer.runGrid(space: space, direction: .maximize, options: OptimizerOptions()) { _ in
                .measured(Measurement(objective: 1))
            }
        }
    }

    @Test func bayesReachesTheGridBestWithAQuarterOfItsTrials() async throws {
        let space = try FakeBackend.space().discretized(levels: 6)
        let grid = try #require(space.grid())
        let gridTrials = grid.filter { space.feasible($0) }.count
        let exhaustive = try await Optimizer.runGrid(space: space, direction: .maximize, options: OptimizerOptions(maxTrials: 10_000)) {
            FakeBackend.evaluate($0)
        }
        let gridBest = try #require(exhaustive.best?.result.measurement?.objective)
        let budget = gridTrials / 4
        let bayes = try await Optimizer.run(space: space, direction: .maximize, options: OptimizerOptions(seed: 1, maxTrials: budget)) {
            FakeBackend.evaluate($0)
        }
        let got = try #require(bayes.best?.result.measurement?.objective)
        #expect(bayes.trials.count <= gridTrials / 4)
        #expect(got >= 0.95 * gridBest, "bayes best \(got) after \(bayes.trials.count) trials vs grid best \(gridBest) after \(gridTrials)")
    }
}
