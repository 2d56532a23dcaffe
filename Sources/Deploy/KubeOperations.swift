import Core
import Spec

/// The operations objects rendered from the spec's `monitoring` section: a PrometheusRule with
/// the alerts (`monitoring.alerts`) and a Grafana dashboard in a ConfigMap (`monitoring.dashboard`).
/// Every expression reads only series the server emits (`Server.MetricNames`), scraped by the
/// ServiceMonitor (whose `job` label is the Service's name), plus kube-state-metrics' container
/// restart counter (`externalSeries`) for the restart alert.
public enum KubeOperations {
    /// The one series the operations objects read that autoglm does not emit: kube-state-metrics'
    /// restart counter (part of kube-prometheus-stack, which also runs the operator that reads a
    /// PrometheusRule).
    public static let restartsSeries = "kube_pod_container_status_restarts_total"
    public static let externalSeries: Set<String> = [restartsSeries]
    /// The label the Grafana sidecar (kube-prometheus-stack's default) finds dashboards by.
    public static let dashboardLabel = "grafana_dashboard"
    /// Window of every rate in the alerts.
    public static let window = "5m"

    static func selector(_ spec: Spec) -> String { "job=\"\(spec.name)\"" }

    /// p95 TTFT over the window, seconds (the front door's histogram, every backend).
    static func ttftP95(_ spec: Spec, quantile: String = "0.95") -> String {
        "histogram_quantile(\(quantile), sum by (le) (rate(\(MetricNames.timeToFirstToken)_bucket{\(selector(spec))}[\(window)])))"
    }

    /// Failures (client cancellations excluded) over finished requests.
    static func errorRatio(_ spec: Spec) -> String {
        let failures = "sum(rate(\(MetricNames.requestFailure){\(selector(spec)),reason!=\"cancelled\"}[\(window)]))"
        let successes = "sum(rate(\(MetricNames.requestSuccess){\(selector(spec))}[\(window)]))"
        return "\(failures) / (\(successes) + \(failures))"
    }

    static func restartsExpr(_ spec: Spec) -> String {
        "sum(increase(\(restartsSeries){pod=~\"\(spec.name)-[a-z0-9]+-[a-z0-9]+\",container=~\"autoglm|vllm\"}[15m]))"
    }

    /// One alert: name, expression, for, severity, summary.
    public struct Alert: Sendable, Equatable {
        public var name: String
        public var expr: String
        public var forDuration: String
        public var severity: String
        public var summary: String
    }

    /// The alerts of `monitoring.slo`.
    public static func alerts(_ spec: Spec) -> [Alert] {
        let slo = spec.monitoring.slo
        let sel = selector(spec)
        let maxQueue = ServingDefaults.maxQueue
        return [
            Alert(name: "AutoglmTTFTAboveSLO", expr: "\(ttftP95(spec)) > \(num(slo.ttftP95Seconds))", forDuration: "10m",
                  severity: "warning",
                  summary: "\(spec.name): p95 time to first token is above the SLO of \(num(slo.ttftP95Seconds)) s"),
            Alert(name: "AutoglmErrorRateHigh", expr: "\(errorRatio(spec)) > \(num(slo.maxErrorRate))", forDuration: "5m",
                  severity: "critical",
                  summary: "\(spec.name): more than \(num(slo.maxErrorRate * 100))% of requests fail"),
            Alert(name: "AutoglmQueueSaturated",
                  expr: "max(\(MetricNames.requestsWaiting){\(sel)}) / \(maxQueue) > \(num(slo.queueSaturation))", forDuration: "5m",
                  severity: "warning",
                  summary: "\(spec.name): the request queue is over \(num(slo.queueSaturation * 100))% of its limit (\(maxQueue)); requests will get 429 — scale out"),
            Alert(name: "AutoglmKVCacheNearFull",
                  expr: "max(\(MetricNames.kvCacheUsage){\(sel)}) > \(num(slo.kvCacheUsage))", forDuration: "10m",
                  severity: "warning",
                  summary: "\(spec.name): KV cache usage above \(num(slo.kvCacheUsage * 100))%; sequences are being preempted — raise the KV budget or scale out"),
            Alert(name: "AutoglmPodRestarting", expr: "\(restartsExpr(spec)) > \(slo.maxRestarts)", forDuration: "0m",
                  severity: "warning",
                  summary: "\(spec.name): containers restarted more than \(slo.maxRestarts) times in 15 minutes"),
        ]
    }

    /// The objects `monitoring` asks for (none by default).
    public static func objects(_ spec: Spec) -> [KubeObject] {
        var out: [KubeObject] = []
        if spec.monitoring.alerts { out.append(prometheusRule(spec)) }
        if spec.monitoring.dashboard { out.append(dashboardConfigMap(spec)) }
        return out
    }

    public static func prometheusRule(_ spec: Spec) -> KubeObject {
        let rules: [YAMLValue] = alerts(spec).map { a in
            .obj(("alert", .string(a.name)),
                 ("expr", .string(a.expr)),
                 ("for", .string(a.forDuration)),
                 ("labels", .obj(("severity", .string(a.severity)))),
                 ("annotations", .obj(("summary", .string(a.summary)))))
        }
        return KubeRenderer.object("monitoring.coreos.com/v1", "PrometheusRule", spec.name, spec, extra: [
            YAMLField("spec", .obj(("groups", .list([.obj(("name", .string("autoglm-\(spec.name)")),
                                                          ("rules", .list(rules)))])))),
        ])
    }

    public static func dashboardName(_ spec: Spec) -> String { "\(spec.name)-dashboard" }

