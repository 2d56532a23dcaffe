import Backends
import Foundation
import LoadGen
import Server
import Spec
import Synchronization
import Testing
@testable import Fleet

/// Scaling and canary releases with real replica processes (the fault-injecting fake backend)
/// behind the real gateway.
@Suite(.serialized) struct FleetControlTests {
    @Test func stepLoadScalesOutAndIdleScalesBackIn() async throws {
        var a = AutoscalingSpec()
        a.enabled = true
        a.minReplicas = 1
        a.maxReplicas = 3
        a.intervalSeconds = 0.25
        a.rules = [
            // Acts on the first sample that sees the queue (the `for` window is tested on a fake
            // clock in AutoscalerTests; here the machine's load decides how samples fall).
            ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: 2, forSeconds: 0,
                        change: 1, cooldownSeconds: 2, priority: 10),
            ScalingRule(name: "idle", metric: .inflightPerReplica, comparison: .below, threshold: 0.5, forSeconds: 2,
                        change: -1, cooldownSeconds: 1),
        ]
        let spec = a
        let seen = Peak()
        // Each request streams 200 tokens 50 ms apart (10 s, longer on a loaded machine); a
        // replica decodes 2 at once (slots), so 8 requests held together keep 6 waiting for as
        // long as they run — no gaps between requests for the samples to fall into.
        let t = FakeFleet.template(version: "v1", ["--tokens", "200", "--token-ms", "50"], slots: 2)
        try await FakeFleet.with(t, replicas: 1) { url, fleet in
            let samples = Samples()
            let scaler = Task { await FleetControl.autoscale(fleet, spec: spec) { s, d in samples.add(s, d) } }
            defer { scaler.cancel() }
            let watch = Task {
                while !Task.isCancelled {
                    seen.note(fleet.stableCount)
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { watch.cancel() }
            // Step: 8 clients at once.
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 8), requests: 8,
                                                   maxTokens: .fixed(200), timeoutSeconds: 600))
            #expect(r.failed == 0)
            #expect(seen.value >= 2, "the queue rule never scaled out; samples: \(samples.text)")
            // Idle: back to the minimum.
            try await FakeFleet.waitUntil(timeout: 60) { fleet.stableCount == 1 && fleet.pool.members.count == 1 }
            let events = fleet.status()["last_scale_event"]?.string ?? ""
            #expect(events.contains("idle"), "\(events)")
        }
    }

    static func analysis(minRequests: Int, seconds: Double) -> CanaryAnalysisSpec {
        var a = CanaryAnalysisSpec()
        a.maxErrorRate = 0.05
        a.minRequests = minRequests
        a.durationSeconds = seconds
        return a
    }

    @Test func aFailingCanaryIsRolledBackWithinItsBudget() async throws {
        let stable = FakeFleet.template(version: "v1", ["--tokens", "4", "--token-ms", "5"])
        try await FakeFleet.with(stable, replicas: 2) { url, fleet in
            let a = Self.analysis(minRequests: 40, seconds: 2)
            let load = Task {
                try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 2), requests: 300,
                                               maxTokens: .fixed(4), timeoutSeconds: 600))
            }
            let bad = FakeFleet.template(version: "v2", ["--tokens", "4", "--token-ms", "5", "--error-rate", "0.3"])
            let outcome = await FleetControl.canary(fleet, to: bad, percent: 50, analysis: a, deadline: 60)
            let r = try await load.value
            guard case .rolledBack(let why) = outcome else { Issue.record("expected a rollback, got \(outcome)"); return }
            #expect(why.contains("failure budget"))
            // The client saw the canary's failures up to the budget (2), the one that crossed it,
            // and at most one more per client in flight when it was cut: far fewer than the
            // 30% × 40 = 12 a full analysis would have cost.
            #expect(r.failed >= a.failureBudget + 1 && r.failed <= a.failureBudget + 1 + 2, "\(r.errors)")
            #expect(Set(r.errors.keys) == ["http_5xx"])
            #expect(fleet.pool.members.map(\.version) == ["v1", "v1"])
            #expect(fleet.template.version == "v1")
            #expect(fleet.lastRollout?.contains("rolled back") == true)
        }
    }

    @Test func aSlowCanaryIsRolledBackOnTTFT() async throws {
        let stable = FakeFleet.template(version: "v1", ["--tokens", "4", "--token-ms", "20"])
        try await FakeFleet.with(stable, replicas: 1) { url, fleet in
            let load = Task {
                try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 2), requests: 200,
                                               maxTokens: .fixed(4), timeoutSeconds: 600))
            }
            let slow = FakeFleet.template(version: "v2", ["--tokens", "4", "--token-ms", "20", "--slow", "10"])
            let outcome = await FleetControl.canary(fleet, to: slow, percent: 50, analysis: Self.analysis(minRequests: 20, seconds: 1), deadline: 60)
            let r = try await load.value
            guard case .rolledBack(let why) = outcome else { Issue.record("expected a rollback, got \(outcome)"); return }
            #expect(why.contains("TTFT"), "\(why)")
            #expect(r.failed == 0)
            #expect(fleet.pool.members.map(\.version) == ["v1"])
        }
    }

    @Test func aHealthyCanaryIsPromoted() async throws {
        let stable = FakeFleet.template(version: "v1", ["--tokens", "4", "--token-ms", "5"])
        try await FakeFleet.with(stable, replicas: 2) { url, fleet in
            let load = Task {
                try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 4), requests: 400,
                                               maxTokens: .fixed(4), timeoutSeconds: 600))
            }
            let good = FakeFleet.template(version: "v2", ["--tokens", "4", "--token-ms", "5"])
            var a = Self.analysis(minRequests: 20, seconds: 1)
            a.maxTTFTRatio = 10   // a loaded 2-core box makes TTFT noisy; the error checks still apply
            a.maxTPOTRatio = 10
            let outcome = await FleetControl.canary(fleet, to: good, percent: 50, analysis: a, deadline: 60)
            let r = try await load.value
            guard case .promoted = outcome else { Issue.record("expected a promotion, got \(outcome)"); return }
            #expect(r.failed == 0, "\(r.errors)")
            #expect(fleet.pool.members.map(\.version) == ["v2", "v2"])
            #expect(fleet.pool.members.allSatisfy { !$0.canary })
            #expect(fleet.template.version == "v2")
        }
    }
}

/// The largest value seen.
final class Peak: Sendable {
    let m = Mutex(0)
    func note(_ v: Int) { m.withLock { $0 = max($0, v) } }
    var value: Int { m.withLock { $0 } }
}

/// The autoscaler's samples, for failure messages.
final class Samples: Sendable {
    let m = Mutex<[String]>([])
    func add(_ s: FleetSample, _ d: ScaleDecision?) {
        m.withLock { $0.append("t=\(Int(s.time * 1000))ms r=\(s.replicas) ready=\(s.ready) in=\(s.inFlight) wait=\(s.waiting)\(d.map { " → \($0.to)" } ?? "")") }
    }
    var text: String { m.withLock { $0.suffix(40).joined(separator: "; ") } }
}
