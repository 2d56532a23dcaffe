import Core
import Spec
import Backends

/// A Kubernetes minor version, e.g. 1.30. Decides which API versions are emitted.
public struct KubeVersion: Sendable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public static let `default` = KubeVersion(major: 1, minor: 30)
    /// Oldest supported: startupProbe and pod seccompProfile are GA from 1.19.
    public static let minimum = KubeVersion(major: 1, minor: 19)

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Accepts `1.30`, `v1.30`, `1.30.2`.
    public static func parse(_ text: String) throws(DeployError) -> KubeVersion {
        var s = Substring(text)
        if s.first == "v" { s = s.dropFirst() }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, parts[0] == "1",
              let minor = Int(parts[1]), minor >= 0, minor < 1000,
              parts.count == 2 || Int(parts[2]) != nil else {
            throw .invalidKubeVersion(text)
        }
        let v = KubeVersion(major: 1, minor: minor)
        if v < minimum { throw .unsupportedKubeVersion(text, minimum: minimum.description) }
        return v
    }

    public static func < (a: KubeVersion, b: KubeVersion) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
    public var description: String { "\(major).\(minor)" }

    var hpaAPIVersion: String { self < KubeVersion(major: 1, minor: 23) ? "autoscaling/v2beta2" : "autoscaling/v2" }
    var pdbAPIVersion: String { self < KubeVersion(major: 1, minor: 21) ? "policy/v1beta1" : "policy/v1" }
}

public struct RenderOptions: Sendable {
    public var kubeVersion: KubeVersion
    public init(kubeVersion: KubeVersion = .default) {
        self.kubeVersion = kubeVersion
    }
}

/// One rendered Kubernetes object.
public struct KubeObject: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    public var value: YAMLValue
    public var yaml: String { YAMLEmitter.emit(value) }
}

public struct RenderResult: Sendable {
    public var objects: [KubeObject]
    /// Informative remarks (nothing is wrong, but worth knowing).
    public var notes: [String]

    /// The multi-document YAML stream (`---` before each object).
    public var stream: String { YAMLEmitter.emitStream(objects.map(\.value)) }

    /// File names for `-o DIR`, one object per file, numbered in apply order.
    public var files: [(name: String, contents: String)] {
        objects.enumerated().map { i, o in
            let n = i + 1
            return ((n < 10 ? "0\(n)" : "\(n)") + "-" + o.kind.lowercased() + ".yaml", "---\n" + o.yaml)
        }
    }
}

/// Renders a validated `Spec` into Kubernetes manifests. Pure and deterministic: the same
/// spec and options always give the same bytes (stable key order and object order).
public enum KubeRenderer {
    public static let configPath = "/etc/autoglm/autoglm.yaml"
    public static let modelsPath = "/models"
    public static let runAsUser = 10001
    public static let terminationMarginSeconds = 15
    public static let defaultStartupPeriod = 10
    public static let defaultStartupFailureThreshold = 60  // 60 × 10 s = 10 min for model load
    /// Where the image built by `autoglm deploy containerfile` installs llama.cpp's server.
    public static let llamaServerPath = "/usr/local/bin/llama-server"
    /// The vLLM container listens here (loopback: only the autoglm container in the pod reaches it).
    public static let vllmHost = "127.0.0.1"
    public static let vllmPort = 8000
    /// Hugging Face cache of the vLLM container, on the model cache volume (survives restarts with a pvc).
    public static let hfHome = modelsPath + "/huggingface"
    public static let upstreamKeyEnv = "AUTOGLM_UPSTREAM_API_KEY"

    /// The model name the vLLM container serves: the repo id (vLLM's own default), so the
    /// upstream's /v1/models and the front door agree.
    public static func vllmServedModelName(_ spec: Spec) -> String {
        VLLMBackend.repoID(spec.model.ref) ?? spec.model.ref
    }

    /// The Secret the vLLM container reads HF_TOKEN from (optional: public repos need none).
    public static func hfTokenSecretName(_ spec: Spec) -> String { "\(spec.name)-hf-token" }

