import Core

/// The typed `autoglm.yaml` (apiVersion `autoglm/v1`). The one config format read by
/// `serve`, `optimize`, `deploy` and `up`. Decode it with `SpecLoader`.
public struct Spec: Sendable, Equatable {
    public static let apiVersion = "autoglm/v1"
    public static let defaultImage = "ghcr.io/open-autoglm/autoglm:latest"

    public var name: String
    public var model: ModelSpec
    public var backend = BackendSpec()
    public var server = ServerSpec()
    public var image: String = Spec.defaultImage
    public var replicas: Int = 1
    public var resources = ResourcesSpec()
    public var autoscaling: AutoscalingSpec?
    public var probes = ProbesSpec()
    public var rollout = RolloutSpec()
    public var modelCache: ModelCacheSpec = .emptyDir(sizeLimit: nil)
    public var monitoring = MonitoringSpec()
    /// How `autoglm up`'s gateway spreads requests over the local replicas.
    public var gateway = GatewaySpec()
    /// Names of the overlays the file defines (the overlays themselves are applied at load time).
    public var environmentNames: [String] = []

    public init(name: String, model: ModelSpec) {
        self.name = name
        self.model = model
    }
}

public struct ModelSpec: Sendable, Equatable {
    /// Registry ref or alias (`gemma3-270m`), `hf://ORG/REPO/FILE.gguf`, or a path; for vLLM a
    /// Hugging Face repo id (`ORG/REPO` or `hf://ORG/REPO`).
    public var ref: String
    public var version: String?
    public var channel: String?
    /// Hugging Face revision (branch, tag or commit) of a repo-id model; vLLM only.
    public var revision: String?
    public init(ref: String, version: String? = nil, channel: String? = nil, revision: String? = nil) {
        self.ref = ref
        self.version = version
        self.channel = channel
        self.revision = revision
    }
}

/// What serves the model behind autoglm's front door: the built-in engine, llama.cpp's
/// `llama-server` (a GGUF), vLLM (`vllm serve`, a Hugging Face repo id) or an OpenAI-compatible
/// upstream that is already running.
public enum BackendType: String, Sendable, Equatable, CaseIterable {
    case native, llamacpp, vllm, openai
}

/// Element type of the KV cache (`backend.kvCacheType`): the native engine (`serve --kv-type`)
/// stores f16 or f32; llama.cpp (`-ctk/-ctv`) also q8_0.
public enum KVCacheType: String, Sendable, Equatable, CaseIterable {
    case f16, f32, q8_0
    /// Types the native engine can store.
    public static let native: [KVCacheType] = [.f16, .f32]
}

