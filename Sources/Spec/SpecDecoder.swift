import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Walks a positioned YAML tree into a `Spec`, collecting every error (never stops at the first).
struct SpecDecoder {
    let file: String
    var diags: [Diagnostic] = []
    var notes: [Diagnostic] = []

    init(file: String) { self.file = file }

    mutating func error(_ pos: SourcePosition?, _ message: String) {
        diags.append(Diagnostic(file: file, pos: pos, message: message))
    }

    mutating func note(_ pos: SourcePosition?, _ message: String) {
        notes.append(Diagnostic(file: file, pos: pos, message: message))
    }

    func sortedDiagnostics() -> [Diagnostic] { SpecLoader.dedupe(diags) }

    static let topKeys = ["apiVersion", "kind", "name", "model", "backend", "server", "image", "replicas",
                          "resources", "autoscaling", "probes", "rollout", "modelCache", "monitoring", "gateway", "environments",
                          "version", "quant"]

    /// The top-level keys a short-form model (`model: STRING`) is computed from: when an overlay
    /// sets any of them, the model and the backend are decided again.
    static let shortFormInputs = ["model", "backend", "resources", "version", "quant"]

    // MARK: root

    /// What each top-level key decoded to, before the cross-field rules. `validate` keeps the
    /// base's, so that an overlay re-decodes only the sections it sets.
    struct RootSections: Sendable {
        var name: String?
        var model: ModelSpec?
        var backend: BackendSpec?
        var server: ServerSpec?
        var image: String?
        var replicas: Int?
        var resources: ResourcesSpec?
        var autoscaling: AutoscalingSpec?
        var probes: ProbesSpec?
        var rollout: RolloutSpec?
        var modelCache: ModelCacheSpec?
        var monitoring: MonitoringSpec?
        var gateway: GatewaySpec?
    }

    mutating func decodeRoot(_ root: PNode) -> Spec? {
        guard let entries = mapping(root, path: "") else { return nil }
        let fields = Fields(entries)
        return decodeRoot(lookup: fields.value, checking: entries, rootPos: root.pos, base: nil, touched: []).spec
    }

    /// Decodes the top level. `lookup` finds a top-level key's value; `checking` are the entries
    /// whose keys are checked against the schema. With `base`, a key not in `touched` takes the
    /// base's section as it is (its diagnostics were reported when the base was decoded);
    /// the cross-field rules always run.
    mutating func decodeRoot(lookup: (String) -> PNode?, checking: [PEntry], rootPos: SourcePosition,
                             base: RootSections?, touched: Set<String>) -> (spec: Spec, sections: RootSections) {
        checkKeys(checking, allowed: Self.topKeys, path: "")
        func fresh(_ key: String) -> Bool { base == nil || touched.contains(key) }
        var s = base ?? RootSections()
        // The short form: `model: STRING` (see ShortForm).
        let modelNode = lookup("model")
        var shortModel: String?
        if let m = modelNode, case .scalar(let text, _, _) = m, !m.isNull { shortModel = text }
        let shortFresh = shortModel != nil && Self.shortFormInputs.contains(where: fresh)

        if fresh("apiVersion") {
            if let v = lookup("apiVersion") {
                if let str = string(v, path: "apiVersion"), str != Spec.apiVersion {
                    error(v.pos, "apiVersion '\(str)' is not supported; use '\(Spec.apiVersion)'")
                }
            } else if shortModel == nil {
                error(rootPos, "apiVersion is required; add 'apiVersion: \(Spec.apiVersion)' at the top")
            }
        }
        if shortModel == nil {
            for key in ["version", "quant"] where fresh(key) {
                if let v = lookup(key), !v.isNull {
                    error(v.pos, key == "version"
                          ? "version is the short form's model version (with model: ORG/REPO); with a model mapping write it as model.version, e.g. '1.0.0'"
                          : "quant picks a GGUF file of a short-form model (model: ORG/REPO); with a model mapping name it in the ref: hf://ORG/REPO:QUANT")
                }
            }
        }
        if fresh("kind"), let v = lookup("kind"), let str = string(v, path: "kind"), str != "Deployment" {
            error(v.pos, "kind '\(str)' is not supported; use 'Deployment' (or omit kind)")
        }
        if fresh("name") {
            s.name = nil
            if let v = lookup("name") {
                if let str = string(v, path: "name") {
                    if isDNSLabel(str) { s.name = str } else {
                        error(v.pos, "name '\(str)' must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit (e.g. 'glm-4-9b')")
                    }
                }
            } else if let short = shortModel {
                if let derived = ShortForm.derivedName(short) { s.name = derived } else {
                    error(rootPos, "name is required: none can be derived from model '\(abbreviated(short))'; add e.g. 'name: my-model' (a DNS-1123 label, used for every Kubernetes object)")
                }
            } else {
                error(rootPos, "name is required; add e.g. 'name: my-model' (a DNS-1123 label, used for every Kubernetes object)")
            }
        }
        if fresh("model"), shortModel == nil {
            s.model = nil
            if let v = modelNode { s.model = decodeModel(v) } else {
                error(rootPos, "model is required; add 'model: {ref: gemma3-270m}' (a registry alias, hf://ORG/REPO/FILE.gguf, or a path), or in the short form 'model: ORG/REPO'")
            }
        }
        if fresh("resources") { s.resources = lookup("resources").map { decodeResources($0) } }
        if let short = shortModel, let node = modelNode {
            if shortFresh {
                // The backend follows from the model and the GPUs (ShortForm.backend), then the
                // model's canonical ref from the backend.
                var explicit: BackendType?
                if let t = lookup("backend")?["type"], case .scalar(let text, _, _) = t { explicit = BackendType(rawValue: text) }
                let choice = ShortForm.backend(explicit: explicit, gpus: s.resources?.gpu ?? 0, model: short)
                if let b = lookup("backend") { s.backend = decodeBackend(b, defaultType: choice.type) } else {
                    var b = BackendSpec()
                    b.type = choice.type
                    s.backend = b
                }
                if let why = choice.reason { note(node.pos, why) }
                s.model = decodeShortModel(short, node: node, backend: s.backend?.type ?? choice.type,
                                           version: lookup("version"), quant: lookup("quant"))
            }
        } else if fresh("backend") { s.backend = lookup("backend").map { decodeBackend($0) } }
        if fresh("server") { s.server = lookup("server").map { decodeServer($0) } }
        if fresh("image") {
            s.image = nil
            if let v = lookup("image"), let str = string(v, path: "image") {
                if !isImageRef(str) {
                    error(v.pos, "image '\(str)' is not a container image reference; write e.g. '\(Spec.defaultImage)'")
                } else { s.image = str }
            }
        }
        if fresh("replicas") { s.replicas = lookup("replicas").flatMap { int($0, path: "replicas", Self.replicasRange) } }
        if fresh("autoscaling") { s.autoscaling = lookup("autoscaling").flatMap { decodeAutoscaling($0) } }
        if fresh("probes") { s.probes = lookup("probes").map { decodeProbes($0) } }
        if fresh("rollout") { s.rollout = lookup("rollout").map { decodeRollout($0) } }
        if fresh("modelCache") { s.modelCache = lookup("modelCache").flatMap { decodeModelCache($0) } }
        if fresh("monitoring") { s.monitoring = lookup("monitoring").map { decodeMonitoring($0) } }
        if fresh("gateway") { s.gateway = lookup("gateway").map { decodeGateway($0) } }

        var spec = Spec(name: s.name ?? "invalid", model: s.model ?? ModelSpec(ref: ""))
        if let b = s.backend { spec.backend = b }
        if let v = s.server { spec.server = v }
        if let v = s.image { spec.image = v }
        if let v = s.replicas { spec.replicas = v }
        if let v = s.resources { spec.resources = v }
        spec.autoscaling = s.autoscaling
        if let v = s.probes { spec.probes = v }
        if let v = s.rollout { spec.rollout = v }
        if let v = s.modelCache { spec.modelCache = v }
        if let v = s.monitoring { spec.monitoring = v }
        if let v = s.gateway { spec.gateway = v }

        // Cross-field rules.
        let replicasNode = lookup("replicas")
        if let a = spec.autoscaling, a.enabled {
            if let v = replicasNode, !v.isNull {
                if spec.replicas < a.minReplicas || spec.replicas > a.maxReplicas {
                    error(v.pos, "replicas (\(spec.replicas)) must be within autoscaling.minReplicas (\(a.minReplicas)) and autoscaling.maxReplicas (\(a.maxReplicas)) when autoscaling is enabled; remove replicas or change it")
                }
            } else {
                spec.replicas = a.minReplicas
            }
            if a.metric == .cpu && spec.resources.cpu == nil {
                error(lookup("autoscaling")?["metric"]?.pos ?? lookup("autoscaling")?.pos,
                      "autoscaling.metric cpu needs resources.cpu: the autoscaler measures utilization against the CPU request; set resources.cpu (e.g. '4')")
            }
        }
        if s.model != nil { checkModel(spec.model, backend: spec.backend.type, node: lookup("model")) }
        if spec.backend.type == .vllm, (spec.resources.gpu ?? 0) < 1 {
            let pos = lookup("resources")?["nvidia.com/gpu"]?.pos ?? lookup("resources")?["limits"]?["nvidia.com/gpu"]?.pos
                ?? lookup("backend")?["type"]?.pos ?? lookup("backend")?.pos
            error(pos, "backend vllm needs a GPU (the \(BackendSpec.defaultVLLMImage) image runs on CUDA); set resources.nvidia.com/gpu: 1 (more shard the model with tensor parallelism)")
        }
        if spec.backend.type == .llamacpp, let layers = spec.backend.gpuLayers, layers > 0, (spec.resources.gpu ?? 0) < 1 {
            note(lookup("backend")?["gpuLayers"]?.pos, "backend.gpuLayers offloads \(layers) layers to a GPU, but resources.nvidia.com/gpu is not set: llama-server runs on the CPU")
        }
        if let gpus = spec.resources.gpu, gpus > 0, spec.backend.type != .llamacpp, spec.backend.type != .vllm {
            let pos = lookup("resources")?["nvidia.com/gpu"]?.pos
            switch spec.backend.type {
            case .native:
                note(pos, "resources.nvidia.com/gpu: the native backend runs on CPU; the GPU is requested for the pod but not used by the engine (use backend.type llamacpp to use it)")
            case .openai:
                note(pos, "resources.nvidia.com/gpu: backend openai forwards to an upstream; the GPU is requested for the pod but not used")
            case .llamacpp, .vllm: break
            }
        }
        if spec.backend.type == .openai, fresh("backend") {
            let knobs = Self.openaiIgnored
            if let b = lookup("backend"), case .mapping(let be, _) = b {
                for e in be where knobs.contains(e.key) {
                    note(e.keyPos, "backend.\(e.key) is ignored by backend openai (the upstream owns its engine settings)")
                }
            }
        }
        return (spec, s)
    }

