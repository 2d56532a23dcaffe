import Core
import Foundation
import Spec

/// `deploy apply` with `rollout.canaryPercent`, when the Deployment exists and its pod template
/// changes: the new template first runs as a canary Deployment `<name>-canary` beside the stable
/// one (the same selector labels plus `autoglm.dev/track: canary`, so the Service sends it a share
/// of the traffic by its share of the endpoints), sized to the percentage. Once it is ready, its
/// pods and the stable pods are judged against `rollout.analysis` — the keys and the rule
/// (`CanaryJudge`) `autoglm up` uses — from the counters and histograms on each pod's `/metrics`,
/// read through the API server's pod proxy. Promote: the stable Deployment takes the new template
/// and rolls out, then the canary is removed. Abort: the canary is removed, the other objects
/// this apply changed are put back, the stable set is never touched.
public struct CanaryOptions: Sendable, Equatable {
    /// `rollout.canaryPercent`: the canary's share of the Service's endpoints (1…99).
    public var percent: Int
    public var analysis: CanaryAnalysisSpec
    /// The pods' serving port (`server.port`), where `/metrics` is.
    public var port: Int
    /// How often the pods' metrics are read and judged.
    public var intervalMilliseconds = 5000
    /// Longest wait for a verdict (no traffic means no verdict); nil: `analysis.durationSeconds` +
    /// the Deployment's progressDeadlineSeconds.
    public var timeoutSeconds: Int?

    public init(percent: Int, analysis: CanaryAnalysisSpec, port: Int) {
        self.percent = percent
        self.analysis = analysis
        self.port = port
    }

    /// From the spec (nil when it sets no `rollout.canaryPercent`).
    public init?(spec: Spec) {
        guard let p = spec.rollout.canaryPercent else { return nil }
        self.init(percent: p, analysis: spec.rollout.analysis ?? CanaryAnalysisSpec(), port: spec.server.port)
    }
}

/// The pure parts of a canary on Kubernetes: names, sizing, the canary's object, and the tallies
/// the judge reads from the pods' metrics.
public enum KubeCanary {
    /// The pod label that tells the tracks apart (the canary's pods carry `canary`).
    public static let trackLabel = "autoglm.dev/track"
    public static let canaryTrack = "canary"
    /// The Deployment annotation holding a digest of the pod template `apply` wrote, so the next
    /// apply knows whether the template changes (and a canary is needed) without comparing
    /// against the server's defaulted copy.
    public static let templateDigestAnnotation = "autoglm.dev/template-digest"

    public static func name(_ deployment: String) -> String { deployment + "-canary" }

    /// Canary replicas whose share of all endpoints, canary / (stable + canary), is closest to
    /// `percent`; at least 1.
    public static func replicas(stable: Int, percent: Int) -> Int {
        let p = Double(min(max(percent, 1), 99))
        return max(1, Int((Double(max(stable, 0)) * p / (100 - p)).rounded()))
    }

    /// The canary's share (0…100) of the endpoints.
    public static func share(stable: Int, canary: Int) -> Double {
        stable + canary == 0 ? 0 : 100 * Double(canary) / Double(stable + canary)
    }

    /// fnv-1a 64 of the pod template's JSON (sorted keys).
    public static func templateDigest(_ deployment: JSONValue) -> String {
        fnv1a64Hex((deployment.at("spec", "template") ?? .null).serialized())
    }

    /// The digest `apply` recorded on a live Deployment (nil: none, e.g. written by an older autoglm).
    public static func recordedDigest(_ deployment: JSONValue) -> String? {
        deployment.at("metadata", "annotations", templateDigestAnnotation)?.string
    }

    /// The canary Deployment from the stable one as rendered: its name, `replicas`, the track
    /// label on itself, its selector and its pod template.
    public static func canaryBody(_ stable: JSONValue, replicas: Int) -> JSONValue {
        var body = stable
        let name = body.at("metadata", "name")?.string ?? "autoglm"
        body["metadata"]?["name"] = .string(Self.name(name))
        func labelled(_ v: JSONValue?) -> JSONValue {
            var labels = v?.object ?? [:]
            labels[trackLabel] = .string(canaryTrack)
            return .object(labels)
        }
        let metaLabels = labelled(body.at("metadata", "labels"))
        body["metadata"]?["labels"] = metaLabels
        if var annotations = body.at("metadata", "annotations")?.object {
            annotations[templateDigestAnnotation] = nil
            body["metadata"]?["annotations"] = .object(annotations)
        }
        body["spec"]?["replicas"] = .int(replicas)
        let selector = labelled(body.at("spec", "selector", "matchLabels"))
        body["spec"]?["selector"]?["matchLabels"] = selector
        let podLabels = labelled(body.at("spec", "template", "metadata", "labels"))
        body["spec"]?["template"]?["metadata"]?["labels"] = podLabels
        return body
    }