    public static func render(_ spec: Spec, options: RenderOptions = RenderOptions()) -> RenderResult {
        var notes: [String] = []
        let kv = options.kubeVersion
        let hpaEnabled = spec.autoscaling?.enabled ?? false
        let maxReplicas = hpaEnabled ? (spec.autoscaling?.maxReplicas ?? spec.replicas) : spec.replicas
        let minReplicas = hpaEnabled ? (spec.autoscaling?.minReplicas ?? spec.replicas) : spec.replicas

        let configYAML = YAMLEmitter.emit(SpecEncoder.value(podSpec(spec)))
        var objects: [KubeObject] = []

        objects.append(object("v1", "ServiceAccount", spec.name, spec, extra: [
            YAMLField("automountServiceAccountToken", .bool(false)),
        ]))
        objects.append(configMap(spec, configYAML: configYAML))
        // backend openai downloads nothing: no model cache (and no claim to provision).
        if case .pvc(let name, let size, let storageClass) = spec.modelCache, spec.backend.type != .openai {
            let access = maxReplicas > 1 ? "ReadWriteMany" : "ReadWriteOnce"
            if maxReplicas > 1 {
                notes.append("modelCache.pvc is shared by up to \(maxReplicas) pods, so it is ReadWriteMany; the storage class must support that (or use modelCache.emptyDir)")
            }
            objects.append(object("v1", "PersistentVolumeClaim", name ?? "\(spec.name)-models", spec, extra: [
                YAMLField("spec", .obj(
                    ("accessModes", .strings([access])),
                    ("storageClassName", .str(storageClass)),
                    ("resources", .obj(("requests", .obj(("storage", .string(size)))))))),
            ]))
        }
        objects.append(object("v1", "Service", spec.name, spec, extra: [
            YAMLField("spec", .obj(
                ("type", .string("ClusterIP")),
                ("selector", selectorLabels(spec)),
                ("ports", .list(servicePorts(spec))))),
        ]))
        objects.append(deployment(spec, configYAML: configYAML, hpaEnabled: hpaEnabled))
        objects += autoscalingObjects(spec, kubeVersion: kv, notes: &notes)
        let budget: YAMLField = minReplicas > 1
            ? YAMLField("maxUnavailable", .int(1))
            : YAMLField("minAvailable", .int(1))
        objects.append(object(kv.pdbAPIVersion, "PodDisruptionBudget", spec.name, spec, extra: [
            YAMLField("spec", .map([budget, YAMLField("selector", .obj(("matchLabels", selectorLabels(spec))))])),
        ]))
        if spec.monitoring.serviceMonitor {
            objects.append(object("monitoring.coreos.com/v1", "ServiceMonitor", spec.name, spec, extra: [
                YAMLField("spec", .obj(
                    ("selector", .obj(("matchLabels", selectorLabels(spec)))),
                    ("endpoints", .list([.obj(("port", .string("http")), ("path", .string("/metrics")),
                                              ("interval", .string("30s")))])))),
            ]))
        }
        // monitoring.alerts / monitoring.dashboard (KubeOperations).
        objects += KubeOperations.objects(spec)
        for (i, k) in spec.server.apiKeys.enumerated() {
            if case .env(let v) = k {
                notes.append("server.apiKeys[\(i)] reads $\(v), which the rendered Deployment does not set; prefer {secretRef: {name, key}} for Kubernetes")
            }
        }
        notes += backendNotes(spec)
        return RenderResult(objects: objects, notes: notes)
    }

    // MARK: pieces

    /// Label on every content-named ConfigMap of a spec (value: the spec's name), so `apply` can
    /// list them to garbage-collect the ones no retained revision uses, and `delete` can find them all.
    public static let configOfLabel = "autoglm.dev/config-of"

    /// `<name>-config-<fnv1a64 of the config>`: one immutable ConfigMap per distinct config, so a
    /// config change is a pod template change (a new ReplicaSet revision), and rolling the template
    /// back rolls the config back with it.
    public static func configMapName(_ spec: Spec, configYAML: String) -> String {
        configMapPrefix(spec.name) + fnv1a64Hex(configYAML)
    }

    /// `<name>-config-`: what every content-named ConfigMap of deployment `name` starts with.
    public static func configMapPrefix(_ name: String) -> String { "\(name)-config-" }

    static func configMap(_ spec: Spec, configYAML: String) -> KubeObject {
        let name = configMapName(spec, configYAML: configYAML)
        var labels: [YAMLField] = []
        if case .map(let f) = Self.labels(spec) { labels = f }
        labels.append(YAMLField(configOfLabel, .string(spec.name)))
        let value: YAMLValue = .map([
            YAMLField("apiVersion", .string("v1")),
            YAMLField("kind", .string("ConfigMap")),
            YAMLField("metadata", .obj(("name", .string(name)), ("labels", .map(labels)))),
            YAMLField("immutable", .bool(true)),
            YAMLField("data", .obj(("autoglm.yaml", .string(configYAML)))),
        ])
        return KubeObject(apiVersion: "v1", kind: "ConfigMap", name: name, value: value)
    }

