import Foundation
import Testing
import Yams
@testable import Spec
@testable import Deploy

/// What `deploy render` writes for `autoscaling`: the HPA and the prometheus-adapter rules that
/// make its Pods metric reachable, or a KEDA ScaledObject; the ttft_p95 metric; the spec keys.
/// (That each name exists in a real server's /metrics: ServerTests' AutoscalingMetricsTests.)
@Suite struct RenderAutoscalingTests {
    static func spec(_ autoscaling: String) throws -> Spec {
        try SpecLoader.load(yaml: minimal + "autoscaling: \(autoscaling)\n", file: "t.yaml", variables: [:]).spec
    }

    static func byKindAndName(_ spec: Spec) -> [String: YAMLValue] {
        var out: [String: YAMLValue] = [:]
        for o in KubeRenderer.render(spec).objects { out[o.kind + "/" + o.name] = o.value }
        return out
    }

    @Test func queueRendersTheHPAAndTheAdapterRuleThatServesItsMetric() throws {
        let o = Self.byKindAndName(try Self.spec("{enabled: true, maxReplicas: 3, metric: queue, target: 4}"))
        let hpa = try #require(o["HorizontalPodAutoscaler/demo"])
        guard case .list(let ms)? = hpa["spec"]?["metrics"] else { Issue.record("no metrics"); return }
        #expect(ms.first?["pods"]?["metric"]?["name"] == .string("autoglm:num_requests_waiting"))
        #expect(ms.first?["pods"]?["target"]?["averageValue"] == .string("4"))
        #expect(hpa["spec"]?["behavior"] == nil)  // Kubernetes' default scale-down window unless set
        guard case .string(let text)? = o["ConfigMap/demo-adapter-rules"]?["data"]?["config.yaml"] else {
            Issue.record("no adapter rules"); return
        }
        let config = try #require(try Yams.load(yaml: text) as? [String: Any])
        let rule = try #require((config["rules"] as? [[String: Any]])?.first)
        #expect(rule["seriesQuery"] as? String == #"autoglm:num_requests_waiting{namespace!="",pod!=""}"#)
        let overrides = (rule["resources"] as? [String: Any])?["overrides"] as? [String: [String: String]]
        #expect(overrides?["namespace"]?["resource"] == "namespace")
        #expect(overrides?["pod"]?["resource"] == "pod")
        let name = rule["name"] as? [String: String]
        #expect(name?["matches"] == "^autoglm:num_requests_waiting$")
        #expect(name?["as"] == "autoglm:num_requests_waiting")
        #expect(rule["metricsQuery"] as? String == "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)")
    }

