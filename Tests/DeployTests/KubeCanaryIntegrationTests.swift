import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// Canary releases on the test cluster with running pods (see KubeIntegrationTests for the test
/// bed): apply v1 → v1 pods answer; a changed model version with rollout.canaryPercent runs as a
/// canary, is judged from the pods' /metrics and promoted; a canary whose requests fail (an
/// OpenAI-compatible upstream that answers 500, the injected fault) is aborted with the stable
/// set untouched; `rollback` after the model-version change serves the previous version again.
@Suite struct KubeCanaryIntegrationTests {
    /// The spec: model version `version`, canary at 50% (one canary pod beside the one stable
    /// pod), a short analysis with a loose latency bound (the machine is shared and noisy: this
    /// test is about errors, not speed). `upstream`: the openai backend in front of that URL.
    static func spec(version: String, upstream: String? = nil) throws -> Spec {
        let backend = upstream.map { "{type: openai, url: '\($0)'}" } ?? "{threads: 1, maxSeqs: 2, kvCacheMB: 32, contextLength: 256}"
        let yaml = """
        apiVersion: autoglm/v1
        name: itest
        model: {ref: \(try KubeIntegrationTests.model()), version: "\(version)"}
        backend: \(backend)
        image: registry.invalid/autoglm:v1
        replicas: 1
        resources: {cpu: 100m, memory: 256Mi}
        probes:
          startup: {periodSeconds: 1, failureThreshold: 600}
          readiness: {periodSeconds: 1}
        server: {drainTimeoutSeconds: 2}
        rollout:
          progressDeadlineSeconds: 240
          canaryPercent: 50
          analysis: {minRequests: 4, durationSeconds: 3, maxErrorRate: 0.25, maxTTFTRatio: 100, maxTPOTRatio: 100}

        """
        return try SpecLoader.load(yaml: yaml, file: "canary.yaml", environment: nil, variables: [:]).spec
    }

    /// Sends small completions through the Service (the API server's service proxy picks an
    /// endpoint per request, so both tracks get traffic) until cancelled.
    static func traffic(_ client: KubeClient, _ ns: String, model: String) -> Task<Int, Never> {
        Task {
            var sent = 0
            let body = JSONValue.object(["model": .string(model), "prompt": .string("Hello"), "max_tokens": .int(2), "temperature": .int(0)])
            let path = KubeClient.proxyPath(.service("itest", port: "8080"), namespace: ns, path: "/v1/completions")
            while !Task.isCancelled {
                _ = try? await client.send("POST", path, body: body.bytes, contentType: "application/json")
                sent += 1
                try? await Task.sleep(for: .milliseconds(100))
            }
            return sent
        }
    }

    /// The registry versions each stable pod serves (`/v1/registry/models/ID/versions` through the
    /// pod proxy), one set per pod.
    static func servedVersions(_ client: KubeClient, _ ns: String) async throws -> [Set<String>] {
        let id = try KubeIntegrationTests.modelID()
        var out: [Set<String>] = []
        for p in try await KubeIntegrationTests.pods(client, ns) {
            guard let name = p.at("metadata", "name")?.string,
                  p.at("metadata", "labels", KubeCanary.trackLabel) == nil else { continue }
            let r = try await client.proxyGet(.pod(name, port: 8080), namespace: ns, path: "/v1/registry/models/\(id)/versions")
            out.append(Set((r.json?["data"]?.array ?? []).compactMap { $0["version"]?.string }))
        }
        return out
    }

