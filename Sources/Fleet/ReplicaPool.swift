import Foundation
import Server
import Spec
import Synchronization

/// How the gateway spreads requests over ready replicas: the spec's `gateway.policy`
/// (round-robin: in turn; least-outstanding: fewest in-flight requests, ties by the lowest recent
/// TTFT, then in turn; prefix-affinity: the replica that already served the longest prefix of
/// this prompt, unless it has more than `affinityThreshold` in-flight requests above the least
/// loaded one — then least-outstanding).
public typealias BalancePolicy = GatewayPolicy

/// The gateway's view of the replicas: who is in the pool, which set (stable or canary) each
/// belongs to, their in-flight counts, recent TTFT and the prompt prefixes each has served; the
/// choice of a replica per request; the tallies the canary analysis and the autoscaler read.
///
/// State: everything behind one lock (`s`); the replicas' own state (process, probes) is their
/// `Upstream`'s. Nothing here blocks or does I/O.
public final class ReplicaPool: Sendable {
    public struct Member: Sendable {
        public let id: Int
        public let upstream: any Upstream
        /// What the replica runs (the spec's model version and a digest of its backend section).
        public let version: String
        public var canary: Bool
        /// False once the replica is being drained: no new requests.
        public var admitting = true
        public var inFlight = 0
        public var served = 0
        public var failed = 0
        /// Exponentially weighted TTFT of its recent streams (seconds).
        public var ttft: Double?
        var prefixes = PrefixMemory()
    }

    /// Requests, failures and latency samples of one replica set since `resetTallies`.
    public struct Tally: Sendable, Equatable {
        public var requests = 0
        public var failed = 0
        public var ttfts: [Double] = []
        public var tpots: [Double] = []
        public static let sampleCap = 4096
        mutating func add(_ o: RouteOutcome) {
            requests += 1
            if o.failed { failed += 1 }
            if let t = o.ttft, ttfts.count < Self.sampleCap { ttfts.append(t) }
            if let t = o.tpot, tpots.count < Self.sampleCap { tpots.append(t) }
        }
        /// The 95th percentile of `xs` (nearest rank), nil when empty.
        public static func p95(_ xs: [Double]) -> Double? {
            guard !xs.isEmpty else { return nil }
            let sorted = xs.sorted()
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
        }
    }

    struct State {
        var members: [Member] = []
        var nextID = 1
        var turn = 0
        var canaryPercent = 0
        var canaryCredit = 0
        var stable = Tally(), canary = Tally()
        /// Since the last `takeWindow`: arrivals, finished, failed, TTFT samples.
        var window = Tally()
        var arrivals = 0
    }

    public let policy: BalancePolicy
    public let affinityThreshold: Int
    /// Sequences one replica decodes at once (the rest of its in-flight requests wait), when known.
    public let slotsPerReplica: Int?
    let s = Mutex(State())

    public init(policy: BalancePolicy, affinityThreshold: Int = 4, slotsPerReplica: Int?) {
        self.policy = policy; self.affinityThreshold = affinityThreshold; self.slotsPerReplica = slotsPerReplica
    }

    // MARK: membership

    /// Adds a replica (it takes requests once its upstream is ready); returns its id.
    @discardableResult
    public func add(_ upstream: any Upstream, version: String, canary: Bool = false) -> Int {
        s.withLock { st in
            let id = st.nextID
            st.nextID += 1
            st.members.append(Member(id: id, upstream: upstream, version: version, canary: canary))
            return id
        }
    }

    /// Stops sending new requests to the replica; returns its in-flight count.
    public func stopAdmitting(_ id: Int) {
        s.withLock { st in
            if let i = st.members.firstIndex(where: { $0.id == id }) { st.members[i].admitting = false }
        }
    }

    public func inFlight(_ id: Int) -> Int { s.withLock { st in st.members.first { $0.id == id }?.inFlight ?? 0 } }

    public func remove(_ id: Int) { s.withLock { st in st.members.removeAll { $0.id == id } } }

    public var members: [Member] { s.withLock { $0.members } }

    /// Share of requests (0–100) that go to the canary set while it has a ready replica.
    public func setCanaryPercent(_ p: Int) { s.withLock { $0.canaryPercent = max(0, min(100, p)); $0.canaryCredit = 0 } }

    /// Canary members become stable (promotion).
    public func promoteCanary() { s.withLock { st in for i in st.members.indices { st.members[i].canary = false }; st.canaryPercent = 0 } }

    public func resetTallies() { s.withLock { $0.stable = Tally(); $0.canary = Tally() } }

    public func tallies() -> (stable: Tally, canary: Tally) { s.withLock { ($0.stable, $0.canary) } }

    /// What happened since the previous call: arrivals and the finished requests' tally.
    public func takeWindow() -> (arrivals: Int, finished: Tally) {
        s.withLock { st in
            defer { st.window = Tally(); st.arrivals = 0 }
            return (st.arrivals, st.window)
        }
    }

    // MARK: choice

    static func isReady(_ m: Member) -> Bool {
        guard m.admitting, m.upstream.baseURL != nil else { return false }
        if case .ready = m.upstream.state { return true }
        return false
    }