    static func apiKeyEnvName(_ index: Int) -> String { "AUTOGLM_API_KEY_\(index)" }

    /// The spec as the pod sees it: secretRef API keys become env vars the Deployment fills
    /// from the Secret, so no key ever lands in the ConfigMap.
    static func podSpec(_ spec: Spec) -> Spec {
        var s = spec
        s.server.apiKeys = spec.server.apiKeys.enumerated().map { i, k in
            if case .secretRef = k { return .env(apiKeyEnvName(i)) }
            return k
        }
        if case .secretRef? = spec.backend.apiKey { s.backend.apiKey = .env(upstreamKeyEnv) }
        // The pod runs the image's programs, not the paths of the machine the spec was written on.
        s.backend.executable = nil
        return s
    }

    static func backendNotes(_ spec: Spec) -> [String] {
        var notes: [String] = []
        let b = spec.backend
        if let exe = b.executable {
            let runs = b.type == .vllm ? "vllm from \(b.image ?? BackendSpec.defaultVLLMImage)" : llamaServerPath
            notes.append("backend.executable (\(exe)) is for running on this machine; the pod runs \(runs)")
        }
        if b.type == .llamacpp, (spec.resources.gpu ?? 0) > 0 {
            notes.append("backend llamacpp offloads \(b.gpuLayers ?? BackendSpec.allGPULayers) layers (-ngl) to the GPU only with a CUDA build of llama-server; the image of `autoglm deploy containerfile` has a CPU build, so build one with -DGGML_CUDA=ON for GPU offload")
        }
        if b.type == .vllm {
            notes.append("backend vllm downloads \(vllmServedModelName(spec)) into the model cache (\(hfHome)); for a gated or private repo create the Secret: kubectl create secret generic \(hfTokenSecretName(spec)) --from-literal=token=hf_...")
        }
        if b.type == .openai, case .pvc = spec.modelCache {
            notes.append("modelCache.pvc is not used by backend openai (it downloads nothing), so no PersistentVolumeClaim is rendered")
        }
        if case .env(let v)? = b.apiKey, b.type == .openai {
            notes.append("backend.apiKey reads $\(v), which the rendered Deployment does not set; prefer {secretRef: {name, key}} for Kubernetes")
        }
        return notes
    }

