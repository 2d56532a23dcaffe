import Foundation
import Testing
@testable import Spec
import Deploy

/// Against a real control plane (kube-apiserver, controller-manager, scheduler v1.20 and
/// scripts/k8s-testbed/kubelet.py, whose pods really run here as processes, one network namespace
/// each): start it with scripts/k8s-testbed.sh and point AUTOGLM_TEST_KUBECONFIG at its kubeconfig.
/// Pods of the autoglm image run $AUTOGLM_BIN (the kubelet's environment): their init container
/// pulls the local gemma3-270m GGUF, the server loads it. Each test uses its own namespace, so they
/// run in parallel.
@Suite struct KubeIntegrationTests {
    static let howToStart = """
    AUTOGLM_TEST_KUBECONFIG is not set, so the Kubernetes integration tests cannot run. Start the loopback testbed with
      bash scripts/k8s-testbed.sh build   # once, ~8 min
      export AUTOGLM_BIN="$(swift build -c release --show-bin-path)/autoglm"   # what the pods run
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

    /// The GGUF the pods serve (their init container's `autoglm pull` registers it).
    static func model() throws -> String {
        let dir = ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
        let path = dir + "/gemma3-270m-q4_k_m.gguf"
        try #require(FileManager.default.fileExists(atPath: path), "model \(path) is missing: run scripts/fetch-models.sh (CI does)")
        return path
    }

    /// The model id the server registers and lists for `model()`: the file's name without `.gguf`.
    static func modelID() throws -> String {
        URL(fileURLWithPath: try model()).deletingPathExtension().lastPathComponent
    }

    /// The spec's YAML: a pod that runs (small engine, probes every second so readiness follows
    /// the model load closely, a short drain). `deadline` is the rollout's progress deadline.
    static func yaml(name: String = "itest", image: String, replicas: Int, deadline: Int) throws -> String {
        """
        apiVersion: autoglm/v1
        name: \(name)
        model: {ref: \(try model()), version: "1.0.0"}
        backend: {threads: 1, maxSeqs: 2, kvCacheMB: 32, contextLength: 256}
        image: \(image)
        replicas: \(replicas)
        resources: {cpu: 100m, memory: 256Mi}
        probes:
          startup: {periodSeconds: 1, failureThreshold: 600}
          readiness: {periodSeconds: 1}
        server: {drainTimeoutSeconds: 2}
        rollout: {progressDeadlineSeconds: \(deadline)}