    /// A ready replica for the request (canary share first, then the policy), nil when none is.
    public func acquire(_ hint: RouteHint, excluding: Set<Int>) -> RouteLease? {
        s.withLock { st -> RouteLease? in
            let ready = st.members.indices.filter { Self.isReady(st.members[$0]) && !excluding.contains(st.members[$0].id) }
            guard !ready.isEmpty else { return nil }
            var pool = ready
            let canaries = ready.filter { st.members[$0].canary }
            let stables = ready.filter { !st.members[$0].canary }
            if !canaries.isEmpty && !stables.isEmpty {
                st.canaryCredit += st.canaryPercent
                if st.canaryCredit >= 100 { st.canaryCredit -= 100; pool = canaries } else { pool = stables }
            }
            let i = choose(&st, among: pool, hint)
            st.members[i].inFlight += 1
            if !hint.prefixHashes.isEmpty { st.members[i].prefixes.insert(hint.prefixHashes) }
            st.arrivals += 1
            let m = st.members[i]
            guard let base = m.upstream.baseURL else { return nil }
            return RouteLease(upstream: m.upstream, id: m.id, baseURL: base)
        }
    }

    func choose(_ st: inout State, among pool: [Int], _ hint: RouteHint) -> Int {
        st.turn &+= 1
        let turn = st.turn
        func rotated(_ xs: [Int]) -> [Int] {
            let k = turn % xs.count
            return Array(xs[k...] + xs[..<k])
        }
        let members = st.members
        func leastOutstanding(_ xs: [Int]) -> Int {
            // Rotation first, so ties do not always go to the first replica.
            rotated(xs).min { a, b in
                let (ma, mb) = (members[a], members[b])
                if ma.inFlight != mb.inFlight { return ma.inFlight < mb.inFlight }
                return (ma.ttft ?? 0) < (mb.ttft ?? 0)
            } ?? xs[0]
        }
        switch policy {
        case .roundRobin:
            return rotated(pool)[0]
        case .leastOutstanding:
            return leastOutstanding(pool)
        case .prefixAffinity:
            let least = leastOutstanding(pool)
            guard !hint.prefixHashes.isEmpty else { return least }
            var best: (index: Int, blocks: Int)?
            for i in rotated(pool) {
                let n = members[i].prefixes.matched(hint.prefixHashes)
                if n > 0 && n > (best?.blocks ?? 0) { best = (i, n) }
            }
            guard let b = best, members[b.index].inFlight <= members[least].inFlight + affinityThreshold else { return least }
            return b.index
        }
    }

    public func release(_ lease: RouteLease, _ outcome: RouteOutcome) {
        s.withLock { st in
            st.window.add(outcome)
            guard let i = st.members.firstIndex(where: { $0.id == lease.id }) else { return }
            st.members[i].inFlight = max(0, st.members[i].inFlight - 1)
            st.members[i].served += 1
            if outcome.failed { st.members[i].failed += 1 }
            if let t = outcome.ttft { st.members[i].ttft = st.members[i].ttft.map { 0.8 * $0 + 0.2 * t } ?? t }
            if st.members[i].canary { st.canary.add(outcome) } else { st.stable.add(outcome) }
        }
    }

    // MARK: aggregate state

    public var state: UpstreamState {
        let ms = members
        if ms.contains(where: Self.isReady) { return .ready }
        if ms.isEmpty { return .starting("no replica started yet") }
        let reasons = ms.map { m -> String in
            switch m.upstream.state {
            case .ready: return "replica \(m.id): draining"
            case .starting(let w): return "replica \(m.id): \(w)"
            case .down(let w): return "replica \(m.id): \(w)"
            }
        }
        let summary = reasons.prefix(4).joined(separator: "; ")
        if ms.contains(where: { if case .starting = $0.upstream.state { return true } else { return false } }) {
            return .starting(summary)
        }
        return .down(summary)
    }

    /// Unhealthy only when every replica is (a dead replica is restarted by its supervisor).
    public var health: (ok: Bool, reason: String) {
        let ms = members
        if ms.isEmpty || ms.contains(where: { $0.upstream.health.ok }) { return (true, "ok") }
        return (false, ms.map { "replica \($0.id): \($0.upstream.health.reason)" }.prefix(4).joined(separator: "; "))
    }

    /// In-flight requests over all replicas, and those beyond the replicas' slots (waiting).
    public func load() -> (inFlight: Int, waiting: Int, ready: Int, replicas: Int) {
        s.withLock { st in
            let inFlight = st.members.reduce(0) { $0 + $1.inFlight }
            let waiting = st.members.reduce(0) { $0 + max(0, $1.inFlight - (slotsPerReplica ?? Int.max)) }
            return (inFlight, waiting, st.members.filter(Self.isReady).count, st.members.count)
        }
    }
}

/// The prompt-prefix blocks a replica has served recently: two generations of a hash set (the
/// older dropped when the newer fills), so memory stays bounded and recent prefixes stay.
struct PrefixMemory: Sendable {
    static let generationSize = 16_384
    var current: Set<UInt64> = []
    var previous: Set<UInt64> = []

    func contains(_ h: UInt64) -> Bool { current.contains(h) || previous.contains(h) }

    /// How many leading blocks of `hashes` this replica has served.
    func matched(_ hashes: [UInt64]) -> Int {
        // Cumulative hashes: block k matched implies every block before it matched.
        var lo = 0, hi = hashes.count
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if contains(hashes[mid - 1]) { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    mutating func insert(_ hashes: [UInt64]) {
        for h in hashes where !current.contains(h) {
            if current.count >= Self.generationSize { previous = current; current = [] }
            current.insert(h)
        }
    }
}