    static func versionLabel(_ spec: Spec) -> String {
        let raw = spec.model.version ?? spec.model.channel ?? "latest"
        var out = String(raw.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") ? $0 : "_" }.prefix(63))
        while let f = out.first, !(f.isLetter || f.isNumber) { out.removeFirst() }
        while let l = out.last, !(l.isLetter || l.isNumber) { out.removeLast() }
        return out.isEmpty ? "latest" : out
    }

    static func selectorLabels(_ spec: Spec) -> YAMLValue {
        .obj(("app.kubernetes.io/name", .string("autoglm")), ("app.kubernetes.io/instance", .string(spec.name)))
    }

    static func labels(_ spec: Spec) -> YAMLValue {
        .obj(("app.kubernetes.io/name", .string("autoglm")),
             ("app.kubernetes.io/instance", .string(spec.name)),
             ("app.kubernetes.io/version", .string(versionLabel(spec))),
             ("app.kubernetes.io/managed-by", .string("autoglm")))
    }

    static func object(_ apiVersion: String, _ kind: String, _ name: String, _ spec: Spec, extra: [YAMLField]) -> KubeObject {
        let value: YAMLValue = .map([
            YAMLField("apiVersion", .string(apiVersion)),
            YAMLField("kind", .string(kind)),
            YAMLField("metadata", .obj(("name", .string(name)), ("labels", labels(spec)))),
        ] + extra)
        return KubeObject(apiVersion: apiVersion, kind: kind, name: name, value: value)
    }

    static func probe(path: String, _ o: ProbeOverride, initialDelay: Int, period: Int, failure: Int, timeout: Int) -> YAMLValue {
        .obj(("httpGet", .obj(("path", .string(path)), ("port", .string("http")))),
             ("initialDelaySeconds", .int(o.initialDelaySeconds ?? initialDelay)),
             ("periodSeconds", .int(o.periodSeconds ?? period)),
             ("timeoutSeconds", .int(o.timeoutSeconds ?? timeout)),
             ("failureThreshold", .int(o.failureThreshold ?? failure)))
    }

    static func resources(_ r: ResourcesSpec) -> YAMLValue? {
        // Requests == limits (Guaranteed QoS: no CPU throttling surprises under load).
        let amounts: YAMLValue = .obj(("cpu", .str(r.cpu)), ("memory", .str(r.memory)))
        var limits: [YAMLField] = []
        if case .map(let f) = amounts { limits = f }
        if let g = r.gpu, g > 0 { limits.append(YAMLField("nvidia.com/gpu", .int(g))) }
        if limits.isEmpty { return nil }
        return .obj(("requests", amounts == .map([]) ? nil : amounts), ("limits", .map(limits)))
    }

    static let containerSecurityContext: YAMLValue = .obj(
        ("allowPrivilegeEscalation", .bool(false)),
        ("readOnlyRootFilesystem", .bool(true)),
        ("runAsNonRoot", .bool(true)),
        ("runAsUser", .int(runAsUser)),
        ("runAsGroup", .int(runAsUser)),
        ("capabilities", .obj(("drop", .strings(["ALL"])))),
        ("seccompProfile", .obj(("type", .string("RuntimeDefault")))))

    static func pullCommand(_ spec: Spec) -> [String] {
        var cmd = ["autoglm", "pull", spec.model.ref]
        if let v = spec.model.version { cmd += ["--version", v] }
        if let c = spec.model.channel { cmd += ["--channel", c] }
        return cmd + ["--models-dir", modelsPath]
    }

    static func secretEnv(_ name: String, name secret: String, key: String, optional: Bool = false) -> YAMLValue {
        .obj(("name", .string(name)),
             ("valueFrom", .obj(("secretKeyRef", .obj(("name", .string(secret)), ("key", .string(key)),
                                                      ("optional", optional ? .bool(true) : nil))))))
    }

    /// The autoglm container in front of a vLLM container: it proxies, so a fixed small share
    /// (requests == limits).
    static let frontDoorResources: YAMLValue = .obj(
        ("requests", .obj(("cpu", .string("1")), ("memory", .string("1Gi")))),
        ("limits", .obj(("cpu", .string("1")), ("memory", .string("1Gi")))))

    /// `vllm serve` of the spec's repo on loopback: the GPUs, the spec's CPU and memory, the
    /// model cache as the Hugging Face cache, a memory-backed /dev/shm (NCCL and the workers'
    /// shared memory need more than the runtime's 64 MiB default).
    static func vllmContainer(_ spec: Spec, gpus: Int) -> YAMLValue {
        let args = VLLMBackend.serveArguments(model: spec.model, backend: spec.backend, gpus: gpus,
                                              servedModelName: vllmServedModelName(spec), host: vllmHost, port: vllmPort)
        let env: [YAMLValue] = [
            .obj(("name", .string("HF_HOME")), ("value", .string(hfHome))),
            secretEnv("HF_TOKEN", name: hfTokenSecretName(spec), key: "token", optional: true),
            // Non-root with a read-only root: every cache (vLLM, torch.compile, Triton, FlashInfer) under /tmp.
            .obj(("name", .string("HOME")), ("value", .string("/tmp"))),
            .obj(("name", .string("XDG_CACHE_HOME")), ("value", .string("/tmp/.cache"))),
            .obj(("name", .string("VLLM_NO_USAGE_STATS")), ("value", .string("1"))),
        ]
        return .obj(
            ("name", .string("vllm")),
            ("image", .string(spec.backend.image ?? BackendSpec.defaultVLLMImage)),
            ("command", .strings([VLLMBackend.program])),
            ("args", .strings(args)),
            ("env", .list(env)),
            ("resources", resources(spec.resources)),
            ("securityContext", containerSecurityContext),
            ("volumeMounts", .list([
                .obj(("name", .string("models")), ("mountPath", .string(modelsPath))),
                .obj(("name", .string("tmp")), ("mountPath", .string("/tmp"))),
                .obj(("name", .string("shm")), ("mountPath", .string("/dev/shm"))),
            ])))
    }

    /// The gRPC API's port when `server.grpcPort` turns it on (serve listens there in the pod).
    static func grpcPort(_ spec: Spec) -> Int? { spec.server.grpcPort.flatMap { $0 > 0 ? $0 : nil } }

    /// The server container's ports: `http`, and `grpc` with `server.grpcPort`.
    static func containerPorts(_ spec: Spec) -> [YAMLValue] {
        var ports: [YAMLValue] = [.obj(("name", .string("http")), ("containerPort", .int(spec.server.port)), ("protocol", .string("TCP")))]
        if let g = grpcPort(spec) {
            ports.append(.obj(("name", .string("grpc")), ("containerPort", .int(g)), ("protocol", .string("TCP"))))
        }
        return ports
    }

    /// The Service's ports, the same numbers as the container's; gRPC is HTTP/2 without TLS
    /// (`appProtocol: kubernetes.io/h2c`, for gateways and meshes that route by protocol).
    static func servicePorts(_ spec: Spec) -> [YAMLValue] {
        var ports: [YAMLValue] = [.obj(("name", .string("http")), ("port", .int(spec.server.port)),
                                       ("targetPort", .string("http")), ("protocol", .string("TCP")))]
        if let g = grpcPort(spec) {
            ports.append(.obj(("name", .string("grpc")), ("port", .int(g)), ("targetPort", .string("grpc")),
                              ("protocol", .string("TCP")), ("appProtocol", .string("kubernetes.io/h2c"))))
        }
        return ports
    }

    static func deployment(_ spec: Spec, configYAML: String, hpaEnabled: Bool) -> KubeObject {
        let gpus = spec.resources.gpu ?? 0
        let p = spec.probes
        let startupPeriod = p.startup.periodSeconds ?? defaultStartupPeriod
        let startupFailures = p.startup.failureThreshold ?? defaultStartupFailureThreshold
        let startupBudget = (p.startup.initialDelaySeconds ?? 0) + startupPeriod * startupFailures
        let deadline = spec.rollout.progressDeadlineSeconds
            ?? max(RolloutSpec.defaultProgressDeadlineSeconds, startupBudget + 120)

        let type = spec.backend.type
        // native and llamacpp pull a GGUF into the model cache; vllm downloads its repo there itself;
        // openai needs none.
        let pulls = type == .native || type == .llamacpp
        let usesModels = type != .openai
        var env: [YAMLValue] = pulls ? [.obj(("name", .string("AUTOGLM_MODELS_DIR")), ("value", .string(modelsPath)))] : []
        for (i, k) in spec.server.apiKeys.enumerated() {
            if case .secretRef(let name, let key) = k {
                env.append(secretEnv(apiKeyEnvName(i), name: name, key: key))
            }
        }
        if type == .llamacpp {
            env.append(.obj(("name", .string("AUTOGLM_LLAMA_SERVER")), ("value", .string(llamaServerPath))))
        }
        if type == .openai, case .secretRef(let name, let key)? = spec.backend.apiKey {
            env.append(secretEnv(upstreamKeyEnv, name: name, key: key))
        }
        let configMount: YAMLValue = .obj(("name", .string("config")), ("mountPath", .string("/etc/autoglm")), ("readOnly", .bool(true)))
        let modelsMount: YAMLValue = .obj(("name", .string("models")), ("mountPath", .string(modelsPath)))
        let tmpMount: YAMLValue = .obj(("name", .string("tmp")), ("mountPath", .string("/tmp")))
        let mounts: YAMLValue = .list(pulls ? [configMount, modelsMount, tmpMount] : [configMount, tmpMount])
        let initMounts: YAMLValue = .list([modelsMount, tmpMount])
        var command = ["autoglm", "serve", "--config", configPath]
        if type == .vllm { command += ["--backend-url", "http://\(vllmHost):\(vllmPort)"] }
        // With vllm the engine's container holds the CPU, memory and GPUs; the front door is light.
        let serverResources: YAMLValue? = type == .vllm ? frontDoorResources : resources(spec.resources)
        let server: YAMLValue = .obj(
            ("name", .string("autoglm")),
            ("image", .string(spec.image)),
            ("command", .strings(command)),
            ("ports", .list(containerPorts(spec))),
            ("env", env.isEmpty ? nil : .list(env)),
            ("resources", serverResources),
            ("startupProbe", probe(path: "/readyz", p.startup, initialDelay: 0, period: startupPeriod,
                                   failure: startupFailures, timeout: 5)),
            ("readinessProbe", probe(path: "/readyz", p.readiness, initialDelay: 0, period: 5, failure: 3, timeout: 3)),
            ("livenessProbe", probe(path: "/healthz", p.liveness, initialDelay: 0, period: 10, failure: 3, timeout: 5)),
            ("securityContext", containerSecurityContext),
            ("volumeMounts", mounts))
        let pull: YAMLValue = .obj(
            ("name", .string("pull-model")),
            ("image", .string(spec.image)),
            ("command", .strings(pullCommand(spec))),
            ("env", .list([.obj(("name", .string("AUTOGLM_MODELS_DIR")), ("value", .string(modelsPath)))])),
            ("resources", .obj(("requests", .obj(("cpu", .string("250m")), ("memory", .string("256Mi")))),
                               ("limits", .obj(("memory", .string("1Gi")))))),
            ("securityContext", containerSecurityContext),
            ("volumeMounts", initMounts))
        let containers: [YAMLValue] = type == .vllm ? [vllmContainer(spec, gpus: gpus), server] : [server]
        let modelsVolume: YAMLValue
        switch spec.modelCache {
        case .pvc(let name, _, _):
            modelsVolume = .obj(("name", .string("models")),
                                ("persistentVolumeClaim", .obj(("claimName", .string(name ?? "\(spec.name)-models")))))
        case .emptyDir(let limit):
            modelsVolume = .obj(("name", .string("models")), ("emptyDir", .obj(("sizeLimit", .str(limit)))))
        }
        let strategy: YAMLValue
        switch spec.rollout.strategy {
        case .recreate:
            strategy = .obj(("type", .string("Recreate")))
        case .rollingUpdate:
            strategy = .obj(("type", .string("RollingUpdate")),
                            ("rollingUpdate", .obj(
                                ("maxSurge", SpecEncoder.intOrPercent(spec.rollout.maxSurge ?? .int(1))),
                                ("maxUnavailable", SpecEncoder.intOrPercent(spec.rollout.maxUnavailable ?? .int(0))))))
        }
        let podSpec: YAMLValue = .obj(
            ("serviceAccountName", .string(spec.name)),
            ("automountServiceAccountToken", .bool(false)),
            ("terminationGracePeriodSeconds", .int(spec.server.drainTimeoutSeconds + terminationMarginSeconds)),
            ("securityContext", .obj(("runAsNonRoot", .bool(true)), ("runAsUser", .int(runAsUser)),
                                     ("runAsGroup", .int(runAsUser)), ("fsGroup", .int(runAsUser)),
                                     ("seccompProfile", .obj(("type", .string("RuntimeDefault")))))),
            ("nodeSelector", gpus > 0 ? .obj(("nvidia.com/gpu.present", .string("true"))) : nil),
            ("tolerations", gpus > 0 ? .list([.obj(("key", .string("nvidia.com/gpu")), ("operator", .string("Exists")),
                                                   ("effect", .string("NoSchedule")))]) : nil),
            ("initContainers", pulls ? .list([pull]) : nil),
            ("containers", .list(containers)),
            ("volumes", .list([
                .obj(("name", .string("config")), ("configMap", .obj(("name", .string(configMapName(spec, configYAML: configYAML)))))),
                usesModels ? modelsVolume : nil,
                .obj(("name", .string("tmp")), ("emptyDir", .map([]))),
                type == .vllm ? .obj(("name", .string("shm")), ("emptyDir", .obj(("medium", .string("Memory"))))) : nil,
            ].compactMap { $0 })))
        return object("apps/v1", "Deployment", spec.name, spec, extra: [
            YAMLField("spec", .obj(
                ("replicas", hpaEnabled ? nil : .int(spec.replicas)),
                ("revisionHistoryLimit", .int(5)),
                ("progressDeadlineSeconds", .int(deadline)),
                ("selector", .obj(("matchLabels", selectorLabels(spec)))),
                ("strategy", strategy),
                ("template", .obj(
                    ("metadata", .obj(("labels", labels(spec)))),
                    ("spec", podSpec))))),
        ])
    }

}

extension RenderResult {
    /// Writes one file per object into `dir` (created if needed); returns the paths.
    public func write(to dir: String) throws(DeployError) -> [String] {
        try FileOutput.write(files.map { ($0.name, $0.contents) }, to: dir)
    }
}