        """
    }

    /// A healthy rollout gets `deadline` 240 s (pods pull and load a model on a busy machine);
    /// one expected to fail keeps the deadline short.
    static func spec(image: String, replicas: Int = 2, deadline: Int = 240) throws -> Spec {
        try SpecLoader.load(yaml: try yaml(image: image, replicas: replicas, deadline: deadline), file: "itest.yaml",
                            environment: nil, variables: [:]).spec
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
        o.timeoutSeconds = 300
        return o
    }

    /// The pods of deployment `name` (not terminating).
    static func pods(_ client: KubeClient, _ ns: String, _ name: String = "itest") async throws -> [JSONValue] {
        let list = try await client.get("/api/v1/namespaces/\(ns)/pods?labelSelector=app.kubernetes.io/instance%3D\(name)")
        return (list["items"]?.array ?? []).filter { $0.at("metadata", "deletionTimestamp") == nil }
    }

    /// Polls `condition` every 200 ms until it holds or `seconds` pass; returns whether it held.
    static func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return try await condition()
    }

    /// Processes on this machine started for pod `uid` (the testbed kubelet puts its uid in their environment).
    static func podProcesses(_ uid: String) -> [Int32] {
        let marker = Array("AUTOGLM_TESTBED_POD_UID=\(uid)".utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return env.split(separator: 0).contains { Array($0) == marker }
        }
    }

    /// Network namespaces of pod `uid` (the testbed kubelet names them BRIDGE-UID).
    static func podNetns(_ uid: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []).filter { $0.hasSuffix(uid) }
    }

    @Test(.timeLimit(.minutes(6)))
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

            let bad = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:bad-v2", deadline: 15),
                                          options: RenderOptions(kubeVersion: kv))
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
            // The image cannot be pulled: the kubelet says so, and the diagnosis passes it on.
            #expect(failure.pods.allSatisfy { p in
                p.reasons.contains { $0.contains("(ErrImagePull: ") || $0.contains("(ImagePullBackOff: ") }
            }, "\(failure.pods)")
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

    @Test(.timeLimit(.minutes(6)))
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

    /// The pods serve: Ready pods are the Service's endpoints, and the API server's service and
    /// pod proxies reach the server in them.
    @Test(.timeLimit(.minutes(6)))
    func podsServeThroughTheServiceAndPodProxies() async throws {
        try await Self.withNamespace("proxy") { client, ns, kv in
            let spec = try Self.spec(image: "registry.invalid/autoglm:v1", replicas: 2)
            let rendered = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: kv))
            let applied = try await KubeDeployer(client: client, namespace: ns).apply(rendered.objects, options: Self.fastOptions)
            try #require(applied.succeeded, "\(applied.summary)")

            let pods = try await Self.pods(client, ns)
            #expect(pods.count == 2)
            for p in pods {
                let conditions = (p.at("status", "conditions")?.array ?? []).map(KubeCondition.init)
                #expect(conditions.contains { $0.type == "Ready" && $0.status == "True" }, "\(p)")
            }
            let podIPs = Set(pods.compactMap { $0.at("status", "podIP")?.string })
            #expect(podIPs.count == 2, "\(pods.map { $0.at("status", "podIP") })")
            // The endpoints controller lists exactly the ready pods' IPs.
            var endpointIPs: Set<String> = []
            let listed = try await Self.eventually(30) {
                let ep = try await client.getIfExists("/api/v1/namespaces/\(ns)/endpoints/itest")
                endpointIPs = Set((ep?["subsets"]?.array ?? []).flatMap { ($0["addresses"]?.array ?? []).compactMap { $0["ip"]?.string } })
                return endpointIPs == podIPs
            }
            #expect(listed, "endpoints \(endpointIPs), pods \(podIPs)")

            let models = try await client.proxyGet(.service("itest", port: String(spec.server.port)), namespace: ns, path: "/v1/models")
            #expect(models.status == 200, "\(models.text)")
            let ids = (models.json?["data"]?.array ?? []).compactMap { $0["id"]?.string }
            #expect(ids == [try Self.modelID()], "\(models.text)")

            let pod = try #require(pods.first?.at("metadata", "name")?.string)
            let metrics = try await client.proxyGet(.pod(pod, port: spec.server.port), namespace: ns, path: "/metrics")
            #expect(metrics.status == 200, "\(metrics.text)")
            #expect(metrics.text.contains("autoglm:"), "\(metrics.text.prefix(500))")
            // A path the server does not have is the server's 404, passed through.
            let missing = try await client.proxyGet(.pod(pod, port: spec.server.port), namespace: ns, path: "/no-such-path")
            #expect(missing.status == 404)
        }
    }

    /// Deleting the deployment ends its pods: their processes exit and their network namespaces go.
    @Test(.timeLimit(.minutes(6)))
    func deletingTheDeploymentEndsThePodProcesses() async throws {
        try await Self.withNamespace("teardown") { client, ns, kv in
            let rendered = KubeRenderer.render(try Self.spec(image: "registry.invalid/autoglm:v1", replicas: 1),
                                               options: RenderOptions(kubeVersion: kv))
            let deployer = KubeDeployer(client: client, namespace: ns)
            let applied = try await deployer.apply(rendered.objects, options: Self.fastOptions)
            try #require(applied.succeeded, "\(applied.summary)")
            let pod = try #require(try await Self.pods(client, ns).first)
            let uid = try #require(pod.at("metadata", "uid")?.string)
            let name = try #require(pod.at("metadata", "name")?.string)
            // While it runs, its processes and its netns are there (the kubelet runs on this machine).
            try #require(!Self.podProcesses(uid).isEmpty,
                         "no process carries AUTOGLM_TESTBED_POD_UID=\(uid): is the test bed's kubelet (scripts/k8s-testbed/kubelet.py) running on this machine?")
            #expect(Self.podNetns(uid).count == 1)

            let deleted = try await deployer.delete(rendered.objects)
            #expect(deleted.contains("deployment/itest deleted"), "\(deleted)")
            // The garbage collector deletes the ReplicaSet and the pod; the kubelet stops the pod
            // (SIGTERM, the server drains and exits) and then deletes it for good.
            let gone = try await Self.eventually(120) {
                try await client.getIfExists("/api/v1/namespaces/\(ns)/pods/\(name)") == nil
            }
            #expect(gone, "pod \(name) still exists")
            #expect(Self.podProcesses(uid).isEmpty, "processes of pod \(uid) left: \(Self.podProcesses(uid))")
            #expect(Self.podNetns(uid).isEmpty, "netns of pod \(uid) left: \(Self.podNetns(uid))")
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

    @Test(.timeLimit(.minutes(6)))
    func cliApplyStatusRollbackDelete() async throws {
        let kubeconfig = try Self.kubeconfig()
        let binary = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("autoglm").path
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "build the CLI first: swift build -c release --product autoglm (scripts/test.sh does)")
        let ns = Self.uniqueNamespace("cli")
        let dir = try kubeTempDir([
            "good.yaml": try Self.yaml(name: "cli", image: "registry.invalid/autoglm:v1", replicas: 1, deadline: 240),
            "bad.yaml": try Self.yaml(name: "cli", image: "registry.invalid/autoglm:broken", replicas: 1, deadline: 15),
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
        case .applied(let s), .note(let s), .rollingBack(let s), .analysis(let s): line = s
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