public struct BackendSpec: Sendable, Equatable {
    /// The vLLM server image a `vllm` spec's pod runs when `backend.image` is not set (its
    /// version is the one the flag mapping is checked against).
    public static let defaultVLLMImage = "vllm/vllm-openai:v0.11.0"
    /// Layers a GPU spec offloads to the GPU when `backend.gpuLayers` is not set: all of them
    /// (llama.cpp caps the count at the model's).
    public static let allGPULayers = 999
    /// `--dtype` values the vLLM of `defaultVLLMImage` accepts (`ModelDType` in vllm/config/model.py).
    public static let vllmDTypes = ["auto", "half", "float16", "bfloat16", "float", "float32"]
    /// `--quantization` methods allowed in a spec: `QuantizationMethods` of the vLLM of
    /// `defaultVLLMImage` (vllm/model_executor/layers/quantization/__init__.py) less those that
    /// cannot run in its CUDA image or on a repo-id model: tpu_int8 (TPU), ipex (Intel CPU/XPU),
    /// inc (Intel Gaudi), gguf (a GGUF file, which runs on backend llamacpp).
    /// scripts/check-vllm-flags.sh checks each against the pinned vLLM's source.
    public static let vllmQuantizations = [
        "awq", "awq_marlin", "gptq", "gptq_marlin", "gptq_marlin_24", "gptq_bitblas", "bitblas",
        "fp8", "ptpc_fp8", "fbgemm_fp8", "modelopt", "modelopt_fp4", "mxfp4", "petit_nvfp4",
        "compressed-tensors", "bitsandbytes", "deepspeedfp", "hqq", "experts_int8", "quark",
        "moe_wna16", "torchao", "auto-round", "rtn",
    ]
    public var type: BackendType = .native
    /// Upstream base URL; only for `openai`.
    public var url: String?
    public var threads: Int?
    public var maxSeqs: Int?
    public var maxBatchedTokens: Int?
    public var kvCacheMB: Int?
    public var contextLength: Int?
    /// KV-cache element type (default f16; q8_0 only with llamacpp).
    public var kvCacheType: KVCacheType?
    /// Milliseconds an idle engine waits for more requests before its first step (0...10000;
    /// native engine; default 0).
    public var batchWaitMs: Int?
    /// llama.cpp's physical micro-batch (`-ub`); llamacpp only.
    public var ubatchTokens: Int?
    /// llama.cpp's flash attention (`-fa on|off`); llamacpp only.
    public var flashAttention: Bool?
    /// Automatic prefix caching (default on): native `serve --no-prefix-cache`, llama-server
    /// `--no-cache-prompt`, vLLM `--no-enable-prefix-caching` when false.
    public var prefixCache: Bool?
    /// Speculative decoding (native engine; default off): `ngram` drafts by prompt lookup and
    /// verifies the drafts in one forward pass (greedy output identical, sampled output
    /// distributed the same); `draft` (a draft model) is refused as not available yet.
    /// `serve --speculative`.
    public var speculative: SpeculativeMethod?
    /// Most draft tokens per sequence and step (`SpeculativeSyntax.kRange`, default
    /// `SpeculativeSyntax.defaultK`); `serve --speculative-k`.
    public var speculativeK: Int?
    /// Layers offloaded to the GPU (`-ngl`); llamacpp only. Default: all when the spec requests
    /// GPUs, none otherwise.
    public var gpuLayers: Int?
    /// Share of each GPU's memory vLLM may use (`--gpu-memory-utilization`, 0 < x <= 1); vllm only.
    public var gpuMemoryUtilization: Double?
    /// Weight/activation type (`--dtype`: auto, half, float16, bfloat16, float, float32); vllm only.
    public var dtype: String?
    /// Quantization method (`--quantization`, e.g. awq, gptq, fp8); vllm only.
    public var quantization: String?
    /// The server program: llama-server (llamacpp) or vllm (vllm); default: found on $PATH
    /// (llama-server also via $AUTOGLM_LLAMA_SERVER).
    public var executable: String?
    /// Container image of the vLLM server in the rendered pod; vllm only.
    public var image: String?
    /// Key autoglm sends to an `openai` upstream (`Authorization: Bearer`).
    public var apiKey: APIKeySource?
    public init() {}
}

public enum APIKeySource: Sendable, Equatable {
    case secretRef(name: String, key: String)
    case env(String)
}

public struct ServerSpec: Sendable, Equatable {
    public static let defaultPort = 8080
    public static let defaultDrainTimeoutSeconds = 30
    public var port: Int = ServerSpec.defaultPort
    public var apiKeys: [APIKeySource] = []
    /// How long the server waits for in-flight requests on SIGTERM.
    public var drainTimeoutSeconds: Int = ServerSpec.defaultDrainTimeoutSeconds
    /// Request tracing: the OTLP/HTTP collector (`--otlp-endpoint`; unset: no tracing) and the
    /// share of new traces recorded (`--trace-sample-ratio`; default `TracingDefaults.sampleRatio`).
    public var otlpEndpoint: String?
    public var traceSampleRatio: Double?
    /// The gRPC API's port (`serve --grpc-port`); nil or 0: no gRPC listener.
    public var grpcPort: Int?
    public init() {}
}

public struct ResourcesSpec: Sendable, Equatable {
    /// Kubernetes quantities, e.g. `4`, `500m`, `16Gi`.
    public var cpu: String?
    public var memory: String?
    /// `nvidia.com/gpu`
    public var gpu: Int?
    public init() {}
}