    /// One pod's counters: finished requests (failed ones included; cancelled ones are the
    /// client's doing and not counted), failed requests, and the TTFT and inter-token latency
    /// histograms (upper bound → cumulative count).
    public struct PodCounters: Sendable, Equatable {
        public var requests: Double = 0
        public var failed: Double = 0
        public var ttft: [Double: Double] = [:]
        public var tpot: [Double: Double] = [:]

        public init(requests: Double = 0, failed: Double = 0, ttft: [Double: Double] = [:], tpot: [Double: Double] = [:]) {
            self.requests = requests
            self.failed = failed
            self.ttft = ttft
            self.tpot = tpot
        }

        /// What happened since `base` (a pod that restarted starts from 0 again: then all of now).
        public func since(_ base: PodCounters?) -> PodCounters {
            guard let base else { return self }
            let reset = requests < base.requests || failed < base.failed
                || ttft.contains { $0.value < (base.ttft[$0.key] ?? 0) } || tpot.contains { $0.value < (base.tpot[$0.key] ?? 0) }
            if reset { return self }
            return PodCounters(requests: requests - base.requests, failed: failed - base.failed,
                               ttft: ttft.reduce(into: [:]) { $0[$1.key] = $1.value - (base.ttft[$1.key] ?? 0) },
                               tpot: tpot.reduce(into: [:]) { $0[$1.key] = $1.value - (base.tpot[$1.key] ?? 0) })
        }
    }

    /// Reads a pod's counters from its `/metrics` samples.
    public static func counters(_ samples: [PromSample]) -> PodCounters {
        var c = PodCounters()
        let ttft = MetricNames.buckets(MetricNames.timeToFirstToken)
        let itl = MetricNames.buckets(MetricNames.interTokenLatency)
        for s in samples {
            switch s.name {
            case MetricNames.requestSuccess:
                c.requests += s.value
            case MetricNames.requestFailure where s.labels["reason"] != "cancelled":
                c.requests += s.value
                c.failed += s.value
            case ttft:
                if let le = s.labels["le"].flatMap(PrometheusText.number) { c.ttft[le, default: 0] += s.value }
            case itl:
                if let le = s.labels["le"].flatMap(PrometheusText.number) { c.tpot[le, default: 0] += s.value }
            default:
                break
            }
        }
        return c
    }

    /// A set's tally for the judge: each pod's counters since its baseline, summed.
    public static func tally(now: [String: PodCounters], baseline: [String: PodCounters]) -> SetTally {
        var sum = PodCounters()
        for (pod, c) in now {
            let d = c.since(baseline[pod])
            sum.requests += d.requests
            sum.failed += d.failed
            for (le, n) in d.ttft { sum.ttft[le, default: 0] += n }
            for (le, n) in d.tpot { sum.tpot[le, default: 0] += n }
        }
        func p95(_ h: [Double: Double]) -> Double? {
            PrometheusText.quantile(0.95, buckets: h.map { (le: $0.key, count: $0.value) })
        }
        return SetTally(requests: Int(sum.requests.rounded()), failed: Int(sum.failed.rounded()),
                        ttftP95: p95(sum.ttft), tpotP95: p95(sum.tpot))
    }
}

extension KubeDeployer {
    /// Runs the canary of `stable` (the rendered Deployment, template digest stamped) and judges
    /// it. Returns the verdict (`.promote` or `.rollback`, never `.pending`); the canary
    /// Deployment is left in place (the caller removes it after promoting or aborting).
    func runCanary(_ stable: JSONValue, live: JSONValue, mode: ApplyMode, canary c: CanaryOptions,
                   options: KubeDeployOptions) async throws(KubeError) -> CanaryVerdict {
        let name = stable.at("metadata", "name")?.string ?? ""
        let canaryName = KubeCanary.name(name)
        let stableReplicas = live.at("spec", "replicas")?.int ?? 1
        let n = KubeCanary.replicas(stable: stableReplicas, percent: c.percent)
        progress(.note("canary: deployment/\(canaryName) with \(n) of \(stableReplicas + n) pods (\(shortDecimal(KubeCanary.share(stable: stableReplicas, canary: n)))% of the Service's endpoints; canaryPercent \(c.percent))"))
        let (result, _) = try await applyBody(KubeResource.deployments, name: canaryName,
                                              body: KubeCanary.canaryBody(stable, replicas: n), mode: mode, allowFallback: options.applyMode == .auto)
        progress(.applied("deployment/\(canaryName) \(result)"))
        let deadline = stable.at("spec", "progressDeadlineSeconds")?.int ?? RolloutSpec.defaultProgressDeadlineSeconds
        let snap = try await waitForRollout(canaryName, timeoutSeconds: options.timeoutSeconds ?? deadline + 60,
                                            pollMs: options.pollIntervalMilliseconds)
        if case .failed(let reason, let message) = snap.state {
            return .rollback("deployment/\(canaryName) did not roll out (\(reason): \(message))")
        }
        return try await analyseCanary(stable: name, canary: c,
                                       timeoutSeconds: c.timeoutSeconds ?? Int(c.analysis.durationSeconds.rounded(.up)) + deadline)
    }