    // MARK: sections

    mutating func decodeModel(_ node: PNode) -> ModelSpec? {
        guard let entries = mapping(node, path: "model") else { return nil }
        checkKeys(entries, allowed: ["ref", "version", "channel", "revision"], path: "model")
        var m = ModelSpec(ref: "")
        if let v = entries.value("ref") {
            if let s = string(v, path: "model.ref") {
                if s.isEmpty { error(v.pos, "model.ref must not be empty; write e.g. 'gemma3-270m' or 'hf://ORG/REPO/FILE.gguf'") }
                m.ref = s
            }
        } else {
            error(node.pos, "model.ref is required; write e.g. 'ref: gemma3-270m', 'ref: hf://ORG/REPO/FILE.gguf' or a path")
        }
        let vNode = entries.value("version")
        let cNode = entries.value("channel")
        if let v = vNode, let s = string(v, path: "model.version") {
            switch VersionSyntax.parse(s) {
            case .success: m.version = s
            case .failure(let why):
                error(v.pos, "model.version '\(abbreviated(s))' is not a SemVer version (\(why.reason)); write MAJOR.MINOR.PATCH, e.g. '1.0.0' (quote it)")
            }
        }
        if let v = cNode, let s = string(v, path: "model.channel") {
            if NameSyntax.isTag(s) { m.channel = s } else if VersionSyntax.isVersion(s) {
                error(v.pos, "model.channel '\(s)' is a version, not a channel; write it as model.version: \"\(s)\"")
            } else {
                error(v.pos, "model.channel '\(abbreviated(s))' is not a valid channel; use stable, canary, latest or a tag (\(NameSyntax.tagForm))")
            }
        }
        if let v = vNode, let c = cNode, !v.isNull, !c.isNull {
            error(c.pos, "model: set either version or channel, not both; remove one")
        }
        if let v = entries.value("revision"), let s = string(v, path: "model.revision") {
            if isRevision(s) { m.revision = s } else {
                error(v.pos, "model.revision '\(abbreviated(s))' is not a Hugging Face revision; write a branch, tag or commit hash (letters, digits, '.', '_', '-', '/'), e.g. 'main'")
            }
        }
        return m
    }

    /// The rules tying model.ref (and version, channel, revision) to the backend that loads it:
    /// native and llamacpp pull a GGUF (the ref must be one `autoglm pull` accepts), vllm loads a
    /// Hugging Face repo id itself, openai forwards the name to the upstream.
    mutating func checkModel(_ m: ModelSpec, backend: BackendType, node: PNode?) {
        let refPos = node?["ref"]?.pos ?? node?.pos
        let ref = m.ref
        guard !ref.allSatisfy({ $0 == " " || $0 == "\t" }) else { return }
        let ggufForms = "an alias (gemma3-270m), hf://ORG/REPO[@REVISION]/FILE.gguf, pip:PACKAGE, an https:// URL or a path to a .gguf"
        switch backend {
        case .vllm:
            if RefSyntax.repoID(ref) == nil {
                let gguf = ref.lowercased().hasSuffix(".gguf")
                error(refPos, "model.ref '\(abbreviated(ref))' is not a Hugging Face repo id, which backend vllm needs (it downloads the repository itself); write ORG/REPO or hf://ORG/REPO, e.g. 'THUDM/glm-4-9b-chat-hf'"
                      + (gguf ? " (a .gguf file runs on backend llamacpp)" : ""))
            }
            if let v = node?["channel"], !v.isNull {
                error(v.pos, "model.channel names a channel in autoglm's registry (a GGUF), which backend vllm does not use (vLLM downloads the repo itself); pin the repo with model.revision (a branch, tag or commit) instead")
            }
            if let v = node?["version"], !v.isNull {
                note(v.pos, "model.version only labels the deployment (app.kubernetes.io/version) with backend vllm: vLLM downloads the repo itself; pin its contents with model.revision (a branch, tag or commit)")
            }
        case .native, .llamacpp:
            if let repo = RefSyntax.repoID(ref) {
                error(refPos, "model.ref '\(abbreviated(ref))' is a whole Hugging Face repository, which backend \(backend.rawValue) cannot load; name one GGUF file in it, hf://\(repo)/FILE.gguf (or set backend.type: vllm for a safetensors repo)")
            } else {
                do { _ = try RefSyntax.classify(ref, fileExists: { access($0, F_OK) == 0 }) } catch let refError {
                    switch refError {
                    case .malformed(let reason):
                        error(refPos, "model.ref '\(abbreviated(ref))' is not a reference autoglm pull accepts (\(reason)); write \(ggufForms)")
                    case .invalidDigest(let d):
                        error(refPos, "model.ref '\(abbreviated(ref))': the #sha256= digest '\(abbreviated(d))' is not 64 hexadecimal digits")
                    }
                }
            }
            if let v = node?["revision"], !v.isNull {
                error(v.pos, "model.revision is for backend vllm; pin a GGUF's revision in the ref (hf://ORG/REPO@REVISION/FILE.gguf) or use model.version")
            }
        case .openai:
            for key in ["version", "channel", "revision"] {
                if let v = node?[key], !v.isNull {
                    note(v.pos, "model.\(key) is ignored by backend openai (the upstream serves its own models; model.ref is the name autoglm asks it for)")
                }
            }
        }
    }

    static let backendKeys = ["type", "url", "threads", "maxSeqs", "maxBatchedTokens", "kvCacheMB", "contextLength",
                              "kvCacheType", "batchWaitMs", "ubatchTokens", "flashAttention", "prefixCache", "speculative",
                              "speculativeK", "gpuLayers", "gpuMemoryUtilization", "dtype", "quantization", "executable", "image", "apiKey"]

    /// Which backends each backend setting means something to (unlisted keys: all engines).
    static let backendKeyOwners: [String: [BackendType]] = [
        "ubatchTokens": [.llamacpp], "flashAttention": [.llamacpp], "gpuLayers": [.llamacpp],
        "gpuMemoryUtilization": [.vllm], "dtype": [.vllm], "quantization": [.vllm], "image": [.vllm],
        "executable": [.llamacpp, .vllm], "apiKey": [.openai],
        "threads": [.native, .llamacpp, .openai], "kvCacheMB": [.native, .llamacpp, .openai],
        "kvCacheType": [.native, .llamacpp, .openai], "batchWaitMs": [.native, .llamacpp, .openai],
        "prefixCache": [.native, .llamacpp, .vllm, .openai],
        "speculative": [.native], "speculativeK": [.native],
    ]

    /// Engine settings backend openai ignores with a note (the upstream owns its engine).
    static let openaiIgnored: Set<String> = ["threads", "maxSeqs", "maxBatchedTokens", "kvCacheMB", "contextLength",
                                             "kvCacheType", "batchWaitMs", "ubatchTokens", "flashAttention", "prefixCache",
                                             "speculative", "speculativeK"]

