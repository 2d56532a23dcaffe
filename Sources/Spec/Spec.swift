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
    /// Default target: waiting requests per pod, CPU utilization %, requests/s per pod.
    public var defaultTarget: Int {
        switch self {
        case .queue: return 4
        case .cpu: return 70
        case .rps: return 10
        }
    }
}

public struct AutoscalingSpec: Sendable, Equatable {
    public var enabled = false
    public var minReplicas = 1
    public var maxReplicas = 1
    public var metric: ScalingMetric = .queue
    public var target: Int = ScalingMetric.queue.defaultTarget
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
    /// Share of traffic for a canary (used by `deploy apply`, carried in the spec).
    public var canaryPercent: Int?
    public var progressDeadlineSeconds: Int?
    public init() {}
}

public enum ModelCacheSpec: Sendable, Equatable {
    case pvc(name: String?, size: String, storageClass: String?)
    case emptyDir(sizeLimit: String?)
}

public struct MonitoringSpec: Sendable, Equatable {
    public var serviceMonitor = false
    public init() {}
}
