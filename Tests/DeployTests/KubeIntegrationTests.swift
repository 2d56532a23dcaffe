import Foundation
import Testing
@testable import Spec
import Deploy

/// Against a real control plane (kube-apiserver, controller-manager, scheduler v1.20 and a fake
/// kubelet): start it with scripts/k8s-testbed.sh and point AUTOGLM_TEST_KUBECONFIG at its kubeconfig.
/// Each test uses its own namespace, so they run in parallel.
@Suite struct KubeIntegrationTests {
    static let howToStart = """
    AUTOGLM_TEST_KUBECONFIG is not set, so the Kubernetes integration tests cannot run. Start the loopback testbed with
      bash scripts/k8s-testbed.sh build   # once, ~8 min
      export AUTOGLM_TEST_KUBECONFIG="$(bash scripts/k8s-testbed.sh start)"
    then run the tests again (bash scripts/k8s-testbed.sh stop afterwards). CI always sets it.
    """

    static func kubeconfig() throws -> String {
        let path = ProcessInfo.processInfo.environment["AUTOGLM_TEST_KUBECONFIG"]
        return try #require(path.flatMap { $0.isEmpty ? nil : $0 }, Comment(rawValue: howToStart))
    }

    static func uniqueNamespace(_ prefix: String) -> String {
        "autoglm-\(prefix)-" + String(UUID().uuidString.lowercased().prefix(8))
    }

    static func spec(image: String, replicas: Int = 2) throws -> Spec {
        try SpecLoader.load(yaml: """
        apiVersion: autoglm/v1
        name: itest
        model: {ref: gemma3-270m}
        image: \(image)
        replicas: \(replicas)
        resources: {cpu: 100m, memory: 128Mi}
        rollout: {progressDeadlineSeconds: 15}
        """, file: "itest.yaml", environment: nil, variables: [:]).spec
    }

    /// Runs `body` with a client for a fresh namespace; removes the namespace afterwards.
    static func withNamespace(_ prefix: String, _ body: (KubeClient, String, KubeVersion) async throws -> Void) async throws {
        let ns = uniqueNamespace(prefix)
        let config = try KubeConfigLoader.load(kubeconfig: try kubeconfig(), namespace: ns)
        let client = try KubeClient(config: config)
        do {
            try await client.createNamespace(ns)
            let (_, version) = try await client.serverVersion()
            try await body(client, ns, version)
        } catch {
            try? await client.deleteNamespace(ns)
            await client.shutdown()
            throw error
        }
        try? await client.deleteNamespace(ns)
        await client.shutdown()
    }

    static var fastOptions: KubeDeployOptions {
        var o = KubeDeployOptions()
        o.pollIntervalMilliseconds = 500
        o.timeoutSeconds = 120
        return o
    }

