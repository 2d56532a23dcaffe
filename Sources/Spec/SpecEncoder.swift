/// Spec → YAML in the schema's own key order (the resolved spec: overlay applied, variables
/// substituted, defaults made explicit). `SpecLoader` reads this output back to the same `Spec`.
public enum SpecEncoder {
    public static func yaml(_ spec: Spec) -> String {
        YAMLEmitter.emit(value(spec))
    }

    public static func value(_ spec: Spec) -> YAMLValue {
        let model: YAMLValue = .obj(("ref", .string(spec.model.ref)),
                                    ("version", .str(spec.model.version)),
                                    ("channel", .str(spec.model.channel)),
                                    ("revision", .str(spec.model.revision)))
        let b = spec.backend
        let backend: YAMLValue = .obj(("type", .string(b.type.rawValue)), ("url", .str(b.url)),
                                      ("threads", .num(b.threads)), ("maxSeqs", .num(b.maxSeqs)),
                                      ("maxBatchedTokens", .num(b.maxBatchedTokens)),
                                      ("kvCacheMB", .num(b.kvCacheMB)), ("contextLength", .num(b.contextLength)),
                                      ("kvCacheType", .str(b.kvCacheType?.rawValue)), ("batchWaitMs", .num(b.batchWaitMs)),
                                      ("ubatchTokens", .num(b.ubatchTokens)), ("flashAttention", b.flashAttention.map { .bool($0) }),
                                      ("prefixCache", b.prefixCache.map { .bool($0) }),
                                      ("speculative", .str(b.speculative?.rawValue)), ("speculativeK", .num(b.speculativeK)),
                                      ("gpuLayers", .num(b.gpuLayers)),
                                      ("gpuMemoryUtilization", b.gpuMemoryUtilization.map { .double($0) }),
                                      ("dtype", .str(b.dtype)), ("quantization", .str(b.quantization)),
                                      ("executable", .str(b.executable)), ("image", .str(b.image)),
                                      ("apiKey", b.apiKey.map(keySource)))
        let keys: YAMLValue? = spec.server.apiKeys.isEmpty ? nil : .list(spec.server.apiKeys.map(keySource))
        let server: YAMLValue = .obj(("port", .int(spec.server.port)), ("apiKeys", keys),
                                     ("drainTimeoutSeconds", .int(spec.server.drainTimeoutSeconds)),
                                     ("otlpEndpoint", .str(spec.server.otlpEndpoint)),
                                     ("traceSampleRatio", spec.server.traceSampleRatio.map { .double($0) }),
                                     ("grpcPort", .num(spec.server.grpcPort)))
        let r = spec.resources
        let resources: YAMLValue? = (r.cpu == nil && r.memory == nil && r.gpu == nil) ? nil
            : .obj(("cpu", .str(r.cpu)), ("memory", .str(r.memory)), ("nvidia.com/gpu", .num(r.gpu)))
        let autoscaling: YAMLValue? = spec.autoscaling.map { a in
            // min/maxReplicas only while enabled (a disabled autoscaler with bounds is refused).
            .obj(("enabled", .bool(a.enabled)), ("minReplicas", a.enabled ? .int(a.minReplicas) : nil),
                 ("maxReplicas", a.enabled ? .int(a.maxReplicas) : nil), ("metric", .string(a.metric.rawValue)),
                 ("target", .int(a.target)),
                 ("provider", a.provider == .prometheusAdapter ? nil : .string(a.provider.rawValue)),
                 ("prometheusURL", a.prometheusURL == AutoscalingSpec.defaultPrometheusURL ? nil : .string(a.prometheusURL)),
                 ("scaleDownStabilization", a.scaleDownStabilizationSeconds.map { .int($0) }),
                 ("intervalSeconds", a.intervalSeconds == AutoscalingSpec.defaultIntervalSeconds ? nil : .double(a.intervalSeconds)),
                 ("rules", a.rules.map { .list($0.map(rule)) }),
                 ("predictive", a.predictive.map(predictive)))
        }
        func probe(_ o: ProbeOverride) -> YAMLValue? {
            o == ProbeOverride() ? nil
                : .obj(("initialDelaySeconds", .num(o.initialDelaySeconds)), ("periodSeconds", .num(o.periodSeconds)),
                       ("failureThreshold", .num(o.failureThreshold)), ("timeoutSeconds", .num(o.timeoutSeconds)))
        }
        let p = spec.probes
        let probes: YAMLValue? = p == ProbesSpec() ? nil
            : .obj(("startup", probe(p.startup)), ("readiness", probe(p.readiness)), ("liveness", probe(p.liveness)))
        let ro = spec.rollout
        let rollout: YAMLValue = .obj(("strategy", .string(ro.strategy.rawValue)),
                                      ("maxSurge", ro.maxSurge.map(intOrPercent)),
                                      ("maxUnavailable", ro.maxUnavailable.map(intOrPercent)),
                                      ("canaryPercent", .num(ro.canaryPercent)),
                                      ("progressDeadlineSeconds", .num(ro.progressDeadlineSeconds)),
                                      ("analysis", ro.analysis.map(analysis)))
        let cache: YAMLValue
        switch spec.modelCache {
        case .pvc(let name, let size, let sc):
            cache = .obj(("pvc", .obj(("name", .str(name)), ("size", .string(size)), ("storageClass", .str(sc)))))
        case .emptyDir(let limit):
            cache = .obj(("emptyDir", .obj(("sizeLimit", .str(limit)))))
        }
        return .obj(
            ("apiVersion", .string(Spec.apiVersion)),
            ("kind", .string("Deployment")),
            ("name", .string(spec.name)),
            ("model", model),
            ("backend", backend),
            ("server", server),
            ("image", .string(spec.image)),
            ("replicas", .int(spec.replicas)),
            ("resources", resources),
            ("autoscaling", autoscaling),
            ("probes", probes),
            ("rollout", rollout),
            ("modelCache", cache),
            ("monitoring", monitoring(spec.monitoring)),
            ("gateway", spec.gateway == GatewaySpec() ? nil
                : .obj(("policy", .string(spec.gateway.policy.rawValue)), ("affinityThreshold", .int(spec.gateway.affinityThreshold))))
        )
    }

