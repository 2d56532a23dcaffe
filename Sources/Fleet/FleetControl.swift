import Core
import Foundation
import Server
import Spec

/// The fleet's decisions over time: the autoscaler's loop and canary rollouts. Each runs in one
/// task; what they change goes through `FleetRouter` (replicas) and `ReplicaPool` (traffic).
public enum FleetControl {
    /// Samples the pool every `spec.intervalSeconds`, asks the `Autoscaler`, applies its decision
    /// (logged with its reason, counted in `autoglm:fleet_scale_events_total{reason}`), until the
    /// fleet stops.
    /// `onSample` sees every sample and the decision it led to (tests, diagnostics).
    public static func autoscale(_ fleet: FleetRouter, spec: AutoscalingSpec,
                                 onSample: (@Sendable (FleetSample, ScaleDecision?) -> Void)? = nil) async {
        var scaler = Autoscaler(spec: spec, current: fleet.stableCount)
        let t0 = ContinuousClock.now
        let interval = max(spec.intervalSeconds, 0.05)
        while !fleet.isStopped && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
            let s = sample(fleet, since: t0)
            let d = scaler.observe(s)
            onSample?(s, d)
            if let d { await fleet.scale(to: d.to, reason: d.reason, detail: d.detail) }
        }
    }

    /// What the autoscaler sees now: replicas, load and the window since the previous sample.
    static func sample(_ fleet: FleetRouter, since t0: ContinuousClock.Instant) -> FleetSample {
        let w = fleet.pool.takeWindow()
        let l = fleet.pool.load()
        return FleetSample(time: (ContinuousClock.now - t0).inSeconds, replicas: fleet.stableCount, ready: l.ready,
                           inFlight: l.inFlight, waiting: l.waiting, arrivals: w.arrivals, finished: w.finished.requests,
                           failed: w.finished.failed, ttftP95: ReplicaPool.Tally.p95(w.finished.ttfts),
                           tpotP95: ReplicaPool.Tally.p95(w.finished.tpots))
    }

    public enum CanaryOutcome: Sendable, Equatable {
        case promoted(String)
        case rolledBack(String)
    }

    /// A canary release of `next`: ⌈stable × percent / 100⌉ (at least 1) canary replicas start;
    /// once ready they get `percent` of the requests; `CanaryJudge` decides from the two sets'
    /// tallies every `pollSeconds`. Promotion replaces the old stable replicas with `next` (one at
    /// a time, readiness-gated); rollback drains and stops the canaries. The result is logged and
    /// counted in `autoglm:fleet_rollouts_total{result}`.
    public static func canary(_ fleet: FleetRouter, to next: ReplicaTemplate, percent: Int, analysis: CanaryAnalysisSpec,
                              deadline: Double, pollSeconds: Double = 0.5) async -> CanaryOutcome {
        let stable = fleet.stableCount
        let n = max(1, Int((Double(stable) * Double(percent) / 100).rounded(.up)))
        fleet.log("canary of \(next.version): \(n) replica(s), \(percent)% of requests")
        var ids: [Int] = []
        for _ in 0..<n { ids.append(fleet.startReplica(canary: true, template: next)) }
        func rollBack(_ why: String) async -> CanaryOutcome {
            fleet.pool.setCanaryPercent(0)
            await withTaskGroup(of: Void.self) { g in
                for id in ids { g.addTask { await fleet.drainAndStop(id, why: "canary rolled back") } }
            }
            fleet.log("canary of \(next.version) rolled back: \(why)")
            fleet.metrics?.counter("autoglm:fleet_rollouts_total", [("result", "rolled_back")]).increment()
            fleet.noteRollout("canary \(next.version) rolled back: \(why)")
            fleet.exportReplicas()
            return .rolledBack(why)
        }
        for id in ids where !(await fleet.waitReady(id, timeout: deadline)) {
            return await rollBack("canary replica \(id) was not ready within \(Int(deadline)) s")
        }
        fleet.pool.resetTallies()
        fleet.pool.setCanaryPercent(percent)
        fleet.exportReplicas()
        let t0 = ContinuousClock.now
        var lastNote = ""
        while !fleet.isStopped {
            try? await Task.sleep(for: .milliseconds(Int64(pollSeconds * 1000)))
            let (st, ca) = fleet.pool.tallies()
            let elapsed = (ContinuousClock.now - t0).inSeconds
            switch CanaryJudge.judge(analysis, stable: tally(st), canary: tally(ca), elapsed: elapsed) {
            case .pending(let why):
                if why != lastNote && Int(elapsed) % 10 == 0 { lastNote = why }
                continue
            case .rollback(let why):
                return await rollBack(why)
            case .promote(let why):
                fleet.log("canary of \(next.version) promoted: \(why)")
                fleet.setTemplate(next)
                fleet.pool.promoteCanary()
                // The canaries are stable now; the old replicas are replaced (or, for as many as
                // there were canaries, just drained) one at a time.
                let old = fleet.pool.members.filter { $0.admitting && $0.version != next.version }
                for (i, o) in old.enumerated() {
                    if i < old.count - n {
                        let id = fleet.startReplica(canary: false, template: next)
                        guard await fleet.waitReady(id, timeout: deadline) else {
                            await fleet.drainAndStop(id, why: "not ready")
                            fleet.log("promotion of \(next.version) stopped: replica \(id) was not ready within \(Int(deadline)) s")
                            break
                        }
                    }
                    await fleet.drainAndStop(o.id, why: "replaced by \(next.version)")
                }
                fleet.metrics?.counter("autoglm:fleet_rollouts_total", [("result", "promoted")]).increment()
                fleet.noteRollout("canary \(next.version) promoted: \(why)")
                fleet.exportReplicas()
                return .promoted(why)
            }
        }
        return await rollBack("the fleet stopped during the analysis")
    }

    static func tally(_ t: ReplicaPool.Tally) -> SetTally {
        SetTally(requests: t.requests, failed: t.failed, ttftP95: ReplicaPool.Tally.p95(t.ttfts), tpotP95: ReplicaPool.Tally.p95(t.tpots))
    }
}