    /// A panel: title, unit, its PromQL targets (legend, expression).
    public struct Panel: Sendable, Equatable {
        public var title: String
        public var unit: String
        public var targets: [(legend: String, expr: String)]
        public static func == (a: Panel, b: Panel) -> Bool {
            a.title == b.title && a.unit == b.unit && a.targets.map(\.legend) == b.targets.map(\.legend)
                && a.targets.map(\.expr) == b.targets.map(\.expr)
        }
    }

    public static func panels(_ spec: Spec) -> [Panel] {
        let sel = selector(spec)
        func rate(_ m: String, _ extra: String = "") -> String { "sum(rate(\(m){\(sel)\(extra)}[\(window)]))" }
        return [
            Panel(title: "Time to first token", unit: "s", targets: [
                ("p50", ttftP95(spec, quantile: "0.5")), ("p95", ttftP95(spec)),
                ("SLO", "vector(\(num(spec.monitoring.slo.ttftP95Seconds)))"),
            ]),
            Panel(title: "End-to-end latency", unit: "s", targets: [
                ("p95", "histogram_quantile(0.95, sum by (le) (rate(\(MetricNames.e2eLatency)_bucket{\(sel)}[\(window)])))"),
                ("queue p95", "histogram_quantile(0.95, sum by (le) (rate(\(MetricNames.queueTime)_bucket{\(sel)}[\(window)])))"),
            ]),
            Panel(title: "Requests", unit: "reqps", targets: [
                ("succeeded", rate(MetricNames.requestSuccess)),
                ("failed", rate(MetricNames.requestFailure, ",reason!=\"cancelled\"")),
                ("cancelled", rate(MetricNames.requestFailure, ",reason=\"cancelled\"")),
            ]),
            Panel(title: "Error rate", unit: "percentunit", targets: [
                ("errors", errorRatio(spec)), ("SLO", "vector(\(num(spec.monitoring.slo.maxErrorRate)))"),
            ]),
            Panel(title: "Running and waiting requests", unit: "short", targets: [
                ("running", "sum(\(MetricNames.requestsRunning){\(sel)})"),
                ("waiting", "sum(\(MetricNames.requestsWaiting){\(sel)})"),
            ]),
            Panel(title: "KV cache usage", unit: "percentunit", targets: [
                ("{{pod}}", "max by (pod) (\(MetricNames.kvCacheUsage){\(sel)})"),
            ]),
            Panel(title: "Tokens per second", unit: "short", targets: [
                ("prompt", rate(MetricNames.promptTokens)), ("generated", rate(MetricNames.generationTokens)),
            ]),
            Panel(title: "Prefix cache hit ratio", unit: "percentunit", targets: [
                ("hits", "\(rate(MetricNames.prefixCacheHits)) / \(rate(MetricNames.prefixCacheQueries))"),
            ]),
            Panel(title: "Container restarts (15 min)", unit: "short", targets: [
                ("restarts", restartsExpr(spec)),
            ]),
        ]
    }

    /// The Grafana dashboard model (schema of Grafana 10/11: time-series panels on a 24-column
    /// grid, a `datasource` variable of type prometheus), serialized with sorted keys.
    public static func dashboardJSON(_ spec: Spec) -> String {
        let ds: JSONValue = ["type": "prometheus", "uid": "${datasource}"]
        var items: [JSONValue] = []
        for (i, p) in Self.panels(spec).enumerated() {
            let targets: [JSONValue] = p.targets.enumerated().map { j, t in
                ["datasource": ds, "expr": .string(t.expr), "legendFormat": .string(t.legend),
                 "refId": .string(String(Character(Unicode.Scalar(UInt8(65 + j)))))]
            }
            items.append([
                "id": .int(i + 1), "type": "timeseries", "title": .string(p.title), "datasource": ds,
                "gridPos": ["h": 8, "w": 12, "x": .int((i % 2) * 12), "y": .int((i / 2) * 8)],
                "fieldConfig": ["defaults": ["unit": .string(p.unit)], "overrides": []],
                "targets": .array(targets),
            ])
        }
        let dashboard: JSONValue = [
            "uid": .string(String("autoglm-\(spec.name)".prefix(40))),
            "title": .string("autoglm / \(spec.name)"),
            "tags": ["autoglm"],
            "schemaVersion": 39,
            "version": 1,
            "editable": true,
            "refresh": "30s",
            "time": ["from": "now-3h", "to": "now"],
            "templating": ["list": [[
                "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
                "current": [:], "hide": 0,
            ]]],
            "panels": .array(items),
        ]
        return dashboard.serialized()
    }

    public static func dashboardConfigMap(_ spec: Spec) -> KubeObject {
        var o = KubeRenderer.object("v1", "ConfigMap", dashboardName(spec), spec, extra: [
            YAMLField("data", .obj(("autoglm-\(spec.name).json", .string(dashboardJSON(spec))))),
        ])
        // The sidecar's label next to the usual ones.
        if case .map(var fields) = o.value, let mi = fields.firstIndex(where: { $0.key == "metadata" }),
           case .map(var meta) = fields[mi].value, let li = meta.firstIndex(where: { $0.key == "labels" }),
           case .map(var labels) = meta[li].value {
            labels.append(YAMLField(dashboardLabel, .string("1")))
            meta[li] = YAMLField("labels", .map(labels))
            fields[mi] = YAMLField("metadata", .map(meta))
            o.value = .map(fields)
        }
        return o
    }

    /// A threshold in an expression: `2`, `0.05` (no trailing `.0`).
    static func num(_ d: Double) -> String {
        let r = (d * 1e6).rounded() / 1e6
        if r == r.rounded(), abs(r) < 1e15 { return String(Int(r)) }
        return "\(r)"
    }
}