    /// serviceMonitor always; alerts, dashboard and slo only when they differ from the defaults.
    static func monitoring(_ m: MonitoringSpec) -> YAMLValue {
        let slo = m.slo
        let d = SLOSpec()
        let sloValue: YAMLValue? = slo == d ? nil : .obj(
            ("ttftP95Seconds", slo.ttftP95Seconds == d.ttftP95Seconds ? nil : .double(slo.ttftP95Seconds)),
            ("maxErrorRate", slo.maxErrorRate == d.maxErrorRate ? nil : .double(slo.maxErrorRate)),
            ("queueSaturation", slo.queueSaturation == d.queueSaturation ? nil : .double(slo.queueSaturation)),
            ("kvCacheUsage", slo.kvCacheUsage == d.kvCacheUsage ? nil : .double(slo.kvCacheUsage)),
            ("maxRestarts", slo.maxRestarts == d.maxRestarts ? nil : .int(slo.maxRestarts)))
        return .obj(("serviceMonitor", .bool(m.serviceMonitor)),
                    ("alerts", m.alerts ? .bool(true) : nil),
                    ("dashboard", m.dashboard ? .bool(true) : nil),
                    ("slo", sloValue))
    }

    static func rule(_ r: ScalingRule) -> YAMLValue {
        .obj(("name", .string(r.name)), ("metric", .string(r.metric.rawValue)), (r.comparison.rawValue, .double(r.threshold)),
             ("for", .double(r.forSeconds)), ("change", .int(r.change)), ("cooldown", .double(r.cooldownSeconds)),
             ("priority", .int(r.priority)))
    }

    static func predictive(_ p: PredictiveSpec) -> YAMLValue {
        .obj(("enabled", .bool(p.enabled)), ("windowSeconds", .double(p.windowSeconds)),
             ("horizonSeconds", .double(p.horizonSeconds)),
             ("capacityRPSPerReplica", p.capacityRPSPerReplica.map { .double($0) }),
             ("alpha", .double(p.alpha)), ("beta", .double(p.beta)))
    }

    static func analysis(_ a: CanaryAnalysisSpec) -> YAMLValue {
        .obj(("maxErrorRate", .double(a.maxErrorRate)), ("maxTTFTRatio", .double(a.maxTTFTRatio)),
             ("maxTPOTRatio", .double(a.maxTPOTRatio)), ("minRequests", .int(a.minRequests)),
             ("durationSeconds", .double(a.durationSeconds)))
    }

    static func keySource(_ k: APIKeySource) -> YAMLValue {
        switch k {
        case .secretRef(let name, let key):
            return .obj(("secretRef", .obj(("name", .string(name)), ("key", .string(key)))))
        case .env(let v):
            return .obj(("env", .string(v)))
        }
    }

    public static func intOrPercent(_ v: IntOrPercent) -> YAMLValue {
        switch v {
        case .int(let i): return .int(i)
        case .percent: return .string(v.description)
        }
    }
}