    /// Reads both tracks' pods' metrics every interval and asks `CanaryJudge` until it decides.
    func analyseCanary(stable name: String, canary c: CanaryOptions, timeoutSeconds: Int) async throws(KubeError) -> CanaryVerdict {
        let dep = try await client.get(KubeResource.deployments.path(name: name, namespace: namespace), what: "deployment/\(name)")
        let base = Self.selector(dep.at("spec", "selector", "matchLabels"))
        let join = base.isEmpty ? "" : ","
        let stableSelector = base + join + "\(KubeCanary.trackLabel)!=\(KubeCanary.canaryTrack)"
        let canarySelector = base + join + "\(KubeCanary.trackLabel)=\(KubeCanary.canaryTrack)"

        let start = ContinuousClock.now
        let (stable0, _) = try await scrape(stableSelector, port: c.port)
        let (canary0, restarts0) = try await scrape(canarySelector, port: c.port)
        var baseline = stable0
        for (k, v) in canary0 { baseline[k] = v }
        var stableNow = stable0
        var canaryNow = canary0
        while true {
            try? await Task.sleep(for: .milliseconds(c.intervalMilliseconds))
            let elapsed = (ContinuousClock.now - start).inSeconds
            let (s, _) = try await scrape(stableSelector, port: c.port)
            let (k, restarts) = try await scrape(canarySelector, port: c.port)
            // A pod that could not be read this time keeps its last counters.
            for (pod, v) in s { stableNow[pod] = v }
            for (pod, v) in k { canaryNow[pod] = v }
            for (pod, count) in restarts where count > (restarts0[pod] ?? 0) {
                return .rollback("canary pod \(pod) restarted \(count - (restarts0[pod] ?? 0)) time(s) during the analysis")
            }
            let verdict = CanaryJudge.judge(c.analysis, stable: KubeCanary.tally(now: stableNow, baseline: baseline),
                                            canary: KubeCanary.tally(now: canaryNow, baseline: baseline), elapsed: elapsed)
            switch verdict {
            case .pending(let why):
                progress(.analysis("canary analysis: " + why))
                if elapsed > Double(timeoutSeconds) {
                    return .rollback("no verdict after \(timeoutSeconds) s (\(why)); does the Service get traffic?")
                }
            case .promote, .rollback:
                return verdict
            }
        }
    }

    /// The counters of each ready pod matching `selector` (pods whose `/metrics` cannot be read
    /// now are left out) and each pod's container restarts.
    func scrape(_ selector: String, port: Int) async throws(KubeError) -> (counters: [String: KubeCanary.PodCounters], restarts: [String: Int]) {
        let list = try await client.get(KubeResource.pods.collectionPath(namespace: namespace) + KubePath.query([("labelSelector", selector)]),
                                        what: "the pods of \(selector)")
        var counters: [String: KubeCanary.PodCounters] = [:]
        var restarts: [String: Int] = [:]
        for pod in list["items"]?.array ?? [] where pod.at("metadata", "deletionTimestamp") == nil {
            guard let name = pod.at("metadata", "name")?.string else { continue }
            restarts[name] = (pod.at("status", "containerStatuses")?.array ?? []).reduce(0) { $0 + ($1["restartCount"]?.int ?? 0) }
            let ready = (pod.at("status", "conditions")?.array ?? []).contains { $0["type"]?.string == "Ready" && $0["status"]?.string == "True" }
            guard ready else { continue }
            guard let r = try? await client.proxyGet(.pod(name, port: port), namespace: namespace, path: "/metrics", timeoutSeconds: 10),
                  r.status == 200 else { continue }
            counters[name] = KubeCanary.counters(PrometheusText.parse(r.text))
        }
        return (counters, restarts)
    }

    /// Deletes the canary Deployment of `name`; returns the line said (nil when there was none).
    func removeCanary(_ name: String) async throws(KubeError) -> String? {
        let canary = KubeCanary.name(name)
        let path = KubeResource.deployments.path(name: canary, namespace: namespace)
        guard try await client.getIfExists(path, what: "deployment/\(canary)") != nil else { return nil }
        return try await deleteObject(KubeResource.deployments, canary)
    }
}
