import Backends
import Foundation
import Hummingbird
import HummingbirdTesting
import LoadGen
import Logging
import Server
import Synchronization
import Testing
@testable import Fleet

/// The fleet with real processes: replicas are scripts/fake-openai-backend.py (port 0, announced
/// address; fault injection by flags), the gateway is the real proxy front door on loopback, the
/// load is LoadGen's real HTTP client.
enum FakeFleet {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repo.appendingPathComponent("scripts/fake-openai-backend.py").path
    static let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/python3"
    static let quiet: Logger = { var l = Logger(label: "test"); l.logLevel = .critical; return l }()

    /// Replicas of the fake backend with these flags.
    static func template(version: String, _ flags: [String], slots: Int = 8) -> ReplicaTemplate {
        ReplicaTemplate(version: version, slots: slots) { log in
            ManagedServer(program: "fake-backend", slots: slots, readyPath: "/health", announces: true, log: log) { port in
                (python, [script, "--port", String(port), "--version", version] + flags)
            }
        }
    }

    /// Runs a fleet of `replicas` behind a live gateway; `body` gets the gateway's URL.
    static func with(_ template: ReplicaTemplate, replicas: Int, policy: BalancePolicy = .leastOutstanding,
                     log: @escaping @Sendable (String) -> Void = { _ in },
                     _ body: @escaping @Sendable (String, FleetRouter) async throws -> Void) async throws {
        let pool = ReplicaPool(policy: policy, slotsPerReplica: template.slots)
        let fleet = FleetRouter(pool: pool, template: template, replicas: replicas, drainTimeout: 10, metrics: nil, log: log)
        var cfg = ServerConfig()
        cfg.servedModelName = "fake-model"
        cfg.maxQueue = 256
        let proxy = ProxyServer(router: fleet, config: cfg, logger: quiet)
        let running = Task { await fleet.run() }
        defer { running.cancel() }
        let app = Application(router: proxy.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        do {
            try await app.test(.live) { client in
                let port = try #require(client.port)
                try await waitUntil(timeout: 120) { pool.members.count == replicas && pool.members.allSatisfy(ReplicaPool.isReady) }
                try await body("http://127.0.0.1:\(port)", fleet)
            }
        } catch {
            await fleet.stop(); await proxy.shutdown(); throw error
        }
        await fleet.stop()
        await proxy.shutdown()
    }

    struct NotInTime: Error, CustomStringConvertible { var description: String }

    static func waitUntil(timeout: Double, _ cond: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !cond() {
            if ContinuousClock.now > deadline { throw NotInTime(description: "condition not met within \(timeout) s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

@Suite(.serialized) struct FleetFaultTests {
    @Test func killingAReplicaUnderLoadLosesOnlyItsStreams() async throws {
        let events = Mutex<[String]>([])
        try await FakeFleet.with(FakeFleet.template(version: "v1", ["--tokens", "20", "--token-ms", "10"]), replicas: 2,
                                 log: { l in events.withLock { $0.append(l) } }) { url, fleet in
            let victim = try #require(fleet.pool.members.first?.upstream as? ManagedServer)
            let victimPID = try #require(victim.pid)
            let killer = Task {
                try await Task.sleep(for: .seconds(1.5))
                kill(victimPID, SIGKILL)
            }
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 16), requests: 300,
                                                   maxTokens: .fixed(20), timeoutSeconds: 600))
            try await killer.value
            // Requests that had not started streaming were retried on the other replica: no 5xx,
            // no connection error; only the streams cut on the killed replica failed, each with an
            // error event (LoadGen: bad_stream), at most one per concurrent client.
            #expect(Set(r.errors.keys).isSubset(of: ["bad_stream"]), "\(r.errors) \(r.errorExamples)")
            #expect((r.errors["bad_stream"] ?? 0) <= 16)
            #expect(r.completed + r.failed == 300)
            // The replica came back (a new process) and takes requests again.
            try await FakeFleet.waitUntil(timeout: 60) { victim.starts >= 2 && victim.pid != victimPID && ReplicaPool.isReady(fleet.pool.members[0]) }
            let servedBefore = fleet.pool.members[0].served
            let again = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 4), requests: 20,
                                                       maxTokens: .fixed(4), timeoutSeconds: 600))
            #expect(again.failed == 0 && again.completed == 20)
            #expect(fleet.pool.members[0].served > servedBefore)
        }
        #expect(events.withLock { $0 }.contains { $0.contains("exited") && $0.contains("restarting") })
    }

