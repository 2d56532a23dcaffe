import Core
import Engine
import Testing
@testable import Server

/// `MetricNames` is the list the deploy renderer's alerts and dashboard are checked against, so
/// every name in it must really be on `/metrics`.
@Suite struct MetricNamesTests {
    @Test func everyListedSeriesIsEmitted() {
        let m = ServerMetrics(modelName: "m")
        let text = m.render(running: 1, waiting: 2, kvUsage: 0.5)
        var emitted = Set<String>()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let name = line.prefix { $0 != "{" && $0 != " " }
            emitted.insert(String(name))
        }
        for name in MetricNames.seriesNames.sorted() {
            #expect(emitted.contains(name), "\(name) is listed in MetricNames but not on /metrics")
        }
        // And the other way round: nothing on /metrics is missing from the list.
        #expect(emitted.subtracting(MetricNames.seriesNames).isEmpty, "\(emitted.subtracting(MetricNames.seriesNames).sorted())")
        #expect(text.contains("\(MetricNames.timeToFirstToken)_bucket{model_name=\"m\",le=\"0.5\"}") || text.contains("\(MetricNames.timeToFirstToken)_bucket{le=\"0.5\",model_name=\"m\"}"), "TTFT has a 0.5 s bucket: \(text.prefix(400))")
    }

    /// Speculative decoding's counters (vLLM's names) add up each finished sequence's drafted and
    /// accepted tokens.
    @Test func speculativeCountersAddUpCompletions() {
        let m = ServerMetrics(modelName: "m")
        let now = ContinuousClock.now
        for (drafted, accepted) in [(7, 5), (0, 0), (4, 1)] {
            m.record(SequenceCompletion(reason: .stop, text: "", promptTokens: 3, completionTokens: 9,
                                        timings: SequenceTimings(queued: now, scheduled: now, firstToken: now, finished: now),
                                        draftTokens: drafted, acceptedDraftTokens: accepted), tokenTimes: [])
        }
        let text = m.render(running: 0, waiting: 0, kvUsage: nil)
        #expect(text.contains("\(MetricNames.specDraftTokens){model_name=\"m\"} 11"), "\(text)")
        #expect(text.contains("\(MetricNames.specAcceptedTokens){model_name=\"m\"} 6"), "\(text)")
    }
}
