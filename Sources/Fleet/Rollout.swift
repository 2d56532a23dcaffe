import Foundation
import Server

/// Rolling updates of a running fleet.
public enum Rollout {
    public enum Outcome: Sendable, Equatable {
        case done(replaced: Int)
        /// A new replica did not become ready: it was stopped, the old ones kept serving.
        case rolledBack(String)
    }

    /// Replaces every stable replica with one of `next`, one at a time: a new replica is started
    /// (one above the wanted count), and only once it is ready is an old one drained (no new
    /// requests; in-flight ones finish) and stopped — so capacity never drops and no request
    /// fails. A new replica that is not ready within `deadline` seconds is stopped and the update
    /// ends there (the replicas already replaced stay; the template goes back to the old one).
    public static func rolling(_ fleet: FleetRouter, to next: ReplicaTemplate, deadline: Double) async -> Outcome {
        let previous = fleet.template
        let old = fleet.pool.members.filter { !$0.canary && $0.admitting && $0.version != next.version }
        fleet.log("rolling update to \(next.version): \(old.count) replica(s) to replace")
        fleet.setTemplate(next)
        var replaced = 0
        for o in old {
            if fleet.isStopped { break }
            let id = fleet.startReplica(canary: false, template: next)
            guard await fleet.waitReady(id, timeout: deadline) else {
                let why = "replica \(id) of \(next.version) was not ready within \(Int(deadline)) s; \(replaced) of \(old.count) replaced, the rest keep \(previous.version)"
                await fleet.drainAndStop(id, why: "rolled back")
                fleet.setTemplate(previous)
                fleet.log("rolling update failed: \(why)")
                fleet.noteRollout("rolling update to \(next.version) rolled back: \(why)")
                return .rolledBack(why)
            }
            await fleet.drainAndStop(o.id, why: "replaced by replica \(id) (\(next.version))")
            replaced += 1
        }
        fleet.exportReplicas()
        fleet.log("rolling update to \(next.version) done: \(replaced) replaced")
        fleet.noteRollout("rolling update to \(next.version): \(replaced) replaced")
        return .done(replaced: replaced)
    }
}

extension FleetRouter {
    /// The template new replicas (scale-ups, restarts by rollouts) are made from.
    public func setTemplate(_ t: ReplicaTemplate) { s.withLock { $0.template = t } }
}
