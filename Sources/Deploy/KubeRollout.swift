import Spec

/// A condition from an object's status.
public struct KubeCondition: Sendable, Equatable, CustomStringConvertible {
    public var type: String
    public var status: String
    public var reason: String
    public var message: String

    public init(type: String, status: String, reason: String = "", message: String = "") {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }

    public init(_ json: JSONValue) {
        self.init(type: json["type"]?.string ?? "?", status: json["status"]?.string ?? "Unknown",
                  reason: json["reason"]?.string ?? "", message: json["message"]?.string ?? "")
    }

    static func list(_ json: JSONValue?) -> [KubeCondition] {
        (json?.array ?? []).map(KubeCondition.init)
    }

    public var description: String {
        var s = "\(type)=\(status)"
        if !reason.isEmpty { s += " (\(reason))" }
        if !message.isEmpty { s += ": \(message)" }
        return s
    }
}

/// Replica counts of a Deployment.
public struct RolloutCounts: Sendable, Equatable {
    public var desired = 0
    public var current = 0
    public var updated = 0
    public var ready = 0
    public var available = 0
    public var unavailable = 0

    public init(desired: Int = 0, current: Int = 0, updated: Int = 0, ready: Int = 0, available: Int = 0, unavailable: Int = 0) {
        self.desired = desired
        self.current = current
        self.updated = updated
        self.ready = ready
        self.available = available
        self.unavailable = unavailable
    }
}

public enum RolloutState: Sendable, Equatable {
    /// Still progressing; the text says what it waits for.
    case waiting(String)
    case complete
    /// The controller gave up (`ProgressDeadlineExceeded`) or the rollout cannot proceed.
    case failed(reason: String, message: String)
}

/// What a Deployment's status says about its rollout, evaluated the way `kubectl rollout status`
/// does: the controller must have observed the latest generation, then the Progressing condition
/// decides failure, and the replica counts decide completion.
public struct RolloutSnapshot: Sendable, Equatable {
    public var name: String
    public var state: RolloutState
    public var counts: RolloutCounts
    public var revision: Int?
    public var generation: Int
    public var observedGeneration: Int
    public var conditions: [KubeCondition]
    public var images: [String]

    public static let revisionAnnotation = "deployment.kubernetes.io/revision"

    public static func evaluate(_ dep: JSONValue) -> RolloutSnapshot {
        let status = dep["status"]
        var c = RolloutCounts()
        c.desired = dep.at("spec", "replicas")?.int ?? 1
        c.current = status?["replicas"]?.int ?? 0
        c.updated = status?["updatedReplicas"]?.int ?? 0
        c.ready = status?["readyReplicas"]?.int ?? 0
        c.available = status?["availableReplicas"]?.int ?? 0
        c.unavailable = status?["unavailableReplicas"]?.int ?? 0
        let gen = dep.at("metadata", "generation")?.int ?? 0
        let observed = status?["observedGeneration"]?.int ?? 0
        let conditions = KubeCondition.list(status?["conditions"])
        let revision = dep.at("metadata", "annotations", revisionAnnotation)?.string.flatMap { Int($0) }
        let images = (dep.at("spec", "template", "spec", "containers")?.array ?? []).compactMap { $0["image"]?.string }
        let name = dep.at("metadata", "name")?.string ?? "?"

        let state: RolloutState
        let progressing = conditions.first { $0.type == "Progressing" }
        if observed < gen {
            state = .waiting("waiting for the deployment controller to observe generation \(gen)")
        } else if let p = progressing, p.reason == "ProgressDeadlineExceeded" {
            state = .failed(reason: "ProgressDeadlineExceeded", message: p.message)
        } else if dep.at("spec", "paused")?.bool == true {
            state = .waiting("the deployment is paused; resume it with 'kubectl rollout resume deployment/\(name)'")
        } else if c.updated < c.desired {
            state = .waiting("\(c.updated) of \(c.desired) replicas updated")
        } else if c.current > c.updated {
            state = .waiting("\(c.current - c.updated) old replica(s) pending termination")
        } else if c.available < c.updated {
            state = .waiting("\(c.available) of \(c.updated) updated replicas available")
        } else {
            state = .complete
        }
        return RolloutSnapshot(name: name, state: state, counts: c, revision: revision, generation: gen,
                               observedGeneration: observed, conditions: conditions, images: images)
    }