public enum ScalingMetric: String, Sendable, Equatable, CaseIterable {
    case queue, cpu, rps
    /// p95 time to first token per pod, target in milliseconds.
    case ttftP95 = "ttft_p95"
    /// Default target: waiting requests per pod, CPU utilization %, requests/s per pod, p95 TTFT ms.
    public var defaultTarget: Int {
        switch self {
        case .queue: return 4
        case .cpu: return 70
        case .rps: return 10
        case .ttftP95: return 1000
        }
    }
}

/// `autoscaling.provider`: what scales the Deployment on Kubernetes (`deploy`).
public enum ScalingProvider: String, Sendable, Equatable, CaseIterable {
    /// A HorizontalPodAutoscaler; its Pods metric is served by prometheus-adapter (whose rules
    /// ConfigMap is rendered).
    case prometheusAdapter = "prometheus-adapter"
    /// A KEDA ScaledObject with a Prometheus trigger (KEDA creates and drives the HPA).
    case keda
}

public struct AutoscalingSpec: Sendable, Equatable {
    public static let defaultIntervalSeconds = 5.0
    /// The Service kube-prometheus-stack's Prometheus Operator creates.
    public static let defaultPrometheusURL = "http://prometheus-operated.monitoring.svc:9090"
    public var enabled = false
    public var minReplicas = 1
    public var maxReplicas = 1
    /// The Kubernetes HPA's metric and target (`deploy`); `up` derives its default rules from them.
    public var metric: ScalingMetric = .queue
    public var target: Int = ScalingMetric.queue.defaultTarget
    /// Kubernetes only: HPA + prometheus-adapter rules, or a KEDA ScaledObject.
    public var provider: ScalingProvider = .prometheusAdapter
    /// Kubernetes only: the Prometheus KEDA queries (its trigger's serverAddress).
    public var prometheusURL: String = AutoscalingSpec.defaultPrometheusURL
    /// Kubernetes only: the HPA's scale-down stabilization window, seconds (nil: Kubernetes' 300).
    public var scaleDownStabilizationSeconds: Int?
    /// `up`'s scaling rules; nil: `defaultRules(metric:target:)`.
    public var rules: [ScalingRule]?
    /// `up`'s forecast of the arrival rate (scales up ahead of a ramp).
    public var predictive: PredictiveSpec?
    /// How often `up` samples the fleet and decides, in seconds.
    public var intervalSeconds: Double = AutoscalingSpec.defaultIntervalSeconds
    public init() {}

    /// The rules `up` applies: the spec's `rules`, else the defaults for `metric`/`target`.
    public var effectiveRules: [ScalingRule] { rules ?? Self.defaultRules(metric: metric, target: target) }

    /// The one definition of `up`'s rules when the spec gives none:
    /// - scale up: the HPA metric above its target for 20 s → +1 (cooldown 30 s, priority 10):
    ///   `queue` → `queue_per_replica above target`, `rps` → `rps_per_replica above target`,
    ///   `ttft_p95` → `ttft_p95_seconds above target/1000`,
    ///   `cpu` (a local fleet does not sample CPU) → `queue_per_replica above 4` (queue's default target);
    /// - scale down: `inflight_per_replica below 0.5` for 120 s → −1 (cooldown 60 s, priority 0).
    public static func defaultRules(metric: ScalingMetric, target: Int) -> [ScalingRule] {
        let up: ScalingRule
        switch metric {
        case .queue, .cpu:
            let t = metric == .queue ? target : ScalingMetric.queue.defaultTarget
            up = ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: Double(t),
                             forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10)
        case .rps:
            up = ScalingRule(name: "rps-high", metric: .rpsPerReplica, comparison: .above, threshold: Double(target),
                             forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10)
        case .ttftP95:
            up = ScalingRule(name: "ttft-high", metric: .ttftP95Seconds, comparison: .above, threshold: Double(target) / 1000,
                             forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10)
        }
        let down = ScalingRule(name: "idle", metric: .inflightPerReplica, comparison: .below, threshold: 0.5,
                               forSeconds: 120, change: -1, cooldownSeconds: 60, priority: 0)
        return [up, down]
    }
}

