import Backends
import Foundation
import GRDB
import Optimizer
import Registry
import Testing
import Tuner

/// A registry in a fresh temporary home.
func temporaryRegistry() throws -> (Registry, String) {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-tuner-\(getpid())-\(UUID().uuidString)").path
    return (try Registry(home: home), home)
}

@Suite struct TunerTests {
    static let model = StudyModel(path: "/m.gguf", digest: "file:abc")

    @Test func trialStoreKeepsTrialsAcrossReopenAndClears() throws {
        let (registry, home) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let store = try TrialStore(registry: registry, study: "s1", model: Self.model, description: "{}")
        let a = Trial(index: 0, config: Config(["threads": .int(2)]), result: .feasible(Measurement(objective: 3, metrics: ["x": 1])),
                      origin: .initial, seconds: 1.5)
        let b = Trial(index: 1, config: Config(["threads": .int(1)]),
                      result: .infeasible(reason: .timeout, detail: "slow", measurement: nil), origin: .bayes, seconds: 2)
        try store.save(b)
        try store.save(a)
        let again = try TrialStore(registry: try Registry(home: home), study: "s1", model: Self.model, description: "{\"other\":1}")
        #expect(try again.trials() == [a, b])
        try again.clear()
        #expect(try again.trials().isEmpty)
    }

    /// A finished study of `backend` whose trials measure `objectives` (nil: infeasible).
    static func study(_ backend: any ServingBackend, _ objectives: [Double?], direction: Direction) async throws -> BackendStudy {
        let space = try SearchSpace(knobs: [Knob("i", .ordinal(Array(0..<objectives.count)))])
        let result = try await Optimizer.runGrid(space: space, direction: direction,
                                                 options: OptimizerOptions(maxTrials: objectives.count)) { c in
            guard let o = objectives[c.int("i") ?? 0] else { return .infeasible(reason: .slo, detail: "no", measurement: nil) }
            return .feasible(Measurement(objective: o))
        }
        return BackendStudy(backend: backend, id: backend.name, space: space, result: result)
    }

    @Test func theWinnerIsTheBestFeasibleTrialOfAnyBackend() async throws {
        let a = UpstreamBackend(url: "http://a:1", apiKey: nil), b = UpstreamBackend(url: "http://b:1", apiKey: nil)
        let up = [try await Self.study(a, [3, 9, nil], direction: .maximize), try await Self.study(b, [7, 8], direction: .maximize)]
        let w = try #require(Tuning.winner(up, direction: .maximize))
        #expect((w.study.backend as? UpstreamBackend)?.url == "http://a:1" && w.trial.result.measurement?.objective == 9)
        let down = [try await Self.study(a, [3, 9], direction: .minimize), try await Self.study(b, [2, nil], direction: .minimize)]
        let v = try #require(Tuning.winner(down, direction: .minimize))
        #expect((v.study.backend as? UpstreamBackend)?.url == "http://b:1" && v.trial.result.measurement?.objective == 2)
        #expect(Tuning.winner([try await Self.study(a, [nil], direction: .maximize)], direction: .maximize)?.trial == nil)
    }

    /// A trial the database refuses is an error that stops the study, naming the database and the
    /// fix; it is never dropped.
    @Test func aTrialThatCannotBeStoredStopsTheStudyWithTheFix() async throws {
        let (registry, home) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let store = try TrialStore(registry: registry, study: "s1", model: Self.model, description: "{}")
        // From now on the database refuses trial rows, as a read-only or full database would (a
        // trigger, because file modes do not stop root).
        let db = try DatabaseQueue(path: registry.databasePath)
        try await db.write { try $0.execute(sql: """
            CREATE TRIGGER refuse_trials BEFORE INSERT ON tuning_trials
            BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END
            """) }
        let space = try SearchSpace(knobs: [Knob("i", .ordinal([0, 1, 2, 3]))])
        var evaluated = 0
        do {
            _ = try await Tuning.runTrials(space: space, strategy: "grid", direction: .maximize, options: OptimizerOptions(maxTrials: 4),
                                           history: [], store: store, backend: "native", unit: "tok/s",
                                           evaluate: { _ in evaluated += 1; return .feasible(Measurement(objective: 1)) },
                                           log: { _ in })
            Issue.record("the study went on although its trial was not stored")
        } catch let e as TunerError {
            guard case .trialNotStored(let database, let study, let trial, let reason) = e else {
                Issue.record("unexpected error \(e)")
                return
            }
            #expect(database == registry.databasePath && study == "s1" && trial == 0)
            #expect(reason.contains("readonly"), "\(reason)")
            #expect(e.description.contains(registry.databasePath))
            #expect(e.description.contains("writable") && e.description.contains("--resume"), "\(e.description)")
        }
        #expect(evaluated == 1, "no trial runs after the one that could not be stored")
        #expect(try store.trials().isEmpty)
    }
}
