import Foundation
import Server
import Synchronization
import Testing
@testable import Fleet

/// An upstream whose state the test sets (no process, no network).
final class StubUpstream: Upstream {
    let s = Mutex<(state: UpstreamState, unreachable: Int)>((.ready, 0))
    let baseURL: String?
    init(_ url: String) { baseURL = url }
    var apiKey: String? { nil }
    var state: UpstreamState { s.withLock { $0.state } }
    var health: (ok: Bool, reason: String) { (true, "ok") }
    var slots: Int? { 2 }
    func set(_ st: UpstreamState) { s.withLock { $0.state = st } }
    func markUnreachable(_ reason: String) { s.withLock { $0.state = .down(reason); $0.unreachable += 1 } }
    func run() async {}
    func stop() async {}
    func stats() async -> BackendStats? { nil }
}

@Suite struct ReplicaPoolTests {
    func pool(_ policy: BalancePolicy, _ n: Int, threshold: Int = 4) -> (ReplicaPool, [StubUpstream], [Int]) {
        let p = ReplicaPool(policy: policy, affinityThreshold: threshold, slotsPerReplica: 2)
        let ups = (0..<n).map { StubUpstream("http://r\($0)") }
        let ids = ups.map { p.add($0, version: "v1") }
        return (p, ups, ids)
    }

