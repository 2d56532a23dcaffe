import CoreMetrics
import Foundation
import Server
import Synchronization

/// Makes the upstream of one replica of a given version (a supervised process on port 0, or a
/// remote server). Supplied by the caller: `up` builds it from the spec through Backends; tests
/// supply fake backends.
public struct ReplicaTemplate: Sendable {
    /// What the replicas of this template run (shown by `fleet status`; compared on reload).
    public var version: String
    /// Sequences one replica decodes at once, when known.
    public var slots: Int?
    public var make: @Sendable (_ log: @escaping @Sendable (String) -> Void) -> any Upstream
    public init(version: String, slots: Int?, make: @escaping @Sendable (_ log: @escaping @Sendable (String) -> Void) -> any Upstream) {
        self.version = version; self.slots = slots; self.make = make
    }
}

/// The fleet behind `up`'s gateway: starts and stops replicas (each supervised by its own
/// upstream: restarted with backoff when it dies), routes through the `ReplicaPool`, scales and
/// rolls out. It is the gateway's `UpstreamRouter`: `run()` is the fleet's life, `stop()` its end.
///
/// State: replica tasks and the current template behind one lock (`s`); routing state is the
/// pool's; decisions are made by one task (the control loop in `run`).
public final class FleetRouter: UpstreamRouter {
    public let pool: ReplicaPool
    let log: @Sendable (String) -> Void
    let metrics: ServerMetrics?
    let s: Mutex<State>
    /// Longest a draining replica may keep its in-flight requests before it is stopped anyway.
    public let drainTimeout: Double

    struct State {
        var template: ReplicaTemplate
        var tasks: [Int: Task<Void, Never>] = [:]
        var stopped = false
        var scaleEvents: [String: Int] = [:]
        var lastEvent: String?
        var lastRollout: String?
    }

    /// `replicas`: how many `run` starts; `control`: what runs beside them (scaling, rollouts).
    public init(pool: ReplicaPool, template: ReplicaTemplate, replicas: Int, drainTimeout: Double, metrics: ServerMetrics?,
                log: @escaping @Sendable (String) -> Void, control: (@Sendable (FleetRouter) async -> Void)? = nil) {
        self.pool = pool; self.drainTimeout = drainTimeout; self.metrics = metrics; self.log = log
        replicasWanted = replicas; self.control = control
        s = Mutex(State(template: template))
    }

    // MARK: UpstreamRouter

    public var state: UpstreamState { pool.state }
    public var health: (ok: Bool, reason: String) { pool.health }
    public var slots: Int? {
        let (_, _, _, replicas) = pool.load()
        return pool.slotsPerReplica.map { $0 * max(replicas, 1) }
    }
    public var usesPrefixes: Bool { pool.policy == .prefixAffinity }
    public func acquire(_ hint: RouteHint, excluding: Set<Int>) -> RouteLease? { pool.acquire(hint, excluding: excluding) }
    public func release(_ lease: RouteLease, _ outcome: RouteOutcome) { pool.release(lease, outcome) }

    public func stats() async -> BackendStats? {
        // The gateway's own view (the replicas' /metrics are theirs to scrape).
        exportReplicas()
        let l = pool.load()
        return BackendStats(running: Double(l.inFlight - l.waiting), waiting: Double(l.waiting))
    }

    let control: (@Sendable (FleetRouter) async -> Void)?
    let replicasWanted: Int

