import Deploy
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Server
import Spec
import Testing
import Yams

/// The names the Kubernetes autoscaling objects of `deploy render` use (the HPA's Pods metric,
/// prometheus-adapter's rules, KEDA's PromQL) against what a real server's `/metrics` exports:
/// an autoscaler reading a name no server emits never acts.
@Suite(.serialized)
struct AutoscalingMetricsTests {
    static func spec(metric: ScalingMetric, provider: ScalingProvider) throws -> Spec {
        let yaml = """
        apiVersion: autoglm/v1
        kind: Deployment
        name: scaled
        model:
          ref: gemma3-270m
        image: registry.example.com/autoglm:1.0
        resources:
          cpu: '2'
          memory: 2Gi
        autoscaling:
          enabled: true
          minReplicas: 1
          maxReplicas: 3
          metric: \(metric.rawValue)
          provider: \(provider.rawValue)
        """
        return try SpecLoader.load(yaml: yaml, file: "scaled.yaml", variables: [:]).spec
    }

    /// Every series name in a Prometheus text exposition (`name{labels} value` or `name value`).
    static func seriesNames(_ text: String) -> Set<String> {
        var out = Set<String>()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) ?? line.endIndex
            out.insert(String(line[..<end]))
        }
        return out
    }

    /// The names prometheus-adapter exposes for a rule: its `name.matches` applied to every series
    /// that `seriesQuery` names, rewritten by `name.as` (`${1}` is the first group; empty `as`: `$0`).
    static func adapterExposed(_ rule: [String: Any], series: Set<String>) throws -> Set<String> {
        let name = try #require(rule["name"] as? [String: Any])
        let matches = try #require(name["matches"] as? String)
        let template = ((name["as"] as? String) ?? "$0").replacingOccurrences(of: "${1}", with: "$1")
        let re = try NSRegularExpression(pattern: matches)
        var out = Set<String>()
        for s in series {
            let r = NSRange(s.startIndex..., in: s)
            guard let m = re.firstMatch(in: s, range: r) else { continue }
            out.insert(re.replacementString(for: m, in: s, offset: 0, template: template))
        }
        return out
    }

    /// Metric names (`autoglm:…`) a PromQL expression or series selector refers to.
    static func referencedNames(_ promQL: String) throws -> [String] {
        let re = try NSRegularExpression(pattern: #"autoglm:[A-Za-z0-9_:]+"#)
        return re.matches(in: promQL, range: NSRange(promQL.startIndex..., in: promQL)).compactMap {
            Range($0.range, in: promQL).map { String(promQL[$0]) }
        }
    }

    static func objects(_ spec: Spec) -> [String: YAMLValue] {
        var out: [String: YAMLValue] = [:]
        for o in KubeRenderer.render(spec).objects { out[o.kind + "/" + o.name] = o.value }
        return out
    }

    /// Renders every Pods-metric spec, serves one completion through a real server, and checks
    /// each name the HPA, the adapter rules and the KEDA queries use against its `/metrics`.
    @Test func everyRenderedMetricNameIsExported() async throws {
        guard let server = try Fixture.server() else { return }
        server.scheduler.start()
        defer { server.scheduler.terminate() }
        let app = Application(router: server.buildRouter())
        let text: String = try await app.test(.router) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"prompt": "Hi", "max_tokens": 1}"#)) { r in
                    #expect(r.status == .ok)
                }
            }
            return try await client.execute(uri: "/metrics", method: .get) { r in String(buffer: r.body) }
        }
        let exported = Self.seriesNames(text)
        // The arrival counter counts both requests (the rps metric's source).
        #expect(text.contains(#"autoglm:requests_received_total{model_name="gemma3-test"} 2"#), "\(text)")

        var checked = 0
        for metric in ScalingMetric.allCases where metric != .cpu {
            // prometheus-adapter: HPA + rules ConfigMap.
            let o = Self.objects(try Self.spec(metric: metric, provider: .prometheusAdapter))
            let hpa = try #require(o["HorizontalPodAutoscaler/scaled"])
            guard case .list(let ms)? = hpa["spec"]?["metrics"], case .string(let hpaName)? = ms.first?["pods"]?["metric"]?["name"] else {
                Issue.record("\(metric): the HPA has no Pods metric")
                continue
            }
            guard case .string(let rulesText)? = o["ConfigMap/scaled-adapter-rules"]?["data"]?["config.yaml"] else {
                Issue.record("\(metric): no prometheus-adapter rules ConfigMap")
                continue
            }
            let config = try #require(try Yams.load(yaml: rulesText) as? [String: Any])
            let rules = try #require(config["rules"] as? [[String: Any]])
            #expect(rules.count == 1)
            var exposed = Set<String>()
            for rule in rules {
                let seriesQuery = try #require(rule["seriesQuery"] as? String)
                let names = try Self.referencedNames(seriesQuery)
                #expect(!names.isEmpty, "\(metric): seriesQuery \(seriesQuery) names no series")
                for n in names { #expect(exported.contains(n), "\(metric): the adapter's seriesQuery reads \(n), which /metrics does not export") }
                exposed.formUnion(try Self.adapterExposed(rule, series: Set(names).intersection(exported)))
            }
            #expect(exposed == [hpaName], "\(metric): the adapter exposes \(exposed.sorted()), the HPA reads \(hpaName)")

            // KEDA: the trigger's query names exported series.
            let k = Self.objects(try Self.spec(metric: metric, provider: .keda))
            #expect(k["HorizontalPodAutoscaler/scaled"] == nil)
            let so = try #require(k["ScaledObject/scaled"])
            guard case .list(let triggers)? = so["spec"]?["triggers"], case .string(let query)? = triggers.first?["metadata"]?["query"] else {
                Issue.record("\(metric): the ScaledObject has no Prometheus query")
                continue
            }
            let names = try Self.referencedNames(query)
            #expect(!names.isEmpty)
            for n in names { #expect(exported.contains(n), "\(metric): KEDA's query reads \(n), which /metrics does not export") }
            checked += 1
        }
        #expect(checked == ScalingMetric.allCases.count - 1)
    }
}