    /// Why a setting means nothing to vLLM (an error: the spec says something that would not happen).
    static let notForVLLM: [String: String] = [
        "threads": "vLLM runs the model on the GPU and picks its own CPU threads",
        "kvCacheMB": "vLLM sizes its KV cache from backend.gpuMemoryUtilization",
        "kvCacheType": "the KV cache follows backend.dtype on vLLM",
        "batchWaitMs": "it is a native-engine setting",
        "ubatchTokens": "it is a llama.cpp setting",
        "flashAttention": "it is a llama.cpp setting (vLLM picks its attention backend itself)",
        "speculative": "it is a native-engine setting (vLLM's own is --speculative-config)",
        "speculativeK": "it is a native-engine setting (vLLM's own is --speculative-config)",
    ]

    mutating func decodeBackend(_ node: PNode, defaultType: BackendType = .native) -> BackendSpec {
        var b = BackendSpec()
        b.type = defaultType
        guard let entries = mapping(node, path: "backend") else { return b }
        checkKeys(entries, allowed: Self.backendKeys, path: "backend")
        if let v = entries.value("type"), let t: BackendType = enumValue(v, path: "backend.type") { b.type = t }
        if let v = entries.value("url"), let s = string(v, path: "backend.url") {
            if s.hasPrefix("http://") || s.hasPrefix("https://"), s.count > 8 { b.url = s } else {
                error(v.pos, "backend.url '\(s)' must be an http:// or https:// URL of the upstream, e.g. 'http://vllm:8000/v1'")
            }
        }
        if b.type == .openai, b.url == nil, entries.value("url") == nil {
            error(node.pos, "backend.url is required for backend type openai; set it to the upstream's base URL, e.g. 'http://vllm:8000/v1'")
        }
        if b.type != .openai, let v = entries.value("url"), !v.isNull {
            error(v.pos, "backend.url is only used with backend type openai; remove it or set type: openai")
        }
        if let v = entries.value("threads") { b.threads = int(v, path: "backend.threads", 1...1024) }
        if let v = entries.value("maxSeqs") { b.maxSeqs = int(v, path: "backend.maxSeqs", 1...4096) }
        if let v = entries.value("maxBatchedTokens") { b.maxBatchedTokens = int(v, path: "backend.maxBatchedTokens", 1...1_048_576) }
        if let v = entries.value("kvCacheMB") { b.kvCacheMB = int(v, path: "backend.kvCacheMB", 1...4_194_304) }
        if let v = entries.value("contextLength") { b.contextLength = int(v, path: "backend.contextLength", 16...2_097_152) }
        if b.type != .vllm, let v = entries.value("kvCacheType"), let s = string(v, path: "backend.kvCacheType") {
            if let t = KVCacheType(rawValue: s.lowercased()), b.type == .llamacpp || KVCacheType.native.contains(t) {
                b.kvCacheType = t
            } else if KVCacheType(rawValue: s.lowercased()) != nil {
                error(v.pos, "backend.kvCacheType '\(s)' is only supported by backend type llamacpp; the native engine stores f16 (the default) or f32")
            } else {
                error(v.pos, "backend.kvCacheType '\(s)' is not supported; use f16 (half the memory, the default) or f32"
                      + (b.type == .llamacpp ? " or q8_0" : ""))
            }
        }
        if let v = entries.value("batchWaitMs") { b.batchWaitMs = int(v, path: "backend.batchWaitMs", 0...10_000) }
        if let v = entries.value("ubatchTokens") { b.ubatchTokens = int(v, path: "backend.ubatchTokens", 1...1_048_576) }
        if let v = entries.value("flashAttention") { b.flashAttention = bool(v, path: "backend.flashAttention") }
        if let v = entries.value("prefixCache") { b.prefixCache = bool(v, path: "backend.prefixCache") }
        if let v = entries.value("speculative"), let s = string(v, path: "backend.speculative") {
            do { b.speculative = try SpeculativeSyntax.method(s) } catch let e {
                error(v.pos, "backend.speculative: \(e)")
            }
        }
        if let v = entries.value("speculativeK") {
            b.speculativeK = int(v, path: "backend.speculativeK", SpeculativeSyntax.kRange)
        }
        if let v = entries.value("gpuLayers") { b.gpuLayers = int(v, path: "backend.gpuLayers", 0...100_000) }
        if let v = entries.value("gpuMemoryUtilization") { b.gpuMemoryUtilization = fraction(v, path: "backend.gpuMemoryUtilization") }
        if let v = entries.value("dtype"), let s = string(v, path: "backend.dtype") {
            if BackendSpec.vllmDTypes.contains(s) { b.dtype = s } else {
                let hint = suggestion(for: s, among: BackendSpec.vllmDTypes).map { "; did you mean '\($0)'?" } ?? ""
                error(v.pos, "backend.dtype '\(abbreviated(s))' is not one of \(BackendSpec.vllmDTypes.joined(separator: ", "))\(hint)")
            }
        }
        if let v = entries.value("quantization"), let s = string(v, path: "backend.quantization") {
            if BackendSpec.vllmQuantizations.contains(s) { b.quantization = s } else {
                let hint = suggestion(for: s, among: BackendSpec.vllmQuantizations).map { "did you mean '\($0)'? " } ?? ""
                error(v.pos, "backend.quantization '\(abbreviated(s))' is not a method vLLM \(BackendSpec.defaultVLLMImage.split(separator: ":").last ?? "") runs here; \(hint)use one of \(BackendSpec.vllmQuantizations.joined(separator: ", ")) (or omit it: vLLM reads the method from the repo's config)")
            }
        }
        if let v = entries.value("executable"), let s = string(v, path: "backend.executable") {
            if s.isEmpty || s.contains(where: { $0 == "\n" || $0 == "\0" }) {
                error(v.pos, "backend.executable must name the server program (a path or a name on $PATH), e.g. '/usr/local/bin/llama-server'")
            } else { b.executable = s }
        }
        if let v = entries.value("image"), let s = string(v, path: "backend.image") {
            if isImageRef(s) { b.image = s } else {
                error(v.pos, "backend.image '\(abbreviated(s))' is not a container image reference; write e.g. '\(BackendSpec.defaultVLLMImage)'")
            }
        }
        if let v = entries.value("apiKey"), !v.isNull { b.apiKey = keySource(v, path: "backend.apiKey") }
        for e in entries where !e.value.isNull {
            guard let owners = Self.backendKeyOwners[e.key], !owners.contains(b.type) else { continue }
            if b.type == .vllm, let why = Self.notForVLLM[e.key] {
                error(e.value.pos, "backend.\(e.key) means nothing to backend vllm (\(why)); remove it")
            } else if b.type == .openai {
                // Engine knobs are notes (decodeRoot); settings of a program autoglm would launch are errors.
                if Self.openaiIgnored.contains(e.key) { continue }
                error(e.value.pos, "backend.\(e.key) is a \(owners.map(\.rawValue).joined(separator: "/")) setting; backend openai forwards to an upstream that owns its engine (remove it)")
            } else if e.key == "executable" {
                error(e.value.pos, "backend.executable names the llama-server or vllm program; backend \(b.type.rawValue) has none (remove it)")
            } else if e.key == "apiKey" {
                error(e.value.pos, "backend.apiKey is the key autoglm sends to an openai upstream; remove it or set backend.type: openai (clients' keys go in server.apiKeys)")
            } else if owners == [.native] {
                error(e.value.pos, "backend.\(e.key) is a native-engine setting; remove it or set backend.type: native")
            } else if owners == [.llamacpp] {
                error(e.value.pos, "backend.\(e.key) is a llama.cpp setting; remove it or set backend.type: llamacpp")
            } else if owners == [.vllm] {
                error(e.value.pos, "backend.\(e.key) is a vLLM setting; remove it or set backend.type: vllm"
                      + (e.key == "image" ? " (the pod's autoglm image is the top-level image)" : ""))
            }
        }
        return b
    }