    @Test func roundRobinTakesTurns() {
        let (p, _, ids) = pool(.roundRobin, 3)
        var seen: [Int] = []
        for _ in 0..<9 {
            guard let l = p.acquire(RouteHint(), excluding: []) else { Issue.record("no lease"); return }
            seen.append(l.id)
            p.release(l, RouteOutcome(failed: false))
        }
        // Every replica three times, never the same one twice in a row.
        for id in ids { #expect(seen.filter { $0 == id }.count == 3) }
        for i in 1..<seen.count { #expect(seen[i] != seen[i - 1]) }
    }

    @Test func leastOutstandingPicksTheIdleReplica() {
        let (p, _, ids) = pool(.leastOutstanding, 2)
        // Two requests held: one on each replica.
        guard let a = p.acquire(RouteHint(), excluding: []), let b = p.acquire(RouteHint(), excluding: []) else { Issue.record("no lease"); return }
        #expect(a.id != b.id)
        // A third goes to either; release the one on ids[0]: the next must go there.
        let c = p.acquire(RouteHint(), excluding: [])
        #expect(c != nil)
        let onFirst = [a, b].first { $0.id == ids[0] }
        if let onFirst { p.release(onFirst, RouteOutcome(failed: false)) }
        if c?.id == ids[0], let c { p.release(c, RouteOutcome(failed: false)) }
        let load = p.members.map(\.inFlight)
        let next = p.acquire(RouteHint(), excluding: [])
        #expect(next?.id == (load[0] <= load[1] ? ids[0] : ids[1]))
    }

    @Test func leastOutstandingBreaksTiesByTTFT() {
        let (p, _, ids) = pool(.leastOutstanding, 2)
        // Replica 0 answered slowly, replica 1 fast.
        for (id, t) in [(ids[0], 2.0), (ids[1], 0.1)] {
            p.release(RouteLease(upstream: StubUpstream("x"), id: id, baseURL: "x"), RouteOutcome(failed: false, ttft: t))
        }
        for _ in 0..<5 {
            let l = p.acquire(RouteHint(), excluding: [])
            #expect(l?.id == ids[1])
            if let l { p.release(l, RouteOutcome(failed: false, ttft: 0.1)) }
        }
    }

    @Test func notReadyDrainingAndExcludedReplicasGetNothing() {
        let (p, ups, ids) = pool(.roundRobin, 3)
        ups[0].set(.down("exited"))
        p.stopAdmitting(ids[1])
        for _ in 0..<6 {
            let l = p.acquire(RouteHint(), excluding: [])
            #expect(l?.id == ids[2])
            if let l { p.release(l, RouteOutcome(failed: false)) }
        }
        #expect(p.acquire(RouteHint(), excluding: [ids[2]]) == nil)
        // Recovered: re-admitted.
        ups[0].set(.ready)
        #expect(p.acquire(RouteHint(), excluding: [ids[2]])?.id == ids[0])
        if case .ready = p.state {} else { Issue.record("a ready replica makes the pool ready") }
        ups[0].set(.down("x")); ups[2].set(.starting("loading"))
        if case .starting = p.state {} else { Issue.record("a starting replica makes the pool starting: \(p.state)") }
    }

    @Test func prefixAffinityKeepsConversationsTogetherUntilLoaded() {
        let (p, _, _) = pool(.prefixAffinity, 3, threshold: 2)
        let system = String(repeating: "You are a careful assistant. ", count: 40)
        func hint(_ conversation: Int, turns: Int) -> RouteHint {
            var body = "system\u{1}\(system)\u{2}"
            for t in 0..<turns { body += "user\u{1}conversation \(conversation) turn \(t) " + String(repeating: "x", count: 300) + "\u{2}" }
            return RouteHint(prefixHashes: PromptPrefix.hashes(Array(body.utf8)))
        }
        // First turn of conversation 7 lands somewhere; its later turns follow it.
        guard let first = p.acquire(hint(7, turns: 1), excluding: []) else { Issue.record("no lease"); return }
        p.release(first, RouteOutcome(failed: false))
        for turns in 2...5 {
            let l = p.acquire(hint(7, turns: turns), excluding: [])
            #expect(l?.id == first.id)
            if let l { p.release(l, RouteOutcome(failed: false)) }
        }
        // Held requests of the conversation pile up on its replica while it is at most 2
        // (the threshold) above the least loaded one: 0, 1, 2 in flight there → 3 go to it.
        var held: [RouteLease] = []
        for _ in 0..<3 { if let l = p.acquire(hint(7, turns: 2), excluding: []) { held.append(l) } }
        #expect(held.map(\.id) == [first.id, first.id, first.id])
        // Now it is 3 above the others: the next turn goes to a least-loaded replica.
        let next = p.acquire(hint(7, turns: 6), excluding: [])
        #expect(next != nil && next?.id != first.id)
        // A different conversation with the same system prompt shares its first blocks: it goes
        // to one of the two replicas that served that prompt, never to the third.
        for l in held { p.release(l, RouteOutcome(failed: false)) }
        if let next { p.release(next, RouteOutcome(failed: false)) }
        let other = p.acquire(hint(8, turns: 1), excluding: [])
        #expect(other != nil && [first.id, next?.id].contains(other?.id))
    }

    @Test func promptPrefixHashesShareExactlyTheCommonBlocks() {
        let a = Array(String(repeating: "a", count: 1000).utf8)
        var b = a
        b[700] = UInt8(ascii: "b")
        let ha = PromptPrefix.hashes(a), hb = PromptPrefix.hashes(b)
        #expect(ha.count == 3 && hb.count == 3)            // 1000 / 256 full blocks
        #expect(ha[0] == hb[0] && ha[1] == hb[1])          // bytes 0..<512 equal
        #expect(ha[2] != hb[2])                            // block 512..<768 differs
        let chat: JSONValue = .object(["messages": .array([.object(["role": "system", "content": "S"]), .object(["role": "user", "content": .array([.object(["type": "text", "text": "T"])])])])])
        #expect(PromptPrefix.text(of: chat) == Array("system\u{1}S\u{2}user\u{1}T\u{2}".utf8))
        #expect(PromptPrefix.text(of: .object(["prompt": "hello"])) == Array("hello".utf8))
    }

    @Test func canaryGetsItsShareExactly() {
        let p = ReplicaPool(policy: .roundRobin, slotsPerReplica: 2)
        let stable = p.add(StubUpstream("http://s"), version: "v1")
        let canary = p.add(StubUpstream("http://c"), version: "v2", canary: true)
        p.setCanaryPercent(20)
        var toCanary = 0
        for _ in 0..<100 {
            guard let l = p.acquire(RouteHint(), excluding: []) else { Issue.record("no lease"); return }
            if l.id == canary { toCanary += 1 } else { #expect(l.id == stable) }
            p.release(l, RouteOutcome(failed: l.id == canary, ttft: 0.2))
        }
        #expect(toCanary == 20)
        let t = p.tallies()
        #expect(t.canary.requests == 20 && t.canary.failed == 20 && t.stable.requests == 80 && t.stable.failed == 0)
        p.promoteCanary()
        #expect(p.members.allSatisfy { !$0.canary })
    }

    @Test func statusShowsEachReplicasShare() {
        let p = ReplicaPool(policy: .roundRobin, slotsPerReplica: 2)
        let fleet = FleetRouter(pool: p, template: ReplicaTemplate(version: "v1", slots: 2) { _ in StubUpstream("http://x") },
                                replicas: 1, drainTimeout: 1, metrics: nil, log: { _ in })
        let down = StubUpstream("http://d")
        down.set(.down("exited"))
        for u in [StubUpstream("http://a"), StubUpstream("http://b")] { p.add(u, version: "v1") }
        p.add(down, version: "v1")
        p.add(StubUpstream("http://c"), version: "v2", canary: true)
        p.setCanaryPercent(20)
        guard case .array(let rs)? = fleet.status()["replicas"] else { Issue.record("no replicas"); return }
        let weights = rs.map { r -> Double in
            switch r["weight_percent"] { case .double(let d)?: return d; case .int(let i)?: return Double(i); default: return -1 }
        }
        // Two ready stable replicas share 80 %, the canary has its 20 %, the down one none.
        #expect(weights == [40, 40, 0, 20])
        #expect(rs.map { $0["set"]?.string } == ["stable", "stable", "stable", "canary"])
        #expect(fleet.status()["canary_percent"]?.int == 20)
    }

    @Test func p95IsTheNearestRank() {
        #expect(ReplicaPool.Tally.p95([]) == nil)
        #expect(ReplicaPool.Tally.p95([3]) == 3)
        #expect(ReplicaPool.Tally.p95((1...100).map(Double.init)) == 95)
        #expect(ReplicaPool.Tally.p95((1...20).map(Double.init)) == 19)
    }
}
