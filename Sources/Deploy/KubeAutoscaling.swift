import Core
import Spec

/// What the Kubernetes autoscaler reads for one `autoscaling.metric` (all but `cpu`): the series
/// the server exports (`MetricNames`, the names `serve` registers), the Pods metric name the HPA
/// asks the custom metrics API for, and the PromQL that turns the series into a per-pod value.
/// The prometheus-adapter rule, the KEDA trigger and the test adapter of the test bed
/// (`scripts/k8s-testbed/metrics-adapter.py`) all compute this one meaning.
public struct PodsScalingMetric: Sendable, Equatable {
    /// The series in `/metrics` (a gauge, a counter, or a histogram's `_bucket` series).
    public var series: String
    /// prometheus-adapter's `name.matches` (a regex over `series`) and `name.as`: together they
    /// give `metricName`.
    public var nameMatches: String
    public var nameAs: String
    /// The name the HPA reads (`pods.metric.name`).
    public var metricName: String
    /// prometheus-adapter's `metricsQuery` template (`<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>`).
    public var adapterQuery: String
    /// The rate window of a counter or histogram (nil for a gauge).
    public var window: String?

    /// The HPA target (`averageValue`, a Kubernetes quantity) for the spec's `target`.
    public func targetQuantity(_ target: Int, metric: ScalingMetric) -> String {
        // ttft_p95's target is in milliseconds; the series is in seconds: "500m" is 0.5 s.
        metric == .ttftP95 ? "\(target)m" : String(target)
    }
}

extension KubeRenderer {
    /// The rate window of the rps and ttft_p95 queries.
    public static let rateWindow = "1m"
    /// KEDA's polling interval of the trigger, seconds.
    public static let kedaPollingIntervalSeconds = 15