    @Test func rpsIsTheRateOfTheArrivalCounter() throws {
        let m = try #require(KubeRenderer.podsScalingMetric(.rps))
        #expect(m.series == "autoglm:requests_received_total")
        #expect(m.metricName == "autoglm:requests_received_per_second")
        // The adapter's rename, applied as prometheus-adapter does (a regex over the series name):
        let re = try NSRegularExpression(pattern: m.nameMatches)
        let match = try #require(re.firstMatch(in: m.series, range: NSRange(m.series.startIndex..., in: m.series)))
        #expect(re.replacementString(for: match, in: m.series, offset: 0, template: m.nameAs.replacingOccurrences(of: "${1}", with: "$1"))
                == m.metricName)
        #expect(m.adapterQuery == "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)")
    }

    @Test func ttftP95TargetsMillisecondsAsASecondsQuantity() throws {
        let spec = try Self.spec("{enabled: true, maxReplicas: 4, metric: ttft_p95, target: 750, scaleDownStabilization: 30s}")
        #expect(spec.autoscaling?.metric == .ttftP95)
        #expect(spec.autoscaling?.scaleDownStabilizationSeconds == 30)
        let o = Self.byKindAndName(spec)
        let hpa = try #require(o["HorizontalPodAutoscaler/demo"])
        guard case .list(let ms)? = hpa["spec"]?["metrics"] else { Issue.record("no metrics"); return }
        #expect(ms.first?["pods"]?["metric"]?["name"] == .string("autoglm:time_to_first_token_seconds_p95"))
        #expect(ms.first?["pods"]?["target"]?["averageValue"] == .string("750m"))  // 0.75 s
        #expect(hpa["spec"]?["behavior"]?["scaleDown"]?["stabilizationWindowSeconds"] == .int(30))
        let m = try #require(KubeRenderer.podsScalingMetric(.ttftP95))
        #expect(m.series == "autoglm:time_to_first_token_seconds_bucket")
        #expect(m.adapterQuery == "histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (le, <<.GroupBy>>))")
        // `up` gets the same meaning as a rule: p95 TTFT above 0.75 s.
        let up = try #require(spec.autoscaling?.effectiveRules.first)
        #expect(up.metric == .ttftP95Seconds && up.threshold == 0.75 && up.comparison == .above)
    }

    @Test func kedaRendersAScaledObjectInsteadOfAnHPA() throws {
        let spec = try Self.spec("{enabled: true, minReplicas: 1, maxReplicas: 5, metric: rps, target: 8, provider: keda, prometheusURL: 'http://prom.monitoring.svc:9090', scaleDownStabilization: 1m}")
        let result = KubeRenderer.render(spec)
        #expect(!result.objects.contains { $0.kind == "HorizontalPodAutoscaler" })
        #expect(!result.objects.contains { $0.name == "demo-adapter-rules" })
        let so = try #require(result.objects.first { $0.kind == "ScaledObject" })
        #expect(so.apiVersion == "keda.sh/v1alpha1")
        let s = so.value["spec"]
        #expect(s?["scaleTargetRef"]?["name"] == .string("demo"))
        #expect(s?["minReplicaCount"] == .int(1))
        #expect(s?["maxReplicaCount"] == .int(5))
        #expect(s?["advanced"]?["horizontalPodAutoscalerConfig"]?["behavior"]?["scaleDown"]?["stabilizationWindowSeconds"] == .int(60))
        guard case .list(let triggers)? = s?["triggers"], let t = triggers.first else { Issue.record("no trigger"); return }
        #expect(t["type"] == .string("prometheus"))
        #expect(t["metricType"] == .string("AverageValue"))
        #expect(t["metadata"]?["serverAddress"] == .string("http://prom.monitoring.svc:9090"))
        #expect(t["metadata"]?["query"] == .string(#"sum(rate(autoglm:requests_received_total{service="demo"}[1m]))"#))
        #expect(t["metadata"]?["threshold"] == .string("8"))
        #expect(result.notes.contains { $0.contains("KEDA") })
        // The Deployment leaves replicas to the autoscaler as with an HPA.
        #expect(result.objects.first { $0.kind == "Deployment" }?.value["spec"]?["replicas"] == nil)

        let ttft = try Self.spec("{enabled: true, maxReplicas: 2, metric: ttft_p95, target: 1500, provider: keda}")
        let tt = try #require(KubeRenderer.render(ttft).objects.first { $0.kind == "ScaledObject" })
        guard case .list(let tts)? = tt.value["spec"]?["triggers"], let t2 = tts.first else { Issue.record("no trigger"); return }
        #expect(t2["metricType"] == .string("Value"))  // a p95 is compared as is, not divided by replicas
        #expect(t2["metadata"]?["threshold"] == .string("1.5"))
        #expect(t2["metadata"]?["serverAddress"] == .string(AutoscalingSpec.defaultPrometheusURL))
        #expect(t2["metadata"]?["query"] == .string(#"histogram_quantile(0.95, sum(rate(autoglm:time_to_first_token_seconds_bucket{service="demo"}[1m])) by (le))"#))

        let cpu = try SpecLoader.load(yaml: minimal + "resources: {cpu: '2'}\nautoscaling: {enabled: true, maxReplicas: 2, metric: cpu, target: 60, provider: keda}\n",
                                      file: "t.yaml", variables: [:]).spec
        let co = try #require(KubeRenderer.render(cpu).objects.first { $0.kind == "ScaledObject" })
        guard case .list(let cts)? = co.value["spec"]?["triggers"], let t3 = cts.first else { Issue.record("no trigger"); return }
        #expect(t3["type"] == .string("cpu"))
        #expect(t3["metricType"] == .string("Utilization"))
        #expect(t3["metadata"]?["value"] == .string("60"))
    }

    @Test func cpuNeedsNoAdapterRules() throws {
        let spec = try SpecLoader.load(yaml: minimal + "resources: {cpu: '2'}\nautoscaling: {enabled: true, maxReplicas: 2, metric: cpu}\n",
                                       file: "t.yaml", variables: [:]).spec
        let r = KubeRenderer.render(spec)
        #expect(r.objects.filter { $0.kind == "ConfigMap" }.count == 1)
        #expect(r.objects.contains { $0.kind == "HorizontalPodAutoscaler" })
    }

    @Test func millisecondsAsDecimalSeconds() {
        #expect(KubeRenderer.decimal(milliseconds: 1000) == "1")
        #expect(KubeRenderer.decimal(milliseconds: 1500) == "1.5")
        #expect(KubeRenderer.decimal(milliseconds: 250) == "0.25")
        #expect(KubeRenderer.decimal(milliseconds: 7) == "0.007")
        #expect(KubeRenderer.decimal(milliseconds: 12_340) == "12.34")
    }

    @Test func specKeysAreCheckedStrictly() {
        let bad = errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, provider: kedaa}\n")
        #expect(bad.count == 1 && bad[0].contains("autoscaling.provider") && bad[0].contains("prometheus-adapter"), "\(bad)")
        let url = errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, provider: keda, prometheusURL: 'prometheus:9090'}\n")
        #expect(url.count == 1 && url[0].contains("autoscaling.prometheusURL") && url[0].contains("http://"), "\(url)")
        let frac = errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, scaleDownStabilization: 1.5}\n")
        #expect(frac.count == 1 && frac[0].contains("whole seconds"), "\(frac)")
        let neg = errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, scaleDownStabilization: -5}\n")
        #expect(neg.count == 1 && neg[0].contains("must not be negative"), "\(neg)")
        let metric = errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, metric: ttft}\n")
        #expect(metric.count == 1 && metric[0].contains("ttft_p95"), "\(metric)")
        #expect(errors(minimal + "autoscaling: {enabled: true, maxReplicas: 2, metric: ttft_p95, target: 400, provider: keda, scaleDownStabilization: 2m}\n").isEmpty)
    }

    @Test func newKeysSurviveTheEncoderRoundTrip() throws {
        let spec = try Self.spec("{enabled: true, maxReplicas: 3, metric: ttft_p95, target: 900, provider: keda, prometheusURL: 'https://p.example:9090', scaleDownStabilization: 45s}")
        let yaml = YAMLEmitter.emit(SpecEncoder.value(spec))
        let back = try SpecLoader.load(yaml: yaml, file: "encoded.yaml", variables: [:]).spec
        #expect(back.autoscaling == spec.autoscaling)
    }
}