/// What `up` measures over the fleet each interval (the values a `ScalingRule` compares).
public enum FleetMetric: String, Sendable, Equatable, CaseIterable {
    /// Waiting (queued) requests / ready replicas.
    case queuePerReplica = "queue_per_replica"
    /// In-flight requests / ready replicas.
    case inflightPerReplica = "inflight_per_replica"
    /// Arrivals per second over the last interval / ready replicas.
    case rpsPerReplica = "rps_per_replica"
    /// p95 time to first token over the last interval, seconds.
    case ttftP95Seconds = "ttft_p95_seconds"
    /// p95 time per output token over the last interval, seconds.
    case tpotP95Seconds = "tpot_p95_seconds"
    /// Failed / finished requests over the last interval (0…1).
    case errorRate = "error_rate"
}

/// `autoscaling.rules[]`: when `metric` has been above (below) `threshold` on every sample for
/// `forSeconds`, change the replica count by `change`, then wait `cooldownSeconds` before this
/// rule acts again. The highest `priority` wins; at equal priority a scale-up beats a scale-down.
public struct ScalingRule: Sendable, Equatable {
    public enum Comparison: String, Sendable, Equatable, CaseIterable {
        case above, below
    }
    public var name: String
    public var metric: FleetMetric
    public var comparison: Comparison
    public var threshold: Double
    public var forSeconds: Double
    public var change: Int
    public var cooldownSeconds: Double
    public var priority: Int

    public init(name: String, metric: FleetMetric, comparison: Comparison, threshold: Double,
                forSeconds: Double, change: Int, cooldownSeconds: Double, priority: Int = 0) {
        self.name = name
        self.metric = metric
        self.comparison = comparison
        self.threshold = threshold
        self.forSeconds = forSeconds
        self.change = change
        self.cooldownSeconds = cooldownSeconds
        self.priority = priority
    }

    /// Whether `value` meets the condition (strictly above / below the threshold).
    public func holds(_ value: Double) -> Bool {
        switch comparison {
        case .above: return value > threshold
        case .below: return value < threshold
        }
    }
}

/// `autoscaling.predictive`: Holt's linear trend over the arrival rate of the last
/// `windowSeconds`, forecast `horizonSeconds` ahead; `up` scales up to
/// ceil(forecast / capacityRPSPerReplica) replicas before the load arrives (never down).
public struct PredictiveSpec: Sendable, Equatable {
    /// Fewest arrival-rate samples the forecast needs inside its window (windowSeconds must
    /// cover this many intervalSeconds).
    public static let minimumSamples = 3
    /// Off unless set, like `autoscaling.enabled`.
    public var enabled = false
    public var windowSeconds: Double = 300
    public var horizonSeconds: Double = 30
    /// Requests per second one replica sustains; required when enabled.
    public var capacityRPSPerReplica: Double?
    /// Holt's level smoothing, in (0, 1].
    public var alpha: Double = 0.5
    /// Holt's trend smoothing, in (0, 1].
    public var beta: Double = 0.3
    public init() {}
}

public struct ProbeOverride: Sendable, Equatable {
    public var initialDelaySeconds: Int?
    public var periodSeconds: Int?
    public var failureThreshold: Int?
    public var timeoutSeconds: Int?
    public init() {}
}

public struct ProbesSpec: Sendable, Equatable {
    public var startup = ProbeOverride()
    public var readiness = ProbeOverride()
    public var liveness = ProbeOverride()
    public init() {}
}

public enum IntOrPercent: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case percent(Int)
    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .percent(let p): return "\(p)%"
        }
    }
}

public enum RolloutStrategy: String, Sendable, Equatable, CaseIterable {
    case rollingUpdate = "RollingUpdate"
    case recreate = "Recreate"
}