    /// A host address the pods can reach (not loopback: each pod has its own network namespace).
    static func hostAddress() throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "hostname -I | tr ' ' '\\n' | grep -E '^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$' | grep -v '^127\\.' | head -n1"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        return try #require(out.isEmpty ? nil : out, "this machine has no non-loopback IPv4 address for the pods to reach")
    }

    /// scripts/fake-openai-backend.py answering 500 to every completion, on all addresses.
    static func failingUpstream(model: String) throws -> (Process, port: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Fixture.repoRoot + "/scripts/fake-openai-backend.py", "--host", "0.0.0.0", "--port", "0",
                       "--error-rate", "1", "--model", model]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice   // not the test runner's pipe: it waits for that to close
        try p.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        let port = try #require(text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                                "fake backend said: \(text)")
        return (p, port)
    }

    @Test(.timeLimit(.minutes(12)))
    func canaryPromotedThenAbortedThenRollbackRestoresTheModelVersion() async throws {
        try await KubeIntegrationTests.withNamespace("canary") { client, ns, kv in
            let log = EventLog()
            let deployer = KubeDeployer(client: client, namespace: ns) { log.record($0) }
            let model = try KubeIntegrationTests.modelID()
            func options(_ spec: Spec) throws -> KubeDeployOptions {
                var o = KubeIntegrationTests.fastOptions
                var c = try #require(CanaryOptions(spec: spec))
                c.intervalMilliseconds = 1000
                c.timeoutSeconds = 240
                o.canary = c
                return o
            }

            // v1: the first apply has no stable set to compare with: a plain rollout.
            let s1 = try Self.spec(version: "1.0.0")
            let a = try await deployer.apply(KubeRenderer.render(s1, options: RenderOptions(kubeVersion: kv)).objects, options: options(s1))
            try #require(a.succeeded, "\(a.summary)")
            #expect(a.canary == nil && a.revision == 1)
            #expect(try await Self.servedVersions(client, ns) == [["1.0.0"]])

            // v2 (model version 2.0.0): canary, traffic, analysis, promotion.
            let s2 = try Self.spec(version: "2.0.0")
            let load2 = Self.traffic(client, ns, model: model)
            let b = try await deployer.apply(KubeRenderer.render(s2, options: RenderOptions(kubeVersion: kv)).objects, options: options(s2))
            load2.cancel()
            _ = await load2.value
            try #require(b.succeeded, "\(b.summary)\n\(log.lines.suffix(20).joined(separator: "\n"))")
            let verdict = try #require(b.canary)
            #expect(verdict.contains("the canary passed after"), "\(verdict)")
            #expect(b.revision == 2)
            #expect(b.objects.contains("deployment/itest-canary deleted (promoted)"), "\(b.objects)")
            #expect(log.lines.contains { $0.hasPrefix("canary: deployment/itest-canary with 1 of 2 pods (50% of the Service's endpoints") }, "\(log.lines)")
            #expect(try await client.getIfExists("/apis/apps/v1/namespaces/\(ns)/deployments/itest-canary") == nil)
            let promoted = try await KubeIntegrationTests.eventually(60) { try await Self.servedVersions(client, ns) == [["2.0.0"]] }
            let servedAfterPromotion = try await Self.servedVersions(client, ns)
            #expect(promoted, "\(servedAfterPromotion)")

            // v3: the same model behind an upstream that fails every completion: aborted.
            let (upstream, port) = try Self.failingUpstream(model: model)
            // SIGKILL: children of the test process have been seen to outlive a SIGTERM here.
            defer { kill(upstream.processIdentifier, SIGKILL); upstream.waitUntilExit() }
            let s3 = try Self.spec(version: "3.0.0", upstream: "http://\(try Self.hostAddress()):\(port)/v1")
            let before = try await deployer.status("itest")
            let load3 = Self.traffic(client, ns, model: model)
            let c = try await deployer.apply(KubeRenderer.render(s3, options: RenderOptions(kubeVersion: kv)).objects, options: options(s3))
            load3.cancel()
            _ = await load3.value
            #expect(!c.succeeded)
            guard case .canaryAborted(let reason) = c.outcome else {
                Issue.record("expected canaryAborted, got \(c.summary)")
                return
            }
            #expect(reason.contains("the canary failed") && reason.contains("over its failure budget of 1"), "\(reason)")
            #expect(c.summary.contains("the stable set was not changed (revision 2)"), "\(c.summary)")
            #expect(c.undone.contains("deployment/itest-canary deleted (the canary)"), "\(c.undone)")
            #expect(c.undone.contains { $0.hasPrefix("configmap/itest-config-") }, "v3's ConfigMap was taken back: \(c.undone)")
            #expect(try await client.getIfExists("/apis/apps/v1/namespaces/\(ns)/deployments/itest-canary") == nil)
            let after = try await deployer.status("itest")
            #expect(after.snapshot.revision == 2 && after.snapshot.images == before.snapshot.images && after.canary == nil)
            #expect(try await Self.servedVersions(client, ns) == [["2.0.0"]])

            // Manual rollback after the model-version change: the pods serve 1.0.0 again.
            let rb = try await deployer.rollback("itest", options: KubeIntegrationTests.fastOptions)
            #expect(rb.toRevision == 1, "\(rb)")
            let restored = try await KubeIntegrationTests.eventually(60) { try await Self.servedVersions(client, ns) == [["1.0.0"]] }
            let servedAfterRollback = try await Self.servedVersions(client, ns)
            #expect(restored, "\(servedAfterRollback)")

            let deleted = try await deployer.delete(KubeRenderer.render(s1, options: RenderOptions(kubeVersion: kv)).objects)
            #expect(!deleted.contains { $0.contains("itest-canary") }, "no canary was left to delete: \(deleted)")
        }
    }
}