    /// A number in (0, 1], e.g. 0.9.
    mutating func fraction(_ node: PNode, path: String) -> Double? {
        if node.isNull { return nil }
        let want = "a number greater than 0 and at most 1 (the share of each GPU's memory), e.g. 0.9"
        guard case .scalar(let s, let quoted, _) = node, !quoted else {
            error(node.pos, "\(path) must be \(want), got \(node.kindName)")
            return nil
        }
        guard let d = Double(s), d.isFinite, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+") }) else {
            error(node.pos, "\(path) must be \(want), got '\(abbreviated(s))'")
            return nil
        }
        guard d > 0, d <= 1 else {
            error(node.pos, "\(path) (\(s)) must be greater than 0 and at most 1, e.g. 0.9")
            return nil
        }
        return d
    }

    /// `{secretRef: {name, key}}` or `{env: VAR}`; a literal key is refused.
    mutating func keySource(_ item: PNode, path: String) -> APIKeySource? {
        if case .scalar = item, !item.isNull {
            error(item.pos, "\(path): literal API keys are not allowed (they would end up in a ConfigMap); use {secretRef: {name: SECRET, key: KEY}} or {env: VAR}")
            return nil
        }
        guard let e = mapping(item, path: path) else { return nil }
        checkKeys(e, allowed: ["secretRef", "env"], path: path)
        let sr = e.value("secretRef"), en = e.value("env")
        if sr != nil && en != nil {
            error(item.pos, "\(path): set either secretRef or env, not both")
        } else if let sr {
            guard let se = mapping(sr, path: "\(path).secretRef") else { return nil }
            checkKeys(se, allowed: ["name", "key"], path: "\(path).secretRef")
            var name: String?, key: String?
            if let n = se.value("name") {
                name = string(n, path: "\(path).secretRef.name")
                if let nn = name, !isDNSSubdomain(nn) {
                    error(n.pos, "\(path).secretRef.name '\(nn)' is not a valid Secret name (lowercase letters, digits, '-', '.')")
                    name = nil
                }
            } else { error(sr.pos, "\(path).secretRef.name is required (the Secret's name)") }
            if let k = se.value("key") {
                key = string(k, path: "\(path).secretRef.key")
                if let kk = key, kk.isEmpty || !kk.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) {
                    error(k.pos, "\(path).secretRef.key '\(kk)' is not a valid Secret key (letters, digits, '-', '_', '.')")
                    key = nil
                }
            } else { error(sr.pos, "\(path).secretRef.key is required (the key inside the Secret)") }
            if let name, let key { return .secretRef(name: name, key: key) }
        } else if let en {
            if let name = string(en, path: "\(path).env") {
                if YAMLTree.isValidVarName(name) { return .env(name) }
                error(en.pos, "\(path).env '\(name)' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            }
        } else {
            error(item.pos, "\(path) must have secretRef: {name, key} or env: VAR")
        }
        return nil
    }

    mutating func decodeServer(_ node: PNode) -> ServerSpec {
        var s = ServerSpec()
        guard let entries = mapping(node, path: "server") else { return s }
        checkKeys(entries, allowed: ["port", "apiKeys", "drainTimeoutSeconds", "otlpEndpoint", "traceSampleRatio", "grpcPort"], path: "server")
        if let v = entries.value("otlpEndpoint") { s.otlpEndpoint = string(v, path: "server.otlpEndpoint") }
        if let v = entries.value("traceSampleRatio") {
            s.traceSampleRatio = number(v, path: "server.traceSampleRatio", min: 0, max: 1, example: "0.1")
        }
        if let v = entries.value("port"), let p = int(v, path: "server.port", 1...65535) { s.port = p }
        if let v = entries.value("grpcPort"), let p = int(v, path: "server.grpcPort", 0...65535) {
            if p == s.port {
                error(v.pos, "server.grpcPort \(p) is also server.port: the gRPC API needs a port of its own (e.g. \(p == 50051 ? 50052 : 50051)), or 0 for none")
            } else {
                s.grpcPort = p
            }
        }
        if let v = entries.value("drainTimeoutSeconds"), let t = int(v, path: "server.drainTimeoutSeconds", 0...3600) {
            s.drainTimeoutSeconds = t
        }
        if let v = entries.value("apiKeys"), !v.isNull {
            guard case .sequence(let items, _) = v else {
                error(v.pos, "server.apiKeys must be a list of {secretRef: {name, key}} or {env: VAR}, got \(v.kindName)")
                return s
            }
            for (i, item) in items.enumerated() {
                if let k = keySource(item, path: "server.apiKeys[\(i)]") { s.apiKeys.append(k) }
            }
        }
        return s
    }

    mutating func decodeResources(_ node: PNode) -> ResourcesSpec {
        var r = ResourcesSpec()
        guard let entries = mapping(node, path: "resources") else { return r }
        checkKeys(entries, allowed: ["cpu", "memory", "nvidia.com/gpu", "limits", "requests"], path: "resources")
        let limits = entries.value("limits").flatMap { $0.isNull ? nil : $0 }
        let requests = entries.value("requests").flatMap { $0.isNull ? nil : $0 }
        guard limits != nil || requests != nil else { return decodeAmounts(entries, path: "resources") }
        // The Kubernetes shape: resources.limits / resources.requests (the short form).
        if let flat = entries.first(where: { ["cpu", "memory", "nvidia.com/gpu"].contains($0.key) && !$0.value.isNull }) {
            error(flat.keyPos, "resources.\(flat.key): write either cpu, memory and nvidia.com/gpu directly under resources, or Kubernetes limits/requests, not both")
        }
        let l = limits.flatMap { n in mapping(n, path: "resources.limits").map { decodeAmounts($0, path: "resources.limits") } } ?? ResourcesSpec()
        let q = requests.flatMap { n in mapping(n, path: "resources.requests").map { decodeAmounts($0, path: "resources.requests") } } ?? ResourcesSpec()
        // autoglm renders requests equal to limits (Guaranteed QoS): one amount per resource.
        for (key, a, b) in [("cpu", l.cpu, q.cpu), ("memory", l.memory, q.memory)] {
            if let a, let b, quantityValue(a) != quantityValue(b) {
                error(requests?[key]?.pos, "resources.requests.\(key) (\(b)) differs from resources.limits.\(key) (\(a)): autoglm sets requests equal to limits (Guaranteed QoS); make them equal or keep only limits")
            }
        }
        if let a = l.gpu, let b = q.gpu, a != b {
            error(requests?["nvidia.com/gpu"]?.pos, "resources.requests.nvidia.com/gpu (\(b)) differs from resources.limits.nvidia.com/gpu (\(a)): Kubernetes needs GPU requests equal to limits; make them equal or keep only limits")
        }
        r.cpu = l.cpu ?? q.cpu
        r.memory = l.memory ?? q.memory
        r.gpu = l.gpu ?? q.gpu
        return r
    }

    /// cpu, memory and nvidia.com/gpu of `resources` (or of its limits/requests).
    mutating func decodeAmounts(_ entries: [PEntry], path: String) -> ResourcesSpec {
        var r = ResourcesSpec()
        if path != "resources" { checkKeys(entries, allowed: ["cpu", "memory", "nvidia.com/gpu"], path: path) }
        if let v = entries.value("cpu") { r.cpu = quantity(v, path: "\(path).cpu", example: "'4' or '500m'", bounds: .cpu) }
        if let v = entries.value("memory") { r.memory = quantity(v, path: "\(path).memory", example: "'16Gi'", bounds: .memory) }
        if let v = entries.value("nvidia.com/gpu") { r.gpu = int(v, path: "\(path).nvidia.com/gpu", 0...16) }
        return r
    }

    /// `model: STRING` (the short form): a Hugging Face repository becomes the ref the backend
    /// loads — the repo id for vllm, `hf://ORG/REPO[@REV]:QUANT` (quant, else
    /// `ShortForm.defaultQuant`) for native and llamacpp; any other string must be a reference
    /// `autoglm pull` accepts and is taken as model.ref. `version` → model.version (normalized
    /// to SemVer).
    mutating func decodeShortModel(_ text: String, node: PNode, backend: BackendType, version: PNode?, quant: PNode?) -> ModelSpec? {
        let forms = "write e.g. 'THUDM/glm-4-9b-chat' (a Hugging Face repository), 'hf://ORG/REPO:Q4_K_M', 'hf://ORG/REPO/FILE.gguf' or an alias such as 'gemma3-270m'"
        var m = ModelSpec(ref: "")
        var q: String?
        var quantOK = true
        if let qn = quant, !qn.isNull, let qs = string(qn, path: "quant") {
            if RefSyntax.isQuant(qs) { q = qs } else {
                quantOK = false
                error(qn.pos, "quant '\(abbreviated(qs))' is not a GGUF quantization name; write e.g. Q4_K_M, Q5_K_M, Q8_0, IQ4_XS or F16")
            }
        }
        func quantMeaningless(_ why: String) {
            if let qn = quant, !qn.isNull, quantOK { error(qn.pos, "quant \(why); remove it") }
        }
        if text.allSatisfy({ $0 == " " || $0 == "\t" }) {
            error(node.pos, "model must not be empty; \(forms)")
            return nil
        }
        if let r = ShortForm.repository(text) {
            switch backend {
            case .vllm:
                m.ref = r.repo
                m.revision = r.revision
                quantMeaningless("picks a GGUF file, but backend vllm loads the repository's safetensors (set backend.type: native or llamacpp to serve a GGUF)")
            case .native, .llamacpp:
                m.ref = "hf://\(r.repo)\(r.revision.map { "@\($0)" } ?? ""):\(q ?? ShortForm.defaultQuant)"
            case .openai:
                m.ref = text
                quantMeaningless("picks a GGUF file, but backend openai forwards to an upstream that serves its own models")
            }
        } else {
            if backend != .openai {
                do { _ = try RefSyntax.classify(text, fileExists: { access($0, F_OK) == 0 }) } catch let refError {
                    let why: String
                    switch refError {
                    case .malformed(let reason): why = reason
                    case .invalidDigest(let d): why = "the #sha256= digest '\(abbreviated(d))' is not 64 hexadecimal digits"
                    }
                    error(node.pos, "model '\(abbreviated(text))' is neither a Hugging Face repository (ORG/REPO) nor a reference autoglm pull accepts (\(why)); \(forms)")
                    return nil
                }
            }
            m.ref = text
            quantMeaningless(RefSyntax.hubQuant(text) != nil ? "repeats what the model's ':QUANT' already picks"
                             : "applies to a Hugging Face repository (model: ORG/REPO); model '\(abbreviated(text))' names its file already")
        }
        if let v = version, !v.isNull, let vs = string(v, path: "version") {
            if let n = ShortForm.normalizedVersion(vs) { m.version = n } else {
                error(v.pos, "version '\(abbreviated(vs))' is not a version; write MAJOR[.MINOR[.PATCH]] with an optional 'v', e.g. 'v1.0' (→ model.version 1.0.0) or '1.2.3'")
            }
        }
        return m
    }

    mutating func decodeAutoscaling(_ node: PNode) -> AutoscalingSpec? {
        guard let entries = mapping(node, path: "autoscaling") else { return nil }
        checkKeys(entries, allowed: ["enabled", "minReplicas", "maxReplicas", "metric", "target", "provider", "prometheusURL",
                                     "scaleDownStabilization", "rules", "predictive", "intervalSeconds"],
                  path: "autoscaling")
        var a = AutoscalingSpec()
        if let v = entries.value("enabled"), let b = bool(v, path: "autoscaling.enabled") { a.enabled = b }
        let minNode = entries.value("minReplicas"), maxNode = entries.value("maxReplicas")
        if let v = entries.value("enabled"), !v.isNull, !a.enabled {
            for (key, n) in [("minReplicas", minNode), ("maxReplicas", maxNode)] {
                if let n, !n.isNull {
                    error(n.pos, "autoscaling.\(key) means nothing while autoscaling.enabled is false (the fixed count is replicas); set enabled: true to autoscale, or remove \(key) (in an overlay: \(key): null)")
                }
            }
        }
        if let v = minNode, let i = int(v, path: "autoscaling.minReplicas", 1...1000) { a.minReplicas = i }
        if let v = maxNode, let i = int(v, path: "autoscaling.maxReplicas", 1...1000) { a.maxReplicas = i }
        else if maxNode == nil && a.enabled {
            error(node.pos, "autoscaling.maxReplicas is required when autoscaling is enabled; add e.g. 'maxReplicas: 4'")
            a.maxReplicas = max(a.minReplicas, 1)
        } else if maxNode == nil { a.maxReplicas = a.minReplicas }
        if let v = entries.value("metric"), let m: ScalingMetric = enumValue(v, path: "autoscaling.metric") { a.metric = m }
        a.target = a.metric.defaultTarget
        if let v = entries.value("target") {
            let range = a.metric == .cpu ? 1...100 : 1...100_000
            if let t = int(v, path: "autoscaling.target", range) { a.target = t }
        }
        if let v = entries.value("provider"), let p: ScalingProvider = enumValue(v, path: "autoscaling.provider") { a.provider = p }
        if let v = entries.value("prometheusURL"), let u = string(v, path: "autoscaling.prometheusURL") {
            if (u.hasPrefix("http://") || u.hasPrefix("https://")), u.count > 8, !u.contains(where: \.isWhitespace) { a.prometheusURL = u } else {
                error(v.pos, "autoscaling.prometheusURL '\(abbreviated(u))' must be an http:// or https:// URL of the Prometheus KEDA queries, e.g. '\(AutoscalingSpec.defaultPrometheusURL)'")
            }
        }
        if let v = entries.value("scaleDownStabilization"),
           let d = duration(v, path: "autoscaling.scaleDownStabilization", allowZero: true, max: 3600) {
            if d == d.rounded() { a.scaleDownStabilizationSeconds = Int(d) } else {
                error(v.pos, "autoscaling.scaleDownStabilization must be whole seconds (the HPA's stabilizationWindowSeconds is an integer), e.g. '30s' or '5m'")
            }
        }
        if let maxNode, a.maxReplicas < a.minReplicas, !maxNode.isNull {
            error(maxNode.pos, "autoscaling.maxReplicas (\(a.maxReplicas)) must be ≥ minReplicas (\(a.minReplicas)); raise maxReplicas or lower minReplicas")
        }
        if let v = entries.value("intervalSeconds"),
           let d = duration(v, path: "autoscaling.intervalSeconds", allowZero: false, max: 3600) {
            a.intervalSeconds = d
        }
        if let v = entries.value("rules") { a.rules = decodeRules(v) }
        if let v = entries.value("predictive"), !v.isNull { a.predictive = decodePredictive(v, interval: a.intervalSeconds) }
        return a
    }

    static let ruleKeys = ["name", "metric", "above", "below", "for", "change", "cooldown", "priority"]
    /// Longest duration a rule, window or analysis may name (one day).
    static let maxDurationSeconds = 86_400.0

    /// `autoscaling.rules`: a list of `{name, metric, above|below, for, change, cooldown, priority}`.
    /// Null leaves the default rules; `[]` means none.
    mutating func decodeRules(_ node: PNode) -> [ScalingRule]? {
        if node.isNull { return nil }
        guard case .sequence(let items, _) = node else {
            error(node.pos, "autoscaling.rules must be a list of rules, e.g. '- {name: queue-high, metric: queue_per_replica, above: 4, for: 20s, change: 1, cooldown: 30s}', got \(node.kindName)")
            return nil
        }
        var rules: [ScalingRule] = []
        var seen: Set<String> = []
        for (i, item) in items.enumerated() {
            let path = "autoscaling.rules[\(i)]"
            guard let r = decodeRule(item, path: path) else { continue }
            if !seen.insert(r.name).inserted {
                error(item["name"]?.pos ?? item.pos, "\(path).name '\(r.name)' is used by an earlier rule; give each rule its own name (decisions and cooldowns are reported by name)")
                continue
            }
            rules.append(r)
        }
        return rules
    }

    mutating func decodeRule(_ node: PNode, path: String) -> ScalingRule? {
        if node.isNull {
            error(node.pos, "\(path) is empty; write {name, metric, above or below, for, change, cooldown}")
            return nil
        }
        guard let entries = mapping(node, path: path) else { return nil }
        checkKeys(entries, allowed: Self.ruleKeys, path: path)
        // A key set to null counts as absent.
        func present(_ key: String) -> PNode? { entries.value(key).flatMap { $0.isNull ? nil : $0 } }
        var ok = true
        var name: String?
        if let v = present("name") {
            if let s = string(v, path: "\(path).name") {
                if isRuleName(s) { name = s } else {
                    error(v.pos, "\(path).name '\(abbreviated(s))' must be 1 to 63 letters, digits, '-', '_' or '.', e.g. 'queue-high'")
                    ok = false
                }
            } else { ok = false }
        } else {
            error(node.pos, "\(path).name is required; name the rule, e.g. 'name: queue-high' (decisions are logged with it)")
            ok = false
        }
        var metric: FleetMetric?
        if let v = present("metric") {
            metric = enumValue(v, path: "\(path).metric")
            if metric == nil { ok = false }
        } else {
            error(node.pos, "\(path).metric is required; one of \(FleetMetric.allCases.map(\.rawValue).joined(separator: ", "))")
            ok = false
        }
        let above = present("above"), below = present("below")
        var comparison: ScalingRule.Comparison?
        var threshold: Double?
        if above != nil, let below {
            error(below.pos, "\(path): set either above or below, not both; a rule compares its metric one way (write a second rule for the other)")
            ok = false
        } else if let v = above ?? below {
            let cmp: ScalingRule.Comparison = above != nil ? .above : .below
            comparison = cmp
            let upper = metric == .errorRate ? 1.0 : 1e9
            threshold = number(v, path: "\(path).\(cmp.rawValue)", min: 0, max: upper,
                               example: metric == .errorRate ? "0.05" : "4")
            if threshold == nil { ok = false }
        } else {
            error(node.pos, "\(path) needs a condition: add 'above: N' (act while the metric is over N) or 'below: N' (while it is under N)")
            ok = false
        }
        var forSeconds = 0.0
        if let v = present("for") {
            if let d = duration(v, path: "\(path).for", allowZero: true, max: Self.maxDurationSeconds) { forSeconds = d } else { ok = false }
        }
        var change: Int?
        if let v = present("change") {
            change = int(v, path: "\(path).change", -1000...1000)
            if change == 0 {
                error(v.pos, "\(path).change must not be 0; write +1 to add a replica or -1 to remove one")
                change = nil
            }
            if change == nil { ok = false }
        } else {
            error(node.pos, "\(path).change is required; write +1 to add a replica or -1 to remove one")
            ok = false
        }
        var cooldown = 0.0
        if let v = present("cooldown") {
            if let d = duration(v, path: "\(path).cooldown", allowZero: true, max: Self.maxDurationSeconds) { cooldown = d } else { ok = false }
        }
        var priority = 0
        if let v = present("priority") {
            if let p = int(v, path: "\(path).priority", -1000...1000) { priority = p } else { ok = false }
        }
        guard ok, let name, let metric, let comparison, let threshold, let change else { return nil }
        return ScalingRule(name: name, metric: metric, comparison: comparison, threshold: threshold,
                           forSeconds: forSeconds, change: change, cooldownSeconds: cooldown, priority: priority)
    }

    mutating func decodePredictive(_ node: PNode, interval: Double) -> PredictiveSpec? {
        let path = "autoscaling.predictive"
        guard let entries = mapping(node, path: path) else { return nil }
        checkKeys(entries, allowed: ["enabled", "windowSeconds", "horizonSeconds", "capacityRPSPerReplica", "alpha", "beta"], path: path)
        var p = PredictiveSpec()
        if let v = entries.value("enabled"), let b = bool(v, path: "\(path).enabled") { p.enabled = b }
        let windowNode = entries.value("windowSeconds")
        if let v = windowNode, let d = duration(v, path: "\(path).windowSeconds", allowZero: false, max: Self.maxDurationSeconds) {
            p.windowSeconds = d
            let need = interval * Double(PredictiveSpec.minimumSamples)
            if d < need {
                error(v.pos, "\(path).windowSeconds (\(fmt(d))) must cover at least \(PredictiveSpec.minimumSamples) samples (\(PredictiveSpec.minimumSamples) × intervalSeconds \(fmt(interval)) = \(fmt(need)) s) for the trend to be estimated; raise it, e.g. '5m'")
            }
        }
        if let v = entries.value("horizonSeconds"), let d = duration(v, path: "\(path).horizonSeconds", allowZero: false, max: Self.maxDurationSeconds) {
            p.horizonSeconds = d
        }
        let capNode = entries.value("capacityRPSPerReplica")
        if let v = capNode {
            p.capacityRPSPerReplica = number(v, path: "\(path).capacityRPSPerReplica", min: 0, minExclusive: true, max: 1e6, example: "4")
        }
        for (key, kp) in [("alpha", \PredictiveSpec.alpha), ("beta", \PredictiveSpec.beta)] {
            if let v = entries.value(key), let d = number(v, path: "\(path).\(key)", min: 0, minExclusive: true, max: 1, example: key == "alpha" ? "0.5" : "0.3") {
                p[keyPath: kp] = d
            }
        }
        if p.enabled, p.capacityRPSPerReplica == nil, capNode == nil || capNode?.isNull == true {
            error(capNode?.pos ?? node.pos, "\(path).capacityRPSPerReplica is required when predictive is enabled: the requests per second one replica sustains (measure it with 'autoglm optimize' or a load test), e.g. 'capacityRPSPerReplica: 4'")
        }
        return p
    }

    mutating func decodeGateway(_ node: PNode) -> GatewaySpec {
        var g = GatewaySpec()
        guard let entries = mapping(node, path: "gateway") else { return g }
        checkKeys(entries, allowed: ["policy", "affinityThreshold"], path: "gateway")
        if let v = entries.value("policy"), !v.isNull, let p: GatewayPolicy = enumValue(v, path: "gateway.policy") { g.policy = p }
        if let v = entries.value("affinityThreshold"), let t = int(v, path: "gateway.affinityThreshold", 0...10_000) {
            g.affinityThreshold = t
            if g.policy != .prefixAffinity {
                note(v.pos, "gateway.affinityThreshold only applies to policy prefix-affinity (this gateway uses \(g.policy.rawValue))")
            }
        }
        return g
    }

    mutating func decodeProbes(_ node: PNode) -> ProbesSpec {
        var p = ProbesSpec()
        guard let entries = mapping(node, path: "probes") else { return p }
        checkKeys(entries, allowed: ["startup", "readiness", "liveness"], path: "probes")
        if let v = entries.value("startup") { p.startup = decodeProbe(v, path: "probes.startup") }
        if let v = entries.value("readiness") { p.readiness = decodeProbe(v, path: "probes.readiness") }
        if let v = entries.value("liveness") { p.liveness = decodeProbe(v, path: "probes.liveness") }
        return p
    }

    mutating func decodeProbe(_ node: PNode, path: String) -> ProbeOverride {
        var o = ProbeOverride()
        guard let entries = mapping(node, path: path) else { return o }
        checkKeys(entries, allowed: ["initialDelaySeconds", "periodSeconds", "failureThreshold", "timeoutSeconds"], path: path)
        if let v = entries.value("initialDelaySeconds") { o.initialDelaySeconds = int(v, path: "\(path).initialDelaySeconds", 0...3600) }
        if let v = entries.value("periodSeconds") { o.periodSeconds = int(v, path: "\(path).periodSeconds", 1...3600) }
        if let v = entries.value("failureThreshold") { o.failureThreshold = int(v, path: "\(path).failureThreshold", 1...10_000) }
        if let v = entries.value("timeoutSeconds") { o.timeoutSeconds = int(v, path: "\(path).timeoutSeconds", 1...3600) }
        return o
    }

    mutating func decodeRollout(_ node: PNode) -> RolloutSpec {
        var r = RolloutSpec()
        guard let entries = mapping(node, path: "rollout") else { return r }
        checkKeys(entries, allowed: ["strategy", "maxSurge", "maxUnavailable", "canaryPercent", "progressDeadlineSeconds", "analysis"], path: "rollout")
        if let v = entries.value("strategy"), let s: RolloutStrategy = enumValue(v, path: "rollout.strategy") { r.strategy = s }
        let surgeNode = entries.value("maxSurge"), unavailNode = entries.value("maxUnavailable")
        if let v = surgeNode { r.maxSurge = intOrPercent(v, path: "rollout.maxSurge") }
        if let v = unavailNode { r.maxUnavailable = intOrPercent(v, path: "rollout.maxUnavailable") }
        if let v = entries.value("canaryPercent") { r.canaryPercent = int(v, path: "rollout.canaryPercent", 1...99) }
        if let v = entries.value("progressDeadlineSeconds") { r.progressDeadlineSeconds = int(v, path: "rollout.progressDeadlineSeconds", 1...86_400) }
        if let v = entries.value("analysis"), !v.isNull { r.analysis = decodeAnalysis(v) }
        if r.strategy == .recreate {
            for (k, n) in [("maxSurge", surgeNode), ("maxUnavailable", unavailNode)] {
                if let n, !n.isNull {
                    error(n.pos, "rollout.\(k) only applies to strategy RollingUpdate; remove it or set strategy: RollingUpdate")
                }
            }
        } else if let s = r.maxSurge, let u = r.maxUnavailable, s.isZero, u.isZero, let n = unavailNode {
            error(n.pos, "rollout.maxUnavailable and rollout.maxSurge cannot both be 0; the rollout could never make progress")
        }
        return r
    }

    mutating func decodeAnalysis(_ node: PNode) -> CanaryAnalysisSpec? {
        let path = "rollout.analysis"
        guard let entries = mapping(node, path: path) else { return nil }
        checkKeys(entries, allowed: ["maxErrorRate", "maxTTFTRatio", "maxTPOTRatio", "minRequests", "durationSeconds"], path: path)
        var a = CanaryAnalysisSpec()
        if let v = entries.value("maxErrorRate"), let d = number(v, path: "\(path).maxErrorRate", min: 0, max: 1, example: "0.05") {
            a.maxErrorRate = d
        }
        for (key, kp) in [("maxTTFTRatio", \CanaryAnalysisSpec.maxTTFTRatio), ("maxTPOTRatio", \CanaryAnalysisSpec.maxTPOTRatio)] {
            if let v = entries.value(key), let d = number(v, path: "\(path).\(key)", min: 0, minExclusive: true, max: 1000, example: "1.5") {
                a[keyPath: kp] = d
            }
        }
        if let v = entries.value("minRequests"), let i = int(v, path: "\(path).minRequests", 1...1_000_000) { a.minRequests = i }
        if let v = entries.value("durationSeconds"),
           let d = duration(v, path: "\(path).durationSeconds", allowZero: true, max: Self.maxDurationSeconds) {
            a.durationSeconds = d
        }
        return a
    }

    mutating func decodeModelCache(_ node: PNode) -> ModelCacheSpec? {
        guard let entries = mapping(node, path: "modelCache") else { return nil }
        checkKeys(entries, allowed: ["pvc", "emptyDir"], path: "modelCache")
        let pvc = entries.value("pvc").flatMap { $0.isNull ? nil : $0 }
        let ed = entries.value("emptyDir")
        if pvc != nil, let ed, !ed.isNull {
            error(node.pos, "modelCache: set either pvc or emptyDir, not both")
            return nil
        }
        if let pvc {
            guard let pe = mapping(pvc, path: "modelCache.pvc") else { return nil }
            checkKeys(pe, allowed: ["name", "size", "storageClass"], path: "modelCache.pvc")
            var name: String?, size: String?, sc: String?
            if let v = pe.value("name"), let s = string(v, path: "modelCache.pvc.name") {
                if isDNSSubdomain(s) { name = s } else {
                    error(v.pos, "modelCache.pvc.name '\(s)' is not a valid PersistentVolumeClaim name (lowercase letters, digits, '-', '.')")
                }
            }
            if let v = pe.value("size") { size = quantity(v, path: "modelCache.pvc.size", example: "'50Gi'", bounds: .storage) } else {
                error(pvc.pos, "modelCache.pvc.size is required; e.g. 'size: 50Gi' (room for the model files)")
            }
            if let v = pe.value("storageClass"), let s = string(v, path: "modelCache.pvc.storageClass") {
                if isDNSSubdomain(s) { sc = s } else {
                    error(v.pos, "modelCache.pvc.storageClass '\(s)' is not a valid StorageClass name")
                }
            }
            guard let size else { return nil }
            return .pvc(name: name, size: size, storageClass: sc)
        }
        var limit: String?
        if let ed, let ee = mapping(ed, path: "modelCache.emptyDir") {
            checkKeys(ee, allowed: ["sizeLimit"], path: "modelCache.emptyDir")
            if let v = ee.value("sizeLimit") { limit = quantity(v, path: "modelCache.emptyDir.sizeLimit", example: "'20Gi'", bounds: .storage) }
        }
        return .emptyDir(sizeLimit: limit)
    }

    mutating func decodeMonitoring(_ node: PNode) -> MonitoringSpec {
        var m = MonitoringSpec()
        guard let entries = mapping(node, path: "monitoring") else { return m }
        checkKeys(entries, allowed: ["serviceMonitor", "alerts", "dashboard", "slo"], path: "monitoring")
        if let v = entries.value("serviceMonitor"), let b = bool(v, path: "monitoring.serviceMonitor") { m.serviceMonitor = b }
        if let v = entries.value("alerts"), let b = bool(v, path: "monitoring.alerts") { m.alerts = b }
        if let v = entries.value("dashboard"), let b = bool(v, path: "monitoring.dashboard") { m.dashboard = b }
        if let v = entries.value("slo"), !v.isNull, let se = mapping(v, path: "monitoring.slo") {
            let path = "monitoring.slo"
            checkKeys(se, allowed: ["ttftP95Seconds", "maxErrorRate", "queueSaturation", "kvCacheUsage", "maxRestarts"], path: path)
            if let n = se.value("ttftP95Seconds"), let d = number(n, path: "\(path).ttftP95Seconds", min: 0, minExclusive: true, max: 3600, example: "0.5") {
                m.slo.ttftP95Seconds = d
            }
            for (key, kp, example) in [("maxErrorRate", \SLOSpec.maxErrorRate, "0.01"), ("queueSaturation", \SLOSpec.queueSaturation, "0.8"),
                                       ("kvCacheUsage", \SLOSpec.kvCacheUsage, "0.95")] {
                if let n = se.value(key), let d = number(n, path: "\(path).\(key)", min: 0, minExclusive: true, max: 1, example: example) {
                    m.slo[keyPath: kp] = d
                }
            }
            if let n = se.value("maxRestarts"), let i = int(n, path: "\(path).maxRestarts", 0...1000) { m.slo.maxRestarts = i }
            if !m.alerts {
                note(v.pos, "monitoring.slo is used by the alerts; set monitoring.alerts: true to render them (a PrometheusRule)")
            }
        }
        if (m.alerts || m.dashboard) && !m.serviceMonitor {
            note(node.pos, "monitoring.alerts and monitoring.dashboard read the metrics Prometheus scrapes; without monitoring.serviceMonitor: true scrape /metrics some other way")
        }
        return m
    }

    // MARK: primitives

    /// A mapping's entries; null counts as an empty mapping. Reports the wrong type otherwise.
    mutating func mapping(_ node: PNode, path: String) -> [PEntry]? {
        if node.isNull { return [] }
        guard case .mapping(let entries, _) = node else {
            error(node.pos, "\(path.isEmpty ? "the top level" : path) must be a mapping (key: value lines), got \(node.kindName)")
            return nil
        }
        return entries
    }

    mutating func checkKeys(_ entries: [PEntry], allowed: [String], path: String) {
        for e in entries where !allowed.contains(e.key) {
            let key = abbreviated(e.key)
            let full = path.isEmpty ? key : "\(path).\(key)"
            if let s = suggestion(for: e.key, among: allowed) {
                error(e.keyPos, "\(full): unknown key '\(key)'; did you mean '\(s)'?")
            } else {
                error(e.keyPos, "\(full): unknown key '\(key)'; known keys\(path.isEmpty ? "" : " in \(path)"): \(allowed.joined(separator: ", "))")
            }
        }
    }

    mutating func string(_ node: PNode, path: String) -> String? {
        guard case .scalar(let s, _, _) = node else {
            error(node.pos, "\(path) must be a string, got \(node.kindName)")
            return nil
        }
        if node.isNull { return nil }
        return s
    }

    static let replicasRange = 0...1000

    /// An integer within `range`. Everything else (words, quoted numbers, fractions, `.inf`,
    /// `.nan`, numbers beyond 64 bits) is refused with the allowed range in the message.
    mutating func int(_ node: PNode, path: String, _ range: ClosedRange<Int>) -> Int? {
        if node.isNull { return nil }
        let want = "an integer between \(range.lowerBound) and \(range.upperBound)"
        guard case .scalar(let s, let quoted, _) = node else {
            error(node.pos, "\(path) must be \(want), got \(node.kindName)")
            return nil
        }
        if quoted {
            let hint = Int(s) != nil ? "; write it without quotes" : ""
            error(node.pos, "\(path) must be \(want), got \(node.kindName)\(hint)")
            return nil
        }
        guard let i = Int(s) else {
            error(node.pos, "\(path) must be \(want), got '\(abbreviated(s))'\(Self.numberProblem(s))")
            return nil
        }
        guard range.contains(i) else {
            error(node.pos, "\(path) (\(i)) must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return i
    }

    /// Why a plain scalar that is not an `Int` is not one, when it looks like a number.
    static func numberProblem(_ s: String) -> String {
        let lower = s.lowercased()
        let unsigned = lower.hasPrefix("-") || lower.hasPrefix("+") ? String(lower.dropFirst()) : lower
        if [".inf", "inf", "infinity", ".nan", "nan"].contains(unsigned) { return " (not a finite number)" }
        if !unsigned.isEmpty, unsigned.allSatisfy({ $0.isASCII && $0.isNumber }) {
            return lower.hasPrefix("-") ? " (far below the minimum)" : " (far above the maximum)"
        }
        if unsigned.hasPrefix("0x") || unsigned.hasPrefix("0o") || unsigned.hasPrefix("0b") || unsigned.contains("_") {
            return " (write it as a plain decimal number)"
        }
        if let d = Double(s), d.isFinite {
            return d == d.rounded() ? " (write it as a plain integer)" : " (not a whole number)"
        }
        return ""
    }

    /// A finite decimal number (a plain scalar) in [min, max], or (min, max] with `minExclusive`.
    mutating func number(_ node: PNode, path: String, min: Double, minExclusive: Bool = false, max: Double,
                         example: String) -> Double? {
        if node.isNull { return nil }
        let range = minExclusive ? "greater than \(fmt(min)) and at most \(fmt(max))" : "between \(fmt(min)) and \(fmt(max))"
        guard case .scalar(let s, let quoted, _) = node, !quoted else {
            error(node.pos, "\(path) must be a number \(range), e.g. \(example), got \(node.kindName)")
            return nil
        }
        guard let d = plainNumber(s) else {
            error(node.pos, "\(path) must be a number \(range), e.g. \(example), got '\(abbreviated(s))'")
            return nil
        }
        guard minExclusive ? d > min : d >= min, d <= max else {
            error(node.pos, "\(path) (\(s)) must be \(range), e.g. \(example)")
            return nil
        }
        return d
    }

    /// Seconds: a plain number (`20`, `1.5`) or a number with a unit, `s`, `m` or `h` (`20s`,
    /// `2m`, `1h`), at most `max`; zero only with `allowZero`.
    mutating func duration(_ node: PNode, path: String, allowZero: Bool, max: Double) -> Double? {
        if node.isNull { return nil }
        let want = "a duration: seconds as a number, or with a unit, e.g. '20s', '2m', '1h'"
        guard case .scalar(let s, _, _) = node else {
            error(node.pos, "\(path) must be \(want), got \(node.kindName)")
            return nil
        }
        var text = Substring(s)
        var factor = 1.0
        if let unit = text.last, let f = ["s": 1.0, "m": 60.0, "h": 3600.0][String(unit)] {
            factor = f
            text = text.dropLast()
        }
        guard let n = plainNumber(String(text)) else {
            error(node.pos, "\(path) must be \(want), got '\(abbreviated(s))'")
            return nil
        }
        let seconds = n * factor
        if seconds < 0 {
            error(node.pos, "\(path) (\(s)) must not be negative; write 0 or more seconds, e.g. '20s'")
            return nil
        }
        if seconds == 0 && !allowZero {
            error(node.pos, "\(path) (\(s)) must be more than 0 seconds, e.g. '20s'")
            return nil
        }
        if seconds > max {
            error(node.pos, "\(path) (\(s)) must be at most \(fmt(max)) seconds")
            return nil
        }
        return seconds
    }

    mutating func bool(_ node: PNode, path: String) -> Bool? {
        if node.isNull { return nil }
        if case .scalar(let s, false, _) = node {
            switch s.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        error(node.pos, "\(path) must be true or false, got \(node.kindName)")
        return nil
    }

    mutating func enumValue<E: RawRepresentable & CaseIterable>(_ node: PNode, path: String) -> E? where E.RawValue == String {
        guard let s = string(node, path: path) else { return nil }
        if let e = E(rawValue: s) { return e }
        let all = E.allCases.map(\.rawValue)
        if let sug = suggestion(for: s, among: all) {
            error(node.pos, "\(path) '\(s)' is not one of \(all.joined(separator: ", ")); did you mean '\(sug)'?")
        } else {
            error(node.pos, "\(path) '\(s)' is not one of \(all.joined(separator: ", "))")
        }
        return nil
    }

    /// The allowed range of a Kubernetes quantity, in its base unit (cores or bytes).
    struct QuantityBounds {
        var min: Double
        var max: Double
        /// How the range reads in a message, e.g. "between 1m and 4096".
        var text: String
        static let cpu = QuantityBounds(min: 0.001, max: 4096, text: "between 1m and 4096 (cores)")
        static let memory = QuantityBounds(min: 1, max: 64 * 1_099_511_627_776, text: "between 1 byte and 64Ti")
        static let storage = QuantityBounds(min: 1, max: 1_125_899_906_842_624, text: "between 1 byte and 1Pi")
    }

    mutating func quantity(_ node: PNode, path: String, example: String, bounds: QuantityBounds) -> String? {
        guard let s = string(node, path: path) else { return nil }
        guard isQuantity(s) else {
            error(node.pos, "\(path) '\(abbreviated(s))' is not a Kubernetes quantity; write e.g. \(example) (suffixes m, k, M, G, Ki, Mi, Gi, Ti)")
            return nil
        }
        guard let value = quantityValue(s), value.isFinite, value >= bounds.min, value <= bounds.max else {
            error(node.pos, "\(path) '\(abbreviated(s))' is out of range; use a quantity \(bounds.text), e.g. \(example)")
            return nil
        }
        return s
    }

    mutating func intOrPercent(_ node: PNode, path: String) -> IntOrPercent? {
        if node.isNull { return nil }
        if case .scalar(let s, let quoted, _) = node {
            if !quoted, let i = Int(s) {
                if i >= 0 && i <= 1000 { return .int(i) }
            } else if s.hasSuffix("%"), let p = Int(s.dropLast()), (0...100).contains(p) {
                return .percent(p)
            }
        }
        error(node.pos, "\(path) must be an integer between 0 and 1000 or a percentage between 0% and 100% (e.g. '25%'), got \(node.kindName)")
        return nil
    }
}

/// A finite decimal number written plainly (`4`, `-1`, `0.05`, `1e-3`): no `inf`, `nan`, hex
/// or digit separators (which `Double.init` would take).
func plainNumber(_ s: String) -> Double? {
    guard !s.isEmpty,
          s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+") }),
          let d = Double(s), d.isFinite else { return nil }
    return d
}

/// A number for a message: `20` rather than `20.0`, else Swift's shortest form (`0.05`).
func fmt(_ d: Double) -> String {
    if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
    return "\(d)"
}

/// A scaling rule's name: 1 to 63 letters, digits, '-', '_' or '.'.
func isRuleName(_ s: String) -> Bool {
    !s.isEmpty && s.count <= 63 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
}

/// A long value shortened for a message (the start, an ellipsis, the length).
func abbreviated(_ s: String, limit: Int = 64) -> String {
    guard s.count > limit else { return s }
    return "\(s.prefix(limit))… (\(s.count) characters)"
}

extension IntOrPercent {
    var isZero: Bool {
        switch self {
        case .int(let i): return i == 0
        case .percent(let p): return p == 0
        }
    }
}

extension Array where Element == PEntry {
    /// Linear: for the few fixed keys a section looks up (a mapping's keys are unique).
    func value(_ key: String) -> PNode? { first(where: { $0.key == key })?.value }
}

/// A mapping's entries indexed by key, for the top level, which may hold any number of keys
/// and is looked up by every overlay.
struct Fields {
    private let entries: [PEntry]
    private let index: [String: Int]

    init(_ entries: [PEntry]) {
        self.entries = entries
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() where index[e.key] == nil { index[e.key] = i }
        self.index = index
    }

    func value(_ key: String) -> PNode? { index[key].map { entries[$0].value } }
}

// MARK: syntax checks

/// The version syntax `autoglm pull --version` accepts (`Core.VersionSyntax`).
func isSemVer(_ s: String) -> Bool { VersionSyntax.isVersion(s) }

/// A container image reference as far as it can be checked offline: non-empty, no whitespace.
func isImageRef(_ s: String) -> Bool {
    !s.isEmpty && !s.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
}

/// A Hugging Face revision: a branch, tag or commit (`main`, `v1.0`, `refs/pr/1`, a sha).
func isRevision(_ s: String) -> Bool {
    !s.isEmpty && s.count <= 255 && !s.hasPrefix("/") && !s.hasSuffix("/") && !s.contains("..")
        && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" || $0 == "/") }
}

func isDNSSubdomain(_ s: String) -> Bool {
    guard !s.isEmpty, s.count <= 253 else { return false }
    return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
}

/// Kubernetes resource quantity (non-negative): `<number><suffix>`.
func isQuantity(_ s: String) -> Bool {
    let suffixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", ""]
    for suf in suffixes where s.hasSuffix(suf) {
        let num = s.dropLast(suf.count)
        if isDecimal(num) { return true }
    }
    // Decimal exponent: 1e3, 1.5E-2
    if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        let mant = s[..<e]
        var exp = s[s.index(after: e)...]
        if exp.first == "+" || exp.first == "-" { exp = exp.dropFirst() }
        return isDecimal(mant) && !exp.isEmpty && exp.allSatisfy { $0.isASCII && $0.isNumber }
    }
    return false
}

/// The value of a quantity accepted by `isQuantity`, in its base unit (cores or bytes); nil when
/// it is not one. Digits beyond Double's range give infinity (refused by the range check).
func quantityValue(_ s: String) -> Double? {
    let multipliers: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
        ("Pi", 1_125_899_906_842_624), ("Ei", 1_152_921_504_606_846_976),
        ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18),
        ("", 1),
    ]
    for (suffix, factor) in multipliers where s.hasSuffix(suffix) {
        let num = s.dropLast(suffix.count)
        if isDecimal(num), let v = decimalValue(num) { return v * factor }
    }
    if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }), isDecimal(s[..<e]), let mant = decimalValue(s[..<e]) {
        var exp = s[s.index(after: e)...]
        var sign = 1
        if exp.first == "+" || exp.first == "-" { sign = exp.first == "-" ? -1 : 1; exp = exp.dropFirst() }
        guard !exp.isEmpty, exp.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        // Exponents beyond ±400 take any mantissa past Double's range (or to zero).
        let magnitude = exp.count > 4 ? 400 : Swift.min(Int(exp) ?? 400, 400)
        return mant * pow10(sign * magnitude)
    }
    return nil
}