    /// The Pods metric behind `metric` (nil for `cpu`, a Resource metric the kubelet reports).
    public static func podsScalingMetric(_ metric: ScalingMetric) -> PodsScalingMetric? {
        let byPod = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
        switch metric {
        case .cpu:
            return nil
        case .queue:
            let s = MetricNames.requestsWaiting
            return PodsScalingMetric(series: s, nameMatches: "^" + regexEscaped(s) + "$", nameAs: s, metricName: s,
                                     adapterQuery: byPod, window: nil)
        case .rps:
            let s = MetricNames.requestsReceived
            let stem = String(s.dropLast("_total".count))
            return PodsScalingMetric(series: s, nameMatches: "^(" + regexEscaped(stem) + ")_total$", nameAs: "${1}_per_second",
                                     metricName: stem + "_per_second",
                                     adapterQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>}[\(rateWindow)])) by (<<.GroupBy>>)",
                                     window: rateWindow)
        case .ttftP95:
            let h = MetricNames.timeToFirstToken
            let s = MetricNames.buckets(h)
            return PodsScalingMetric(series: s, nameMatches: "^(" + regexEscaped(h) + ")_bucket$", nameAs: "${1}_p95",
                                     metricName: h + "_p95",
                                     adapterQuery: "histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}[\(rateWindow)])) by (le, <<.GroupBy>>))",
                                     window: rateWindow)
        }
    }

    /// The objects that scale the Deployment (none unless `autoscaling.enabled`): with
    /// `provider: prometheus-adapter` the HorizontalPodAutoscaler and, for a Pods metric, the
    /// prometheus-adapter rules ConfigMap that makes the metric reachable; with `provider: keda`
    /// a KEDA ScaledObject (KEDA creates the HPA and serves the metric itself).
    static func autoscalingObjects(_ spec: Spec, kubeVersion kv: KubeVersion, notes: inout [String]) -> [KubeObject] {
        guard let a = spec.autoscaling, a.enabled else { return [] }
        let pods = podsScalingMetric(a.metric)
        if pods != nil, !spec.monitoring.serviceMonitor {
            notes.append("autoscaling.metric \(a.metric.rawValue) is read from Prometheus, which scrapes the pods through the ServiceMonitor; monitoring.serviceMonitor is false, so make Prometheus scrape /metrics with the namespace, pod and service labels some other way")
        }
        switch a.provider {
        case .prometheusAdapter:
            var objects = [horizontalPodAutoscaler(spec, a, kubeVersion: kv)]
            if let pods {
                objects.append(adapterRulesConfigMap(spec, pods))
                notes.append("autoscaling.metric \(a.metric.rawValue): the HPA reads the Pods metric \(pods.metricName) from custom.metrics.k8s.io; install prometheus-adapter and add the rules of ConfigMap \(adapterRulesName(spec)) (key config.yaml) to its config (helm: rules.custom)")
            }
            return objects
        case .keda:
            notes.append("autoscaling.provider keda: the ScaledObject needs KEDA (keda.sh/v1alpha1 CRDs) and queries Prometheus at \(a.prometheusURL) (autoscaling.prometheusURL)")
            return [scaledObject(spec, a, pods: pods)]
        }
    }

    static func scaleDownBehavior(_ a: AutoscalingSpec) -> YAMLValue? {
        a.scaleDownStabilizationSeconds.map { .obj(("scaleDown", .obj(("stabilizationWindowSeconds", .int($0))))) }
    }

    static func horizontalPodAutoscaler(_ spec: Spec, _ a: AutoscalingSpec, kubeVersion kv: KubeVersion) -> KubeObject {
        object(kv.hpaAPIVersion, "HorizontalPodAutoscaler", spec.name, spec, extra: [
            YAMLField("spec", .obj(
                ("scaleTargetRef", .obj(("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
                                        ("name", .string(spec.name)))),
                ("minReplicas", .int(a.minReplicas)),
                ("maxReplicas", .int(a.maxReplicas)),
                ("metrics", .list([hpaMetric(a)])),
                ("behavior", scaleDownBehavior(a)))),
        ])
    }

    static func hpaMetric(_ a: AutoscalingSpec) -> YAMLValue {
        guard let pods = podsScalingMetric(a.metric) else {
            return .obj(("type", .string("Resource")),
                        ("resource", .obj(("name", .string("cpu")),
                                          ("target", .obj(("type", .string("Utilization")),
                                                          ("averageUtilization", .int(a.target)))))))
        }
        return .obj(("type", .string("Pods")),
                    ("pods", .obj(("metric", .obj(("name", .string(pods.metricName)))),
                                  ("target", .obj(("type", .string("AverageValue")),
                                                  ("averageValue", .string(pods.targetQuantity(a.target, metric: a.metric))))))))
    }

    public static func adapterRulesName(_ spec: Spec) -> String { "\(spec.name)-adapter-rules" }

    /// prometheus-adapter's `rules:` for the Pods metric: series scraped per pod (the
    /// ServiceMonitor's `namespace` and `pod` labels name the objects), renamed to the name the
    /// HPA reads, computed per pod by `metricsQuery`.
    public static func adapterRules(_ pods: PodsScalingMetric) -> YAMLValue {
        .obj(("rules", .list([.obj(
            ("seriesQuery", .string(pods.series + "{namespace!=\"\",pod!=\"\"}")),
            ("resources", .obj(("overrides", .obj(
                ("namespace", .obj(("resource", .string("namespace")))),
                ("pod", .obj(("resource", .string("pod")))))))),
            ("name", .obj(("matches", .string(pods.nameMatches)), ("as", .string(pods.nameAs)))),
            ("metricsQuery", .string(pods.adapterQuery)))])))
    }

    static func adapterRulesConfigMap(_ spec: Spec, _ pods: PodsScalingMetric) -> KubeObject {
        object("v1", "ConfigMap", adapterRulesName(spec), spec, extra: [
            YAMLField("data", .obj(("config.yaml", .string(YAMLEmitter.emit(adapterRules(pods)))))),
        ])
    }

    /// The PromQL KEDA evaluates: one number for the whole Deployment (its pods are the
    /// Service's endpoints: the ServiceMonitor's `service` label). Queue and rps are totals that
    /// KEDA's AverageValue divides by the replicas; ttft_p95 is the p95 over all pods, compared as is.
    public static func kedaQuery(_ spec: Spec, _ pods: PodsScalingMetric, metric: ScalingMetric) -> String {
        let sel = "\(pods.series){service=\"\(spec.name)\"}"
        switch metric {
        case .ttftP95: return "histogram_quantile(0.95, sum(rate(\(sel)[\(rateWindow)])) by (le))"
        case .rps: return "sum(rate(\(sel)[\(rateWindow)]))"
        case .queue, .cpu: return "sum(\(sel))"
        }
    }

    static func scaledObject(_ spec: Spec, _ a: AutoscalingSpec, pods: PodsScalingMetric?) -> KubeObject {
        let trigger: YAMLValue
        if let pods {
            let threshold = a.metric == .ttftP95 ? decimal(milliseconds: a.target) : String(a.target)
            trigger = .obj(
                ("type", .string("prometheus")),
                ("name", .string(pods.metricName.replacingOccurrences(of: ":", with: "-").replacingOccurrences(of: "_", with: "-"))),
                ("metricType", .string(a.metric == .ttftP95 ? "Value" : "AverageValue")),
                ("metadata", .obj(
                    ("serverAddress", .string(a.prometheusURL)),
                    ("query", .string(kedaQuery(spec, pods, metric: a.metric))),
                    ("threshold", .string(threshold)))))
        } else {
            trigger = .obj(("type", .string("cpu")), ("metricType", .string("Utilization")),
                           ("metadata", .obj(("value", .string(String(a.target))))))
        }
        let behavior = scaleDownBehavior(a)
        return object("keda.sh/v1alpha1", "ScaledObject", spec.name, spec, extra: [
            YAMLField("spec", .obj(
                ("scaleTargetRef", .obj(("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
                                        ("name", .string(spec.name)))),
                ("pollingInterval", .int(kedaPollingIntervalSeconds)),
                ("minReplicaCount", .int(a.minReplicas)),
                ("maxReplicaCount", .int(a.maxReplicas)),
                ("advanced", behavior.map { .obj(("horizontalPodAutoscalerConfig", .obj(("behavior", $0)))) }),
                ("triggers", .list([trigger])))),
        ])
    }

    /// `1500` ms → `"1.5"` (seconds), exactly (no binary floating point).
    static func decimal(milliseconds ms: Int) -> String {
        let whole = ms / 1000, frac = ms % 1000
        if frac == 0 { return String(whole) }
        var f = String(frac)
        f = String(repeating: "0", count: 3 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f)"
    }

    /// `s` with the regex metacharacters it could hold escaped (metric names: letters, digits, `_`, `:`).
    static func regexEscaped(_ s: String) -> String {
        var out = ""
        for c in s {
            if "\\.+*?()|[]{}^$".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