    /// One line for the live progress display.
    public var line: String {
        let rev = revision.map { "revision \($0)" } ?? "revision ?"
        let counts = "\(counts.updated)/\(counts.desired) updated, \(counts.ready) ready, \(counts.available) available"
        switch state {
        case .waiting(let why): return "deployment/\(name) \(rev): \(counts) — \(why)"
        case .complete: return "deployment/\(name) \(rev): \(counts) — rolled out"
        case .failed(let reason, _): return "deployment/\(name) \(rev): \(counts) — failed (\(reason))"
        }
    }

    /// A multi-line summary for `deploy status`.
    public var summary: String {
        var out = "deployment/\(name)\n"
        out += "  revision:   \(revision.map(String.init) ?? "?")\n"
        out += "  image:      \(images.joined(separator: ", "))\n"
        out += "  replicas:   \(counts.desired) desired, \(counts.current) current, \(counts.updated) updated, \(counts.ready) ready, \(counts.available) available"
        if counts.unavailable > 0 { out += ", \(counts.unavailable) unavailable" }
        out += "\n"
        switch state {
        case .complete: out += "  rollout:    complete\n"
        case .waiting(let why): out += "  rollout:    in progress (\(why))\n"
        case .failed(let reason, let message): out += "  rollout:    FAILED \(reason): \(message)\n"
        }
        if !conditions.isEmpty {
            out += "  conditions:\n"
            for c in conditions { out += "    \(c)\n" }
        }
        return out
    }
}

/// Why a pod of a failed rollout is not healthy.
public struct PodProblem: Sendable, Equatable, CustomStringConvertible {
    public var pod: String
    public var phase: String
    public var ready: Bool
    public var images: [String]
    /// Failing conditions and container states, e.g. `Ready=False (ContainersNotReady: ...)`.
    public var reasons: [String]

    public var description: String {
        "pod \(pod) (\(images.joined(separator: ", "))): \(phase), \(ready ? "ready" : "not ready")"
            + (reasons.isEmpty ? "" : " — " + reasons.joined(separator: "; "))
    }

    public static func diagnose(_ pod: JSONValue) -> PodProblem {
        let name = pod.at("metadata", "name")?.string ?? "?"
        let phase = pod.at("status", "phase")?.string ?? "Pending"
        let conditions = KubeCondition.list(pod.at("status", "conditions"))
        let ready = conditions.contains { $0.type == "Ready" && $0.status == "True" }
        var reasons: [String] = []
        for c in conditions where c.status != "True" {
            if c.type == "ContainersReady", conditions.contains(where: { $0.type == "Ready" && $0.status != "True" }) { continue }
            reasons.append(c.description)
        }
        let statuses = (pod.at("status", "initContainerStatuses")?.array ?? []) + (pod.at("status", "containerStatuses")?.array ?? [])
        for s in statuses {
            let cname = s["name"]?.string ?? "?"
            if let w = s.at("state", "waiting") {
                let r = w["reason"]?.string ?? "Waiting"
                let m = w["message"]?.string.map { ": \($0)" } ?? ""
                reasons.append("container \(cname) waiting (\(r)\(m))")
            } else if let t = s.at("state", "terminated"), t["exitCode"]?.int != 0 {
                reasons.append("container \(cname) terminated (\(t["reason"]?.string ?? "Error"), exit code \(t["exitCode"]?.int ?? -1))")
            }
            if let restarts = s["restartCount"]?.int, restarts > 0 {
                reasons.append("container \(cname) restarted \(restarts)×")
            }
        }
        if statuses.isEmpty, conditions.isEmpty { reasons.append("not scheduled yet") }
        let images = (pod.at("spec", "containers")?.array ?? []).compactMap { $0["image"]?.string }
        return PodProblem(pod: name, phase: phase, ready: ready, images: images, reasons: reasons)
    }
}

/// A rollout that did not become healthy.
public struct RolloutFailure: Sendable, Equatable, CustomStringConvertible {
    public var deployment: String
    public var revision: Int?
    public var reason: String
    public var message: String
    public var pods: [PodProblem]

    public init(deployment: String, revision: Int?, reason: String, message: String, pods: [PodProblem]) {
        self.deployment = deployment
        self.revision = revision
        self.reason = reason
        self.message = message
        self.pods = pods
    }

    public var description: String {
        var s = "deployment/\(deployment) revision \(revision.map(String.init) ?? "?") failed: \(reason)"
        if !message.isEmpty { s += " — \(message)" }
        let bad = pods.filter { !$0.ready }
        if !bad.isEmpty {
            s += "\n  unhealthy pods of the new revision:"
            for p in bad { s += "\n    \(p)" }
        }
        return s
    }
}
