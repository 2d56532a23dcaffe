import Core
import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// monitoring.alerts / monitoring.dashboard: a PrometheusRule and a Grafana dashboard ConfigMap
/// that read only series the server emits (Core.MetricNames), checked with the real tools.
@Suite struct OperationsTests {
    static let yaml = minimal + """
        monitoring:
          serviceMonitor: true
          alerts: true
          dashboard: true
          slo: {ttftP95Seconds: 0.5, maxErrorRate: 0.01, maxRestarts: 3}

        """

    static func spec() throws -> Spec { try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec }

    /// The metric names an expression selects: every identifier followed by `{` (each of our
    /// selectors has a label matcher), and no `autoglm:`/`_total` name without one.
    static func selectedMetrics(_ expr: String) -> [String] {
        var names: [String] = []
        let chars = Array(expr)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isLetter || c == "_" || c == ":" {
                var j = i
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || chars[j] == ":" { j += 1 }
                let word = String(chars[i..<j])
                if j < chars.count, chars[j] == "{" { names.append(word) } else {
                    #expect(!word.contains(":") && !word.hasSuffix("_total") && !word.hasSuffix("_bucket"), "bare series \(word) in \(expr)")
                }
                // Skip a label matcher block.
                if j < chars.count, chars[j] == "{" {
                    while j < chars.count, chars[j] != "}" { j += 1 }
                }
                i = j
            } else if c == "\"" {
                i += 1
                while i < chars.count, chars[i] != "\"" { i += 1 }
                i += 1
            } else { i += 1 }
        }
        return names
    }

    static var allowed: Set<String> { MetricNames.seriesNames.union(KubeOperations.externalSeries) }

    @Test func rendersRuleAndDashboardOnlyWhenAsked() throws {
        #expect(!KubeRenderer.render(try SpecLoader.load(yaml: minimal, file: "t.yaml", variables: [:]).spec).objects
            .contains { $0.kind == "PrometheusRule" || $0.name.hasSuffix("-dashboard") })
        let objects = KubeRenderer.render(try Self.spec()).objects
        #expect(objects.filter { $0.kind == "PrometheusRule" }.map(\.name) == ["demo"])
        let configMaps = objects.filter { $0.kind == "ConfigMap" }.map(\.name)
        #expect(configMaps.count == 2 && configMaps[0].hasPrefix("demo-config-") && configMaps[1] == "demo-dashboard", "\(configMaps)")
        // The canonical print keeps the keys.
        let printed = SpecEncoder.yaml(try Self.spec())
        #expect(printed.contains("monitoring:\n  serviceMonitor: true\n  alerts: true\n  dashboard: true\n  slo:\n    ttftP95Seconds: 0.5\n    maxErrorRate: 0.01\n    maxRestarts: 3\n"), "\(printed)")
        #expect(try SpecLoader.load(yaml: printed, file: "p.yaml", variables: [:]).spec == (try Self.spec()))
    }

    @Test func alertsUseTheSLOAndOnlyEmittedSeries() throws {
        let alerts = KubeOperations.alerts(try Self.spec())
        #expect(alerts.map(\.name) == ["AutoglmTTFTAboveSLO", "AutoglmErrorRateHigh", "AutoglmQueueSaturated",
                                      "AutoglmKVCacheNearFull", "AutoglmPodRestarting"])
        #expect(alerts[0].expr.hasSuffix(" > 0.5") && alerts[0].expr.contains("histogram_quantile(0.95, "))
        #expect(alerts[1].expr.hasSuffix(" > 0.01") && alerts[1].expr.contains("reason!=\"cancelled\""))
        #expect(alerts[2].expr == "max(autoglm:num_requests_waiting{job=\"demo\"}) / \(ServingDefaults.maxQueue) > 0.8")
        #expect(alerts[3].expr.hasSuffix(" > 0.95") && alerts[4].expr.hasSuffix(" > 3"))
        var used = Set<String>()
        for a in alerts {
            let names = Self.selectedMetrics(a.expr)
            #expect(!names.isEmpty, "\(a.expr)")
            for n in names { #expect(Self.allowed.contains(n), "\(a.name) reads \(n), which the server does not emit") }
            used.formUnion(names)
        }
        #expect(used.contains(MetricNames.timeToFirstToken + "_bucket") && used.contains(MetricNames.kvCacheUsage))
    }

    @Test func dashboardIsGrafanaJSONOverEmittedSeries() throws {
        let spec = try Self.spec()
        let cm = KubeOperations.dashboardConfigMap(spec)
        let value = JSONValue(cm.value)
        #expect(value.at("metadata", "labels", "grafana_dashboard")?.string == "1")
        #expect(value.at("metadata", "labels", "app.kubernetes.io/instance")?.string == "demo")
        let text = try #require(value.at("data", "autoglm-demo.json")?.string)
        let dash = try #require(JSONValue.parse(text))
        #expect(dash["title"]?.string == "autoglm / demo")
        let panels = try #require(dash["panels"]?.array)
        #expect(panels.count == KubeOperations.panels(spec).count && panels.count >= 8)
        var exprs: [String] = []
        for p in panels {
            #expect(p["type"]?.string == "timeseries")
            for t in p["targets"]?.array ?? [] { if let e = t["expr"]?.string { exprs.append(e) } }
        }
        var used = Set<String>()
        for e in exprs {
            for n in Self.selectedMetrics(e) { #expect(Self.allowed.contains(n), "the dashboard reads \(n), which the server does not emit"); used.insert(n) }
        }
        // The same series as the alerts, and more.
        for a in KubeOperations.alerts(spec) { for n in Self.selectedMetrics(a.expr) { #expect(used.contains(n), "\(n)") } }
    }

    /// kubernetes-validate --strict over the rendered objects (the PrometheusRule is a CRD without
    /// a schema there, reported and allowed as the ServiceMonitor is), and promtool — Prometheus'
    /// own rule checker, which parses every expression — over the rule's groups.
    @Test func validatesWithKubernetesValidateAndPromtool() throws {
        let fm = FileManager.default
        let dir = NSTemporaryDirectory() + "autoglm-ops-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let rendered = KubeRenderer.render(try Self.spec())
        try rendered.stream.write(toFile: dir + "/ops.yaml", atomically: true, encoding: .utf8)
        let kv = try bash([Fixture.repoRoot + "/scripts/validate-manifests.sh", "--dir", dir])
        #expect(kv.status == 0, "\(kv.out)")
        #expect(kv.out.contains("objects passed --strict, 2 without schema"), "ServiceMonitor and PrometheusRule: \(kv.out)")

        let rule = try #require(rendered.objects.first { $0.kind == "PrometheusRule" })
        guard case .map(let fields) = rule.value, let spec = fields.first(where: { $0.key == "spec" })?.value else {
            Issue.record("no spec in the PrometheusRule"); return
        }
        try YAMLEmitter.emit(spec).write(toFile: dir + "/rules.yaml", atomically: true, encoding: .utf8)
        let which = try bash(["-c", "command -v promtool"])
        guard which.status == 0 else {
            Issue.record("promtool is not on PATH; install it (apt-get install prometheus; CI does) so the rules are checked")
            return
        }
        let check = try bash(["-c", "promtool check rules \(dir)/rules.yaml"])
        #expect(check.status == 0, "\(check.out)")
        #expect(check.out.contains("SUCCESS: 5 rules found"), "\(check.out)")
        // The checker is not a rubber stamp: a broken expression fails it.
        let broken = try String(contentsOfFile: dir + "/rules.yaml", encoding: .utf8)
            .replacingOccurrences(of: "histogram_quantile(0.95, ", with: "histogram_quantile(0.95 ")
        try broken.write(toFile: dir + "/broken.yaml", atomically: true, encoding: .utf8)
        #expect(try bash(["-c", "promtool check rules \(dir)/broken.yaml"]).status != 0)
    }

    @Test func sloBoundsAreChecked() {
        #expect(errors(minimal + "monitoring: {alerts: true, slo: {maxErrorRate: 2}}\n").first?.contains("monitoring.slo.maxErrorRate (2) must be greater than 0 and at most 1") == true)
        #expect(errors(minimal + "monitoring: {slo: {ttft: 1}}\n").first?.contains("monitoring.slo.ttft: unknown key 'ttft'") == true)
    }
}