    public func run() async {
        for _ in 0..<max(replicasWanted, 1) { startReplica(canary: false) }
        exportReplicas()
        if let control { await control(self) }
        while !s.withLock({ $0.stopped }) && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    public func stop() async {
        let tasks: [Int: Task<Void, Never>] = s.withLock { st in st.stopped = true; return st.tasks }
        await withTaskGroup(of: Void.self) { g in
            for m in pool.members {
                g.addTask { await m.upstream.stop() }
            }
        }
        for t in tasks.values { t.cancel(); _ = await t.value }
    }

    public var isStopped: Bool { s.withLock { $0.stopped } }

    // MARK: replicas

    public var template: ReplicaTemplate { s.withLock { $0.template } }

    /// Starts one replica of the current template (or of `template`); returns its id.
    @discardableResult
    public func startReplica(canary: Bool, template t: ReplicaTemplate? = nil) -> Int {
        let tmpl = t ?? template
        let log = self.log
        let holder = Mutex<Int>(0)
        let up = tmpl.make { line in log("replica \(holder.withLock { $0 }): \(line)") }
        let id = pool.add(up, version: tmpl.version, canary: canary)
        holder.withLock { $0 = id }
        let task = Task { await up.run() }
        s.withLock { $0.tasks[id] = task }
        log("replica \(id) (\(tmpl.version)\(canary ? ", canary" : "")) starting")
        return id
    }

    /// Stops sending requests to the replica, waits for its in-flight requests (up to the drain
    /// timeout), then stops it.
    public func drainAndStop(_ id: Int, why: String) async {
        pool.stopAdmitting(id)
        log("replica \(id) draining: \(why)")
        let deadline = ContinuousClock.now + .milliseconds(Int64(drainTimeout * 1000))
        while pool.inFlight(id) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if let m = pool.members.first(where: { $0.id == id }) { await m.upstream.stop() }
        let task = s.withLock { $0.tasks.removeValue(forKey: id) }
        task?.cancel()
        _ = await task?.value
        pool.remove(id)
        log("replica \(id) stopped")
    }

    /// Waits until the replica is ready; false when `timeout` passes or the fleet stops first.
    public func waitReady(_ id: Int, timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline && !isStopped {
            if let m = pool.members.first(where: { $0.id == id }) {
                if ReplicaPool.isReady(m) { return true }
            } else {
                return false
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    // MARK: scaling

    /// Adds or removes replicas of the current template until `target` run (newest removed first);
    /// logs and exports the event.
    public func scale(to target: Int, reason: String, detail: String) async {
        let current = pool.members.filter { $0.admitting && !$0.canary }
        guard target != current.count, target >= 1, !isStopped else { return }
        log("scale \(current.count) → \(target) (\(reason)): \(detail)")
        s.withLock { $0.scaleEvents[reason, default: 0] += 1; $0.lastEvent = "\(current.count) → \(target) (\(reason)): \(detail)" }
        metrics?.counter("autoglm:fleet_scale_events_total", [("reason", reason)]).increment()
        if target > current.count {
            for _ in 0..<(target - current.count) { startReplica(canary: false) }
        } else {
            let victims = current.sorted { $0.id > $1.id }.prefix(current.count - target)
            await withTaskGroup(of: Void.self) { g in
                for v in victims { g.addTask { await self.drainAndStop(v.id, why: "scaled down (\(reason))") } }
            }
        }
        exportReplicas()
    }

    public func exportReplicas() {
        guard let metrics else { return }
        let ms = pool.members
        metrics.gauge("autoglm:fleet_replicas", [("set", "stable")]).record(ms.filter { !$0.canary }.count)
        metrics.gauge("autoglm:fleet_replicas", [("set", "canary")]).record(ms.filter { $0.canary }.count)
        metrics.gauge("autoglm:fleet_replicas_ready").record(ms.filter(ReplicaPool.isReady).count)
    }

    public var lastScaleEvent: String? { s.withLock { $0.lastEvent } }

    /// Stable replicas taking requests (what the autoscaler counts).
    public var stableCount: Int { pool.members.filter { $0.admitting && !$0.canary }.count }

    /// The last rollout's result, for `fleet status`.
    func noteRollout(_ line: String) { s.withLock { $0.lastRollout = line } }
    public var lastRollout: String? { s.withLock { $0.lastRollout } }

    // MARK: status

    /// `GET /fleet/status`: replicas, versions, sets, in-flight, health, the canary share.
    public func status() -> JSONValue {
        let ms = pool.members
        let percent = pool.s.withLock { $0.canaryPercent }
        let ready = ms.filter(ReplicaPool.isReady)
        let (readyCanary, readyStable) = (ready.filter(\.canary).count, ready.filter { !$0.canary }.count)
        // Each replica's expected share of new requests (%): the canary split, then even within a set.
        func weight(_ m: ReplicaPool.Member) -> Double {
            guard ReplicaPool.isReady(m) else { return 0 }
            let canaryShare = readyCanary == 0 ? 0.0 : (readyStable == 0 ? 100.0 : Double(percent))
            let share = m.canary ? canaryShare : 100 - canaryShare
            return (share / Double(max(m.canary ? readyCanary : readyStable, 1)) * 10).rounded() / 10
        }
        let replicas: [JSONValue] = ms.map { m in
            var state = "ready"
            switch m.upstream.state {
            case .ready: state = m.admitting ? "ready" : "draining"
            case .starting(let w): state = "starting: \(w)"
            case .down(let w): state = "down: \(w)"
            }
            var o: [String: JSONValue] = [
                "id": .int(m.id), "version": .string(m.version), "set": .string(m.canary ? "canary" : "stable"),
                "in_flight": .int(m.inFlight), "served": .int(m.served), "failed": .int(m.failed),
                "state": .string(state), "healthy": .bool(m.upstream.health.ok), "weight_percent": .double(weight(m)),
            ]
            if let b = m.upstream.baseURL { o["url"] = .string(b) }
            if let t = m.ttft { o["ttft_ewma_ms"] = .double((t * 10_000).rounded() / 10) }
            return .object(o)
        }
        var out: [String: JSONValue] = [
            "policy": .string(pool.policy.rawValue), "replicas": .array(replicas),
            "canary_percent": .int(percent),
        ]
        if let e = lastScaleEvent { out["last_scale_event"] = .string(e) }
        if let r = lastRollout { out["last_rollout"] = .string(r) }
        return .object(out)
    }
}
