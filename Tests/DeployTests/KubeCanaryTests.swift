import Core
import Foundation
import Testing
@testable import Deploy
import Spec

/// The pure parts of the Kubernetes canary: sizing, the canary object, reading the pods'
/// metrics (checked against Prometheus' own `histogram_quantile` through promtool), the tallies.
@Suite struct KubeCanaryTests {
    @Test func canaryReplicasAreTheClosestShare() {
        #expect(KubeCanary.replicas(stable: 1, percent: 50) == 1)
        #expect(KubeCanary.replicas(stable: 3, percent: 25) == 1)   // 1 of 4 = 25%
        #expect(KubeCanary.replicas(stable: 4, percent: 20) == 1)   // 1 of 5 = 20%
        #expect(KubeCanary.replicas(stable: 8, percent: 20) == 2)   // 2 of 10
        #expect(KubeCanary.replicas(stable: 2, percent: 10) == 1)   // at least one pod
        #expect(KubeCanary.replicas(stable: 1, percent: 75) == 3)   // 3 of 4 = 75%
        #expect(KubeCanary.share(stable: 3, canary: 1) == 25)
        #expect(KubeCanary.share(stable: 0, canary: 0) == 0)
    }

    @Test func theCanaryObjectAddsTheTrackEverywhereAndKeepsTheTemplate() throws {
        let spec = try SpecLoader.load(yaml: """
            apiVersion: autoglm/v1
            name: chat
            model: {ref: /m/model.gguf, version: "1.0.0"}
            replicas: 3
            rollout: {canaryPercent: 25}

            """, file: "t.yaml", environment: nil, variables: [:]).spec
        let d = try #require(KubeRenderer.render(spec).objects.first { $0.kind == "Deployment" })
        let stable = JSONValue(d.value)
        let canary = KubeCanary.canaryBody(stable, replicas: 1)
        #expect(canary.at("metadata", "name")?.string == "chat-canary")
        #expect(canary.at("spec", "replicas")?.int == 1)
        let labelSets = [("metadata", canary.at("metadata", "labels")), ("selector", canary.at("spec", "selector", "matchLabels")),
                         ("template", canary.at("spec", "template", "metadata", "labels"))]
        for (path, value) in labelSets {
            let labels = try #require(value?.object, "\(path)")
            #expect(labels[KubeCanary.trackLabel]?.string == "canary", "\(path)")
            // The stable set's selector labels are all there: the Service selects both tracks.
            for (k, v) in stable.at("spec", "selector", "matchLabels")?.object ?? [:] { #expect(labels[k] == v, "\(path) \(k)") }
        }
        // Same containers, volumes, config: only the labels differ.
        var template = canary.at("spec", "template")
        template?["metadata"]?["labels"] = stable.at("spec", "template", "metadata", "labels")
        #expect(template == stable.at("spec", "template"))
        #expect(CanaryOptions(spec: spec) == CanaryOptions(percent: 25, analysis: CanaryAnalysisSpec(), port: spec.server.port))
    }

    @Test func templateDigestFollowsTheTemplateOnly() throws {
        var a: JSONValue = .object(["metadata": .object(["name": .string("x")]),
                                    "spec": .object(["replicas": .int(2), "template": .object(["spec": .object(["c": .string("v1")])])])])
        let d1 = KubeCanary.templateDigest(a)
        a["spec"]?["replicas"] = .int(5)
        a["metadata"]?["annotations"] = .object([KubeCanary.templateDigestAnnotation: .string(d1)])
        #expect(KubeCanary.templateDigest(a) == d1)
        #expect(KubeCanary.recordedDigest(a) == d1)
        a["spec"]?["template"]?["spec"]?["c"] = .string("v2")
        #expect(KubeCanary.templateDigest(a) != d1)
    }

    @Test func parsesTheExpositionFormat() {
        let text = """
        # HELP autoglm:request_success_total Finished requests.
        # TYPE autoglm:request_success_total counter
        autoglm:request_success_total{model_name="m",finish_reason="stop"} 7
        autoglm:request_failure_total{model_name="a \\"quoted\\" \\\\ name\\n",reason="error"} 2 1700000000000
        autoglm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 9
        up 1e3
          spaced_metric   NaN
        bad{unterminated="x} 1
        novalue{a="b"}

        """
        let s = PrometheusText.parse(text)
        #expect(s.count == 5)
        #expect(s[0] == PromSample(name: "autoglm:request_success_total", labels: ["model_name": "m", "finish_reason": "stop"], value: 7))
        #expect(s[1].labels["model_name"] == "a \"quoted\" \\ name\n")
        #expect(s[1].value == 2)
        #expect(s[2].labels["le"] == "+Inf" && s[2].value == 9)
        #expect(s[3] == PromSample(name: "up", value: 1000))
        #expect(s[4].name == "spaced_metric" && s[4].value.isNaN)
    }

    /// Our quantile against Prometheus' `histogram_quantile`, evaluated by `promtool test rules`
    /// on the same buckets: promtool fails the test file when its value differs from ours.
    @Test func quantileAgreesWithPrometheus() throws {
        let cases: [(q: Double, buckets: [(Double, Double)])] = [
            (0.95, [(0.05, 3), (0.1, 10), (0.25, 40), (0.5, 90), (1, 99), (.infinity, 100)]),
            (0.5, [(0.05, 3), (0.1, 10), (0.25, 40), (0.5, 90), (1, 99), (.infinity, 100)]),
            (0.95, [(0.01, 0), (0.02, 0), (0.04, 17), (.infinity, 17)]),
            (0.99, [(0.1, 1), (0.2, 2), (.infinity, 50)]),          // rank in +Inf: the highest finite bound
            (0.95, [(0.5, 20), (.infinity, 20)]),                    // all in the first bucket
        ]
        var yaml = "rule_files: []\nevaluation_interval: 1m\ntests:\n"
        for (i, c) in cases.enumerated() {
            let ours = try #require(PrometheusText.quantile(c.q, buckets: c.buckets.map { (le: $0.0, count: $0.1) }))
            yaml += "  - interval: 1m\n    input_series:\n"
            for (le, n) in c.buckets {
                let bound = le == .infinity ? "+Inf" : "\(le)"
                yaml += "      - series: 'h\(i)_bucket{le=\"\(bound)\"}'\n        values: '0 \(Int(n))'\n"
            }
            yaml += "    promql_expr_test:\n      - expr: histogram_quantile(\(c.q), h\(i)_bucket)\n        eval_time: 1m\n"
            yaml += "        exp_samples:\n          - labels: '{}'\n            value: \(ours)\n"
        }
        #expect(PrometheusText.quantile(0.95, buckets: [(le: 0.1, count: 0), (le: .infinity, count: 0)]) == nil)
        #expect(PrometheusText.quantile(0.95, buckets: [(le: 0.1, count: 3)]) == nil)

        let dir = NSTemporaryDirectory() + "autoglm-quantile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try yaml.write(toFile: dir + "/q.yaml", atomically: true, encoding: .utf8)
        let run = try bash(["-c", "command -v promtool >/dev/null || { echo 'promtool is not on PATH (apt-get install prometheus; CI does)'; exit 3; }; promtool test rules \(dir)/q.yaml"])
        #expect(run.status == 0, "\(run.out)\n\(yaml)")
        // Not a rubber stamp: a wrong expected value fails.
        try yaml.replacingOccurrences(of: "value: ", with: "value: 1").write(toFile: dir + "/wrong.yaml", atomically: true, encoding: .utf8)
        #expect(try bash(["-c", "promtool test rules \(dir)/wrong.yaml"]).status != 0)
    }

    @Test func talliesCountSinceTheBaselineAcrossPodsAndRestarts() {
        let ttft = MetricNames.buckets(MetricNames.timeToFirstToken)
        func pod(success: Double, failed: Double, cancelled: Double, buckets: [(String, Double)]) -> KubeCanary.PodCounters {
            var s = [PromSample(name: MetricNames.requestSuccess, labels: ["finish_reason": "stop"], value: success),
                     PromSample(name: MetricNames.requestFailure, labels: ["reason": "error"], value: failed),
                     PromSample(name: MetricNames.requestFailure, labels: ["reason": "cancelled"], value: cancelled)]
            s += buckets.map { PromSample(name: ttft, labels: ["le": $0.0], value: $0.1) }
            return KubeCanary.counters(s)
        }
        let a0 = pod(success: 10, failed: 1, cancelled: 5, buckets: [("0.1", 5), ("1", 11), ("+Inf", 11)])
        let a1 = pod(success: 30, failed: 1, cancelled: 9, buckets: [("0.1", 5), ("1", 31), ("+Inf", 31)])
        #expect(a1.requests == 31 && a1.failed == 1)   // cancelled requests are not counted
        // Pod b restarted (its counters went down): all it has now counts.
        let b0 = pod(success: 50, failed: 0, cancelled: 0, buckets: [("0.1", 50), ("1", 50), ("+Inf", 50)])
        let b1 = pod(success: 4, failed: 2, cancelled: 0, buckets: [("0.1", 0), ("1", 0), ("+Inf", 6)])
        // Pod c appeared after the analysis began (no baseline).
        let c1 = pod(success: 0, failed: 0, cancelled: 0, buckets: [])
        let t = KubeCanary.tally(now: ["a": a1, "b": b1, "c": c1], baseline: ["a": a0, "b": b0])
        #expect(t.requests == 20 + 6)
        #expect(t.failed == 2)
        // Buckets since the baseline: a adds 20 in (0.1, 1], b adds 6 above 1 s: 26 in all, p95
        // rank 24.7 lands in +Inf → the highest finite bound, 1.
        #expect(t.ttftP95 == 1)
        #expect(t.tpotP95 == nil)
        let judged = CanaryJudge.judge(CanaryAnalysisSpec(), stable: t, canary: SetTally(requests: 3, failed: 3, ttftP95: nil, tpotP95: nil), elapsed: 1)
        if case .rollback = judged {} else { Issue.record("\(judged)") }
    }
}
