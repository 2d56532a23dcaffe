import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// The rendered HPA and prometheus-adapter rules against the real control plane's HPA controller
/// (sync period 5 s) and the test bed's custom-metrics adapter (scripts/k8s-testbed/metrics-adapter.py,
/// behind the aggregation layer), which computes the Pods metric from the rendered rules ConfigMap.
/// The pods of the test bed's fake kubelet run nothing, so the series come from the adapter's
/// pod-independent source: a ConfigMap `autoglm-test-metrics` whose `metrics` text every pod is
/// taken to export.
extension KubeIntegrationTests {
    static func scaledSpec() throws -> Spec {
        try SpecLoader.load(yaml: """
        apiVersion: autoglm/v1
        name: scaled
        model: {ref: gemma3-270m}
        image: registry.invalid/autoglm:v1
        resources: {cpu: 100m, memory: 128Mi}
        rollout: {progressDeadlineSeconds: 15}
        autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 3, metric: queue, target: 4, scaleDownStabilization: 0s}
        """, file: "scaled.yaml", environment: nil, variables: [:]).spec
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
            let spec = try Self.scaledSpec()
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
}