    @Test func rollingUpdateUnderLoadFailsNothing() async throws {
        try await FakeFleet.with(FakeFleet.template(version: "v1", ["--tokens", "10", "--token-ms", "10"]), replicas: 2) { url, fleet in
            let load = Task {
                try await LoadGen.run(LoadSpec(url: url, model: "fake-model", load: .closed(concurrency: 8), requests: 400,
                                               maxTokens: .fixed(10), timeoutSeconds: 600))
            }
            try await Task.sleep(for: .seconds(1))
            let outcome = await Rollout.rolling(fleet, to: FakeFleet.template(version: "v2", ["--tokens", "10", "--token-ms", "10"]), deadline: 60)
            let r = try await load.value
            #expect(outcome == .done(replaced: 2))
            #expect(r.failed == 0 && r.completed == 400, "\(r.errors) \(r.errorExamples)")
            #expect(fleet.pool.members.map(\.version) == ["v2", "v2"])
        }
    }

    @Test func aReplicaThatNeverGetsReadyRollsTheUpdateBack() async throws {
        try await FakeFleet.with(FakeFleet.template(version: "v1", ["--tokens", "2"]), replicas: 1) { url, fleet in
            // v2's replica exits at once (an unknown flag): not ready within the deadline.
            let bad = FakeFleet.template(version: "v2", ["--no-such-flag"])
            let outcome = await Rollout.rolling(fleet, to: bad, deadline: 3)
            guard case .rolledBack(let why) = outcome else { Issue.record("expected a rollback, got \(outcome)"); return }
            #expect(why.contains("not ready within 3 s"))
            #expect(fleet.pool.members.map(\.version) == ["v1"])
            #expect(fleet.template.version == "v1")
            let r = try await LoadGen.run(LoadSpec(url: url, model: "fake-model", requests: 5, maxTokens: .fixed(2), timeoutSeconds: 600))
            #expect(r.completed == 5)
        }
    }

    @Test func aReplicaThatExitsAtOnceBacksOffAndSaysWhy() async throws {
        let pool = ReplicaPool(policy: .roundRobin, slotsPerReplica: 8)
        let broken = FakeFleet.template(version: "v1", ["--no-such-flag"])
        let fleet = FleetRouter(pool: pool, template: broken, replicas: 1, drainTimeout: 1, metrics: nil, log: { _ in })
        let running = Task { await fleet.run() }
        try await Task.sleep(for: .seconds(4))
        let m = try #require(pool.members.first)
        let server = try #require(m.upstream as? ManagedServer)
        // Backoff 0.5, 1, 2 s between starts: at most 4 starts in 4 s, not a busy loop.
        #expect(server.attempts >= 1 && server.attempts <= 4, "\(server.attempts) attempts")
        guard case .down(let why) = pool.state else { Issue.record("expected down, got \(pool.state)"); return }
        #expect(why.contains("exited") || why.contains("could not be started"), "\(why)")
        #expect(fleet.acquire(RouteHint(), excluding: []) == nil)
        let status = fleet.status()
        guard case .array(let rs)? = status["replicas"], let state = rs.first?["state"]?.string else { Issue.record("no status"); return }
        #expect(state.hasPrefix("down:"), "\(state)")
        await fleet.stop()
        running.cancel()
        _ = await running.value
    }
}
