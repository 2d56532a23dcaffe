import Foundation
import Synchronization
import Testing
@testable import Spec
@testable import Deploy

/// The rendered HPA and prometheus-adapter rules against the real control plane's HPA controller
/// (sync period 5 s) and the test bed's custom-metrics adapter (scripts/k8s-testbed/metrics-adapter.py,
/// behind the aggregation layer), which computes the Pods metric from the rendered rules ConfigMap.
/// The first test feeds the adapter from its pod-independent source (a ConfigMap
/// `autoglm-test-metrics` whose `metrics` text every pod is taken to export), so the HPA's
/// arithmetic is exact; the second reads the pods' own /metrics under real load.
extension KubeIntegrationTests {
    /// The integration spec (a pod that really runs) with autoscaling min 1, max 3 on `metric`.
    static func scaledSpec(metric: String, target: Int) throws -> Spec {
        let yaml = try Self.yaml(name: "scaled", image: "registry.invalid/autoglm:v1", replicas: 1, deadline: 240) + """
        autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 3, metric: \(metric), target: \(target), scaleDownStabilization: 0s}

        """
        return try SpecLoader.load(yaml: yaml, file: "scaled.yaml", environment: nil, variables: [:]).spec
    }

    static func setTestMetrics(_ client: KubeClient, _ ns: String, _ text: String, create: Bool) async throws {
        let body: JSONValue = [
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": ["name": "autoglm-test-metrics"],
            "data": ["metrics": .string(text)],
        ]
        if create {
            _ = try await client.request("POST", "/api/v1/namespaces/\(ns)/configmaps", json: body)
        } else {
            _ = try await client.request("PUT", "/api/v1/namespaces/\(ns)/configmaps/autoglm-test-metrics", json: body)
        }
    }

    /// Polls the HPA (its autoscaling/v2beta2 view, which v1.20 serves) until `done` holds or
    /// `seconds` pass; returns the last HPA read.
    static func waitHPA(_ client: KubeClient, _ ns: String, seconds: Int,
                        _ done: (JSONValue) -> Bool) async throws -> JSONValue {
        var last: JSONValue = .null
        for _ in 0..<(seconds * 2) {
            last = try await client.get("/apis/autoscaling/v2beta2/namespaces/\(ns)/horizontalpodautoscalers/scaled")
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(500))
        }
        return last
    }

    static func condition(_ hpa: JSONValue, _ type: String) -> String? {
        hpa.at("status", "conditions")?.array?.first { $0["type"]?.string == type }?["status"]?.string
    }

    @Test(.timeLimit(.minutes(4)))
    func hpaReadsTheRenderedMetricThroughTheAdapterAndScales() async throws {
        try await Self.withNamespace("hpa") { client, ns, kv in
            let spec = try Self.scaledSpec(metric: "queue", target: 4)
            let rendered = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: kv))
            let pods = try #require(KubeRenderer.podsScalingMetric(.queue))
            // 10 waiting requests per pod against a target of 4: the HPA wants ceil(1 × 10 / 4) = 3.
            try await Self.setTestMetrics(client, ns, "\(pods.series){model_name=\"m\"} 10\n", create: true)
            let deployer = KubeDeployer(client: client, namespace: ns, progress: { _ in })
            let applied = try await deployer.apply(rendered.objects, options: Self.fastOptions)
            #expect(applied.succeeded, "\(applied.summary)")
            #expect(applied.objects.contains { $0.contains("scaled-adapter-rules") }, "\(applied.objects)")

            let up = try await Self.waitHPA(client, ns, seconds: 90) { ($0.at("status", "currentReplicas")?.int ?? 0) >= 3 }
            #expect(Self.condition(up, "ScalingActive") == "True", "\(up)")
            let current = up.at("status", "currentMetrics")?.array?.first
            #expect(current?.at("pods", "metric", "name")?.string == pods.metricName, "\(up)")
            #expect(current?.at("pods", "current", "averageValue")?.string == "10", "\(up)")
            #expect(up.at("status", "desiredReplicas")?.int == 3, "\(up)")
            let dep = try await client.get("/apis/apps/v1/namespaces/\(ns)/deployments/scaled")
            #expect(dep.at("spec", "replicas")?.int == 3)

            // The queue empties: back to minReplicas (scaleDownStabilization 0s).
            try await Self.setTestMetrics(client, ns, "\(pods.series){model_name=\"m\"} 0\n", create: false)
            let down = try await Self.waitHPA(client, ns, seconds: 90) {
                $0.at("status", "desiredReplicas")?.int == 1 && $0.at("status", "currentReplicas")?.int == 1
            }
            #expect(down.at("status", "currentReplicas")?.int == 1, "\(down)")
            #expect(down.at("status", "currentMetrics")?.array?.first?.at("pods", "current", "averageValue")?.string == "0", "\(down)")
        }
    }

    /// End to end: real pods (the test bed's kubelet), the rps metric read by the adapter from
    /// each pod's /metrics through the pod proxy with the rendered rule's meaning (rate of
    /// autoglm:requests_received_total over 1m), load through the Service proxy: 1 → ≥ 2 replicas
    /// under load, back to 1 once the rate window has emptied.
    @Test(.timeLimit(.minutes(8)))
    func loadThroughTheServiceScalesOnRPSAndBack() async throws {
        try await Self.withNamespace("hpa-e2e") { client, ns, kv in
            let spec = try Self.scaledSpec(metric: "rps", target: 1)
            let rendered = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: kv))
            let pods = try #require(KubeRenderer.podsScalingMetric(.rps))
            let deployer = KubeDeployer(client: client, namespace: ns, progress: { _ in })
            let applied = try await deployer.apply(rendered.objects, options: Self.fastOptions)
            #expect(applied.succeeded, "\(applied.summary)")
            guard applied.succeeded else { return }

            // ~2-4 requests/s against a target of 1 per pod, until the HPA scales (or 4 minutes).
            let path = KubeClient.proxyPath(.service("scaled", port: String(spec.server.port)), namespace: ns, path: "/v1/completions")
            let body = Array(#"{"prompt": "Hi", "max_tokens": 1}"#.utf8)
            let stop = StopFlag()
            let load = Task {
                await withTaskGroup(of: Void.self) { g in
                    for _ in 0..<2 {
                        g.addTask {
                            while !stop.isSet {
                                _ = try? await client.send("POST", path, body: body, contentType: "application/json", timeoutSeconds: 30)
                                try? await Task.sleep(for: .milliseconds(200))
                            }
                        }
                    }
                }
            }
            let up = try await Self.waitHPA(client, ns, seconds: 240) { ($0.at("status", "desiredReplicas")?.int ?? 0) >= 2 }
            stop.set()
            await load.value
            #expect((up.at("status", "desiredReplicas")?.int ?? 0) >= 2, "\(up)")
            #expect(Self.condition(up, "ScalingActive") == "True", "\(up)")
            #expect(up.at("status", "currentMetrics")?.array?.first?.at("pods", "metric", "name")?.string == pods.metricName, "\(up)")
            let dep = try await client.get("/apis/apps/v1/namespaces/\(ns)/deployments/scaled")
            #expect((dep.at("spec", "replicas")?.int ?? 0) >= 2, "\(dep)")

            // No load: the 1m rate falls to 0, the HPA (stabilization 0s) goes back to 1.
            let down = try await Self.waitHPA(client, ns, seconds: 180) { $0.at("status", "desiredReplicas")?.int == 1 }
            #expect(down.at("status", "desiredReplicas")?.int == 1, "\(down)")
        }
    }
}

/// A flag the load tasks poll.
final class StopFlag: Sendable {
    private let state = Mutex(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}