public struct RolloutSpec: Sendable, Equatable {
    public static let defaultProgressDeadlineSeconds = 1200
    public var strategy: RolloutStrategy = .rollingUpdate
    public var maxSurge: IntOrPercent?
    public var maxUnavailable: IntOrPercent?
    /// Share of traffic for a canary: `deploy apply` runs a changed pod template as a canary
    /// Deployment with about this share of the pods first (1…99).
    public var canaryPercent: Int?
    public var progressDeadlineSeconds: Int?
    /// How `up` and `deploy apply` judge a canary against the stable set (nil: the defaults).
    public var analysis: CanaryAnalysisSpec?
    public init() {}
}

/// `rollout.analysis`: the canary is promoted once it has served `minRequests` requests for
/// `durationSeconds` within these limits, and rolled back as soon as it breaks one (the defaults
/// are defined here and nowhere else).
public struct CanaryAnalysisSpec: Sendable, Equatable {
    /// Highest failed / finished share the canary may have (0…1).
    public var maxErrorRate: Double = 0.05
    /// Highest canary p95 TTFT / stable p95 TTFT.
    public var maxTTFTRatio: Double = 1.5
    /// Highest canary p95 TPOT / stable p95 TPOT.
    public var maxTPOTRatio: Double = 1.5
    /// Requests the canary must finish before it can be promoted.
    public var minRequests: Int = 20
    /// Seconds the canary must run before it can be promoted.
    public var durationSeconds: Double = 60
    public init() {}

    /// The canary's failure budget: the failures it may have before it is rolled back at once,
    /// without waiting for `minRequests` or `durationSeconds`: floor(maxErrorRate × minRequests),
    /// at least 1 (one transient failure does not end the analysis) unless maxErrorRate is 0
    /// (then 0: the first failure rolls back). More failures than this means the canary's error
    /// rate over its first `minRequests` requests is already above `maxErrorRate`.
    public var failureBudget: Int {
        guard maxErrorRate > 0 else { return 0 }
        let raw = (maxErrorRate * Double(minRequests) + 1e-9).rounded(.down)
        return max(1, Int(min(raw, Double(Int32.max))))
    }
}

/// How `up`'s gateway picks a replica for a request.
public enum GatewayPolicy: String, Sendable, Equatable, CaseIterable {
    case roundRobin = "round-robin"
    case leastOutstanding = "least-outstanding"
    /// The replica that served the same prompt prefix (its KV cache is warm), unless it has more
    /// than `affinityThreshold` in-flight requests over the least-loaded one.
    case prefixAffinity = "prefix-affinity"
}

/// `gateway`: `autoglm up`'s front door.
public struct GatewaySpec: Sendable, Equatable {
    public var policy: GatewayPolicy = .leastOutstanding
    /// How many more in-flight requests than the least-loaded replica the affinity replica may
    /// have before prefix-affinity falls back to least-outstanding (≥ 0).
    public var affinityThreshold: Int = 4
    public init() {}
}

public enum ModelCacheSpec: Sendable, Equatable {
    case pvc(name: String?, size: String, storageClass: String?)
    case emptyDir(sizeLimit: String?)
}

public struct MonitoringSpec: Sendable, Equatable {
    public var serviceMonitor = false
    /// Render a PrometheusRule (monitoring.coreos.com/v1) alerting on `slo` and the serving gauges.
    public var alerts = false
    /// Render a Grafana dashboard (a ConfigMap labelled `grafana_dashboard: "1"`, the sidecar convention).
    public var dashboard = false
    public var slo = SLOSpec()
    public init() {}
}

/// `monitoring.slo`: the objectives the PrometheusRule alerts on (defaults defined here only).
public struct SLOSpec: Sendable, Equatable {
    /// p95 time to first token, seconds, over 5 minutes.
    public var ttftP95Seconds: Double = 2
    /// Failed / finished requests over 5 minutes (client cancellations are not failures), 0…1.
    public var maxErrorRate: Double = 0.05
    /// Waiting requests / the server's queue limit (`--max-queue`) that counts as saturated, 0…1.
    public var queueSaturation: Double = 0.8
    /// KV-cache usage (0…1) that counts as near full.
    public var kvCacheUsage: Double = 0.95
    /// Container restarts within 15 minutes that raise an alert.
    public var maxRestarts: Int = 2
    public init() {}
}