    @Test(.timeLimit(.minutes(3)))
    func healthyThenBadImageRollsBackAutomatically() async throws {
        try await Self.withNamespace("rollback") { client, ns, kv in
            let events = EventLog()
            let deployer = KubeDeployer(client: client, namespace: ns, progress: events.record)
            let v1 = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:v1"), options: RenderOptions(kubeVersion: kv))

            let first = try await deployer.apply(v1.objects, options: Self.fastOptions)
            #expect(first.succeeded, "\(first.summary)")
            #expect(first.revision == 1)
            #expect(first.previousRevision == nil)
            #expect(first.objects.allSatisfy { $0.hasSuffix("created") }, "\(first.objects)")
            let healthy = try await deployer.status("itest")
            #expect(healthy.snapshot.state == .complete)
            #expect(healthy.snapshot.counts.ready == 2)
            #expect(events.lines.contains { $0.contains("rolled out") })

            let bad = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:bad-v2"), options: RenderOptions(kubeVersion: kv))
            let second = try await deployer.apply(bad.objects, options: Self.fastOptions)
            #expect(!second.succeeded)
            #expect(second.previousRevision == 1)
            #expect(second.revision == 2)
            guard case .rolledBack(let failure, let restored, let live) = second.outcome else {
                Issue.record("expected an automatic rollback, got \(second.outcome)")
                return
            }
            #expect(failure.reason == "ProgressDeadlineExceeded")
            #expect(restored == 1)
            #expect(live == 3)
            #expect(!failure.pods.isEmpty)
            #expect(failure.pods.allSatisfy { !$0.ready && $0.images == ["registry.invalid/autoglm:bad-v2"] }, "\(failure.pods)")
            #expect(second.summary.contains("rolled back automatically"))
            #expect(second.summary.contains(failure.pods.first?.pod ?? "?"))
            #expect(events.lines.contains { $0.contains("rolling back to revision 1") })

            // v1's template is live again, with every replica ready.
            let after = try await deployer.status("itest")
            #expect(after.snapshot.state == .complete)
            #expect(after.snapshot.images == ["registry.invalid/autoglm:v1"])
            #expect(after.snapshot.counts.ready == 2 && after.snapshot.counts.updated == 2 && after.snapshot.counts.current == 2)
            #expect(after.history.map { $0.revision } == [3, 2])
            // ... and so is v1's configuration: the template mounts v1's ConfigMap, unchanged.
            let v1Config = try #require(v1.objects.first { $0.kind == "ConfigMap" })
            let liveConfig = try await Self.liveConfig(client, ns)
            #expect(liveConfig.name == v1Config.name)
            #expect(liveConfig.data == JSONValue(v1Config.value)["data"])
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func clientSideApplyManualRollbackAndDelete() async throws {
        try await Self.withNamespace("manual") { client, ns, kv in
            let deployer = KubeDeployer(client: client, namespace: ns)
            var options = Self.fastOptions
            options.applyMode = .clientSide
            let v1 = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:v1", replicas: 1), options: RenderOptions(kubeVersion: kv))
            let v2 = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:v2", replicas: 1), options: RenderOptions(kubeVersion: kv))
            let a = try await deployer.apply(v1.objects, options: options)
            #expect(a.succeeded && a.mode == .clientSide && a.revision == 1, "\(a.summary)")
            let b = try await deployer.apply(v2.objects, options: options)
            #expect(b.succeeded && b.revision == 2, "\(b.summary)")
            #expect(b.objects.contains("deployment/itest configured"))
            // Replacing twice more with the same objects changes no revision.
            let c = try await deployer.apply(v2.objects, options: options)
            #expect(c.succeeded && c.revision == 2)

            let rb = try await deployer.rollback("itest", options: options)
            let v1Config = try #require(v1.objects.first { $0.kind == "ConfigMap" }).name
            #expect(rb == RollbackReport(fromRevision: 2, toRevision: 1, liveRevision: 3, configMaps: [v1Config]))
            let s = try await deployer.status("itest")
            #expect(s.snapshot.images == ["registry.invalid/autoglm:v1"] && s.snapshot.counts.ready == 1)
            #expect(s.summary.contains("revision:   3"))

            do throws(KubeError) {
                _ = try await deployer.rollback("itest", toRevision: 9, options: options)
                Issue.record("expected revisionNotFound")
            } catch {
                #expect(error == .revisionNotFound(deployment: "itest", revision: 9, available: [3, 2]))
            }

            let deleted = try await deployer.delete(v2.objects)
            #expect(deleted.allSatisfy { $0.hasSuffix(" deleted") }, "\(deleted)")
            #expect(try await client.getIfExists("/apis/apps/v1/namespaces/\(ns)/deployments/itest") == nil)
            let again = try await deployer.delete(v2.objects)
            #expect(again.allSatisfy { $0.hasSuffix(" not found") })
            do throws(KubeError) {
                _ = try await deployer.status("itest")
                Issue.record("expected notFound")
            } catch {
                #expect(error.description.contains("deployment/itest not found"))
            }
        }
    }

    @Test func wrongTokenGivesAClear401() async throws {
        var config = try KubeConfigLoader.load(kubeconfig: try Self.kubeconfig())
        config.auth = .bearerToken("not-the-right-token")
        let client = try KubeClient(config: config)
        defer { Task { await client.shutdown() } }
        do throws(KubeError) {
            _ = try await KubeDeployer(client: client, namespace: "default").apply([], options: Self.fastOptions)
            Issue.record("expected 401")
        } catch {
            guard case .unauthorized(let server, _, _) = error else { Issue.record("got \(error)"); return }
            #expect(server == config.server)
            #expect(error.description.contains("401 Unauthorized"))
            #expect(error.description.contains("check the token or client certificate"))
        }
    }

    @Test func stoppedAPIServerGivesAConnectionErrorWithoutHanging() async throws {
        var config = try KubeConfigLoader.load(kubeconfig: try Self.kubeconfig())
        // The testbed's own credentials and CA, but a port where no API server runs (any more).
        config.server = "https://127.0.0.1:\(try TestSockets.closedPort())"
        let client = try KubeClient(config: config, requestTimeoutSeconds: 60)
        do throws(KubeError) {
            _ = try await KubeDeployer(client: client).status("itest")
            Issue.record("expected a connection error")
        } catch {
            #expect(error.description.contains("cannot connect to the Kubernetes API server at \(config.server)"), "\(error)")
        }
        await client.shutdown()
    }

    @Test(.timeLimit(.minutes(3)))
    func cliApplyStatusRollbackDelete() async throws {
        let kubeconfig = try Self.kubeconfig()
        let binary = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("autoglm").path
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "build the CLI first: swift build -c release --product autoglm (scripts/test.sh does)")
        let ns = Self.uniqueNamespace("cli")
        let dir = try kubeTempDir([
            "good.yaml": "apiVersion: autoglm/v1\nname: cli\nmodel: {ref: gemma3-270m}\nimage: registry.invalid/autoglm:v1\nreplicas: 1\nrollout: {progressDeadlineSeconds: 15}\n",
            "bad.yaml": "apiVersion: autoglm/v1\nname: cli\nmodel: {ref: gemma3-270m}\nimage: registry.invalid/autoglm:broken\nreplicas: 1\nrollout: {progressDeadlineSeconds: 15}\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--kubeconfig", kubeconfig, "-n", ns]
        defer { _ = try? runCLI(binary, ["deploy", "delete", dir + "/good.yaml"] + common) }

        let up = try runCLI(binary, ["deploy", "apply", dir + "/good.yaml", "--create-namespace"] + common)
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("rolled out revision 1"), "\(up.stdout)")
        #expect(up.stderr.contains("namespace/\(ns) created"))

        let bad = try runCLI(binary, ["deploy", "apply", dir + "/bad.yaml"] + common)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("ProgressDeadlineExceeded"), "\(bad.stderr)")
        #expect(bad.stderr.contains("registry.invalid/autoglm:broken"))
        #expect(bad.stderr.contains("rolled back automatically to the pod template of revision 1"))

        let st = try runCLI(binary, ["deploy", "status", dir + "/good.yaml"] + common)
        #expect(st.status == 0, "\(st.stderr)")
        #expect(st.stdout.contains("image:      registry.invalid/autoglm:v1"), "\(st.stdout)")
        #expect(st.stdout.contains("1 ready"))

        let rb = try runCLI(binary, ["deploy", "rollback", "--name", "cli", "--to-revision", "3"] + common)
        #expect(rb.status == 0, "\(rb.stderr)")

        let unauthorized = try runCLI(binary, ["deploy", "status", "--name", "cli", "--kubeconfig", dir + "/nonexistent"])
        #expect(unauthorized.status == 1)
        #expect(unauthorized.stderr.contains(dir + "/nonexistent"))

        let del = try runCLI(binary, ["deploy", "delete", dir + "/good.yaml"] + common)
        #expect(del.status == 0, "\(del.stderr)")
        #expect(del.stderr.contains("deployment/cli deleted"))
        let cfg = try KubeConfigLoader.load(kubeconfig: kubeconfig)
        try? await KubeClient.with(cfg) { c throws(KubeError) in try await c.deleteNamespace(ns) }
    }
}

/// Collects progress events (thread-safe).
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var lines: [String] { lock.withLock { stored } }
    func record(_ e: KubeEvent) {
        let line: String
        switch e {
        case .applied(let s), .note(let s), .rollingBack(let s): line = s
        case .rollout(let snap): line = snap.line
        }
        lock.withLock { stored.append(line) }
    }
}

struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func runCLI(_ binary: String, _ args: [String]) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let errBox = EventLog()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        let data = err.fileHandleForReading.readDataToEndOfFile()
        errBox.record(.note(String(decoding: data, as: UTF8.self)))
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: errBox.lines.joined())
}