private func decimalValue(_ s: Substring) -> Double? {
    var value = 0.0
    var scale = 1.0
    var seenPoint = false
    for c in s.utf8 {
        if c == UInt8(ascii: ".") { seenPoint = true; continue }
        guard c >= 48, c <= 57 else { return nil }
        let digit = Double(c - 48)
        if seenPoint {
            scale /= 10
            value += digit * scale
        } else {
            value = value * 10 + digit
        }
    }
    return value
}

private func pow10(_ n: Int) -> Double {
    var r = 1.0
    for _ in 0..<abs(n) { r *= 10 }
    return n < 0 ? 1 / r : r
}

private func isDecimal(_ s: Substring) -> Bool {
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 1 || parts.count == 2 else { return false }
    guard parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else { return false }
    return parts.contains { !$0.isEmpty }
}

/// The closest candidate by edit distance (case-insensitive), if close enough to be a typo.
/// Candidates whose length differs from the word's by more than the allowed distance are
/// skipped without computing it, so a huge unknown key costs its length, not length × length.
func suggestion(for word: String, among candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    let limit = max(2, w.count / 3)
    var best: (String, Int)?
    for c in candidates {
        let lc = Array(c.lowercased())
        guard abs(lc.count - w.count) <= limit else { continue }
        let d = editDistance(w, lc)
        if d <= limit, best == nil || d < best?.1 ?? Int.max { best = (c, d) }
    }
    return best?.0
}

func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
