import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// The seeds' short form (`model: ORG/REPO`, top-level `version`, Kubernetes-shaped
/// `resources.limits`): accepted unchanged, mapped key by key onto the canonical spec.
@Suite struct ShortFormTests {
    static func load(_ yaml: String, env: String? = nil) throws -> LoadedSpec {
        try SpecLoader.load(yaml: yaml, file: "t.yaml", environment: env, variables: [:])
    }

    /// The seed example, verbatim from the source documents.
    static func seed() throws -> String { try Fixture.text("seed/glm-4-9b-chat.yaml") }

    @Test func seedExampleValidatesUnchanged() throws {
        let text = try Self.seed()
        #expect(text.hasPrefix("model: THUDM/glm-4-9b-chat\nversion: v1.0\nreplicas: 3\n"))
        let result = SpecLoader.validate(yaml: text, file: "seed.yaml", variables: [:])
        #expect(result.errors.isEmpty, "\(result.errors)")
        // validate says what it chose, and why.
        #expect(result.notes.map(\.description).contains(
            "seed.yaml:1:8: model 'THUDM/glm-4-9b-chat' is a Hugging Face repository and resources ask for nvidia.com/gpu: 1, so backend vllm serves its safetensors (set backend.type to choose another backend)"),
                "\(result.notes)")
    }

    /// The short form and its canonical form (written by hand from the documented mapping)
    /// decode to the same spec; the canonical print reads back to it too.
    @Test func seedEqualsItsCanonicalForm() throws {
        let short = try Self.load(try Self.seed()).spec
        let canonical = try Self.load("""
            apiVersion: autoglm/v1
            name: glm-4-9b-chat
            model:
              ref: THUDM/glm-4-9b-chat
              version: "1.0.0"
            backend:
              type: vllm
            replicas: 3
            resources:
              memory: 24Gi
              nvidia.com/gpu: 1
            autoscaling:
              enabled: true
              minReplicas: 2
              maxReplicas: 10

            """).spec
        #expect(short == canonical)
        #expect(short.name == "glm-4-9b-chat" && short.model.ref == "THUDM/glm-4-9b-chat" && short.model.version == "1.0.0")
        #expect(short.backend.type == .vllm && short.replicas == 3)
        #expect(short.resources.gpu == 1 && short.resources.memory == "24Gi" && short.resources.cpu == nil)
        #expect(short.autoscaling?.enabled == true && short.autoscaling?.minReplicas == 2 && short.autoscaling?.maxReplicas == 10)
        let printed = SpecEncoder.yaml(short)
        #expect(printed.contains("apiVersion: autoglm/v1\nkind: Deployment\nname: glm-4-9b-chat\nmodel:\n  ref: THUDM/glm-4-9b-chat\n  version: \"1.0.0\"\nbackend:\n  type: vllm\n"), "\(printed)")
        #expect(try Self.load(printed).spec == short, "the canonical print reads back to the same spec")
    }

    @Test func seedRendersWithVLLMAndTheHPA() throws {
        let spec = try Self.load(try Self.seed()).spec
        let objects = KubeRenderer.render(spec).objects
        let kinds = objects.map(\.kind)
        #expect(kinds.contains("HorizontalPodAutoscaler") && kinds.contains("Deployment"))
        let deploy = try #require(objects.first { $0.kind == "Deployment" }).value
        let json = JSONValue(deploy)
        let containers = try #require(json.at("spec", "template", "spec", "containers")?.array)
        #expect(containers.compactMap { $0["name"]?.string } == ["vllm", "autoglm"])
        #expect(containers[0].at("resources", "limits", "nvidia.com/gpu")?.int == 1)
        #expect(containers[0].at("resources", "limits", "memory")?.string == "24Gi")
        #expect(containers[0]["args"]?.array?.compactMap(\.string).prefix(2) == ["serve", "THUDM/glm-4-9b-chat"])
        #expect(json.at("metadata", "labels", "app.kubernetes.io/version")?.string == "1.0.0")
        let hpa = JSONValue(try #require(objects.first { $0.kind == "HorizontalPodAutoscaler" }).value)
        #expect(hpa.at("spec", "minReplicas")?.int == 2 && hpa.at("spec", "maxReplicas")?.int == 10)
    }

    // MARK: each short key

    @Test func modelRepoWithoutGPUServesTheGGUFOfTheQuant() throws {
        let l = try Self.load("model: bartowski/Qwen2.5-0.5B-Instruct-GGUF\n")
        #expect(l.spec.backend.type == .native)
        #expect(l.spec.model.ref == "hf://bartowski/Qwen2.5-0.5B-Instruct-GGUF:\(ShortForm.defaultQuant)")
        #expect(l.spec.name == "qwen2-5-0-5b-instruct-gguf")
        #expect(l.notes.contains { $0.message.contains("resources ask for no GPU, so the native engine serves its GGUF file") })
        let q = try Self.load("model: hf://o/r@v2\nquant: Q8_0\nname: x\n").spec
        #expect(q.model.ref == "hf://o/r@v2:Q8_0")
        let llama = try Self.load("model: o/r\nquant: iq4_xs\nbackend: {type: llamacpp}\n").spec
        #expect(llama.model.ref == "hf://o/r:iq4_xs" && llama.backend.type == .llamacpp)
    }

    @Test func explicitBackendWins() throws {
        let native = try Self.load("model: o/r\nresources: {limits: {nvidia.com/gpu: 1}}\nbackend: {type: native}\n")
        #expect(native.spec.backend.type == .native && native.spec.model.ref == "hf://o/r:Q4_K_M")
        #expect(!native.notes.contains { $0.message.contains("so backend vllm") })
        let vllm = try Self.load("model: hf://o/r@abc123\nresources: {limits: {nvidia.com/gpu: 2}}\nbackend: {type: vllm, gpuMemoryUtilization: 0.8}\n").spec
        #expect(vllm.model.ref == "o/r" && vllm.model.revision == "abc123" && vllm.backend.gpuMemoryUtilization == 0.8)
        // Backend keys are judged against the chosen backend: vLLM's own key is fine without a type.
        let chosen = try Self.load("model: o/r\nresources: {limits: {nvidia.com/gpu: 1}}\nbackend: {dtype: bfloat16}\n").spec
        #expect(chosen.backend.type == .vllm && chosen.backend.dtype == "bfloat16")
    }

    @Test func otherModelStringsAreRefs() throws {
        let alias = try Self.load("model: gemma3-270m\n").spec
        #expect(alias.model == ModelSpec(ref: "gemma3-270m") && alias.name == "gemma3-270m" && alias.backend.type == .native)
        let file = try Self.load("model: hf://o/r/Sub/Model-Q4_K_M.gguf\n").spec
        #expect(file.model.ref == "hf://o/r/Sub/Model-Q4_K_M.gguf" && file.name == "model-q4-k-m")
        let quant = try Self.load("model: hf://o/My.Repo:Q5_K_M\n").spec
        #expect(quant.model.ref == "hf://o/My.Repo:Q5_K_M" && quant.name == "my-repo")
        // The canonical model mapping still needs apiVersion and name.
        #expect(errors("model: {ref: gemma3-270m}\n") == [
            "t.yaml:1:1: apiVersion is required; add 'apiVersion: autoglm/v1' at the top",
            "t.yaml:1:1: name is required; add e.g. 'name: my-model' (a DNS-1123 label, used for every Kubernetes object)"])
    }

    @Test func versionIsTheModelVersion() throws {
        for (raw, want) in [("v1.0", "1.0.0"), ("'2'", "2.0.0"), ("1.2.3", "1.2.3"), ("V3.1-rc.1", "3.1.0-rc.1"), ("1.0.0+b7", "1.0.0+b7")] {
            #expect(try Self.load("model: gemma3-270m\nversion: \(raw)\n").spec.model.version == want, "\(raw)")
        }
        #expect(ShortForm.normalizedVersion("1.2.3.4") == nil && ShortForm.normalizedVersion("v01.0") == nil)
        #expect(errors("model: gemma3-270m\nversion: latest\n") == [
            "t.yaml:2:10: version 'latest' is not a version; write MAJOR[.MINOR[.PATCH]] with an optional 'v', e.g. 'v1.0' (→ model.version 1.0.0) or '1.2.3'"])
        #expect(errors(minimal + "version: v1\n") == [
            "t.yaml:5:10: version is the short form's model version (with model: ORG/REPO); with a model mapping write it as model.version, e.g. '1.0.0'"])
    }

    @Test func resourcesLimitsAndRequests() throws {
        let r = try Self.load("model: gemma3-270m\nresources:\n  requests: {cpu: '2', memory: 1Gi}\n  limits: {cpu: 2000m, memory: 1024Mi}\n").spec.resources
        #expect(r.cpu == "2000m" && r.memory == "1024Mi" && r.gpu == nil, "equal amounts; limits' spelling kept")
        let only = try Self.load("model: gemma3-270m\nresources: {requests: {cpu: 500m}}\n").spec.resources
        #expect(only.cpu == "500m")
        #expect(errors("model: gemma3-270m\nresources: {limits: {memory: 24GB}}\n") == [
            "t.yaml:2:30: resources.limits.memory '24GB' is not a Kubernetes quantity; write e.g. '16Gi' (suffixes m, k, M, G, Ki, Mi, Gi, Ti)"])
        #expect(errors("model: gemma3-270m\nresources:\n  limits: {memory: 2Gi}\n  requests: {memory: 1Gi}\n") == [
            "t.yaml:4:22: resources.requests.memory (1Gi) differs from resources.limits.memory (2Gi): autoglm sets requests equal to limits (Guaranteed QoS); make them equal or keep only limits"])
        #expect(errors("model: gemma3-270m\nresources:\n  cpu: '2'\n  limits: {memory: 2Gi}\n") == [
            "t.yaml:3:3: resources.cpu: write either cpu, memory and nvidia.com/gpu directly under resources, or Kubernetes limits/requests, not both"])
        #expect(errors("model: gemma3-270m\nresources: {limits: {amd.com/gpu: 1}}\n") == [
            "t.yaml:2:22: resources.limits.amd.com/gpu: unknown key 'amd.com/gpu'; known keys in resources.limits: cpu, memory, nvidia.com/gpu"])
    }

    @Test func autoscalingDisabledWithBoundsIsAnError() throws {
        #expect(errors("model: gemma3-270m\nautoscaling: {enabled: false, minReplicas: 2, maxReplicas: 10}\n") == [
            "t.yaml:2:44: autoscaling.minReplicas means nothing while autoscaling.enabled is false (the fixed count is replicas); set enabled: true to autoscale, or remove minReplicas (in an overlay: minReplicas: null)",
            "t.yaml:2:60: autoscaling.maxReplicas means nothing while autoscaling.enabled is false (the fixed count is replicas); set enabled: true to autoscale, or remove maxReplicas (in an overlay: maxReplicas: null)"])
        // A disabled autoscaler prints without bounds, so the canonical print reads back.
        let off = try Self.load("model: gemma3-270m\nautoscaling: {enabled: false}\n").spec
        #expect(try Self.load(SpecEncoder.yaml(off)).spec == off)
    }

    // MARK: bad inputs

    @Test func badShortInputsAreClearErrors() throws {
        #expect(errors("model: Not A Model!\n") == [
            "t.yaml:1:8: model 'Not A Model!' is neither a Hugging Face repository (ORG/REPO) nor a reference autoglm pull accepts (not a path, pip:PACKAGE, URL or alias); write e.g. 'THUDM/glm-4-9b-chat' (a Hugging Face repository), 'hf://ORG/REPO:Q4_K_M', 'hf://ORG/REPO/FILE.gguf' or an alias such as 'gemma3-270m'"])
        #expect(errors("model: o/r/x\n").first?.contains("is neither a Hugging Face repository (ORG/REPO) nor a reference") == true)
        #expect(errors("model: o/r\nquant: Q4-K-M\n") == [
            "t.yaml:2:8: quant 'Q4-K-M' is not a GGUF quantization name; write e.g. Q4_K_M, Q5_K_M, Q8_0, IQ4_XS or F16"])
        #expect(errors("model: o/r\nquant: Q8_0\nresources: {limits: {nvidia.com/gpu: 1}}\n") == [
            "t.yaml:2:8: quant picks a GGUF file, but backend vllm loads the repository's safetensors (set backend.type: native or llamacpp to serve a GGUF); remove it"])
        #expect(errors("model: gemma3-270m\nquant: Q8_0\n").first?.contains("quant applies to a Hugging Face repository (model: ORG/REPO)") == true)
        #expect(errors("model: '---'\n").contains { $0.contains("name is required: none can be derived from model") })
        // The decoder stays strict: an unknown key is still an error.
        #expect(errors(try Self.seed() + "versoin: 2\n") == ["t.yaml:12:1: versoin: unknown key 'versoin'; did you mean 'version'?"])
        // vllm without a GPU is still refused (a safetensors repo on CPU).
        #expect(errors("model: o/r\nbackend: {type: vllm}\n").first?.contains("backend vllm needs a GPU") == true)
    }

    /// An overlay that adds a GPU changes what the short form chooses; validate (incremental)
    /// and load (whole) agree.
    @Test func overlaysDecideAgain() throws {
        let yaml = "model: o/r\nquant: Q8_0\nenvironments:\n  gpu:\n    quant: null\n    resources: {limits: {nvidia.com/gpu: 1}}\n  bad:\n    resources: {limits: {nvidia.com/gpu: 1}}\n"
        #expect(try Self.load(yaml).spec.model.ref == "hf://o/r:Q8_0")
        let gpu = try Self.load(yaml, env: "gpu").spec
        #expect(gpu.backend.type == .vllm && gpu.model.ref == "o/r")
        let result = SpecLoader.validate(yaml: yaml, file: "t.yaml", variables: [:])
        #expect(result.errors.map(\.description) == [
            "t.yaml:2:8: quant picks a GGUF file, but backend vllm loads the repository's safetensors (set backend.type: native or llamacpp to serve a GGUF); remove it (with --env bad)"])
        #expect(errors(yaml, env: "bad").map { $0 + " (with --env bad)" } == result.errors.map(\.description))
    }

    @Test func derivedNames() {
        #expect(ShortForm.derivedName("THUDM/glm-4-9b-chat") == "glm-4-9b-chat")
        #expect(ShortForm.derivedName("Qwen/Qwen2.5-0.5B") == "qwen2-5-0-5b")
        #expect(ShortForm.derivedName("qwen2.5:stable") == "qwen2-5")
        #expect(ShortForm.derivedName("./models/My_Model.gguf") == "my-model")
        #expect(ShortForm.derivedName("o/" + String(repeating: "a", count: 70)) == String(repeating: "a", count: 63))
        #expect(ShortForm.derivedName("o/___") == nil)
    }

    @Test func theRuleIsOneFunction() {
        #expect(ShortForm.backend(explicit: .llamacpp, gpus: 1, model: "o/r").type == .llamacpp)
        #expect(ShortForm.backend(explicit: nil, gpus: 1, model: "o/r").type == .vllm)
        #expect(ShortForm.backend(explicit: nil, gpus: 0, model: "o/r").type == .native)
        let file = ShortForm.backend(explicit: nil, gpus: 1, model: "hf://o/r/f.gguf")
        #expect(file.type == .native && file.reason == nil)
    }
}
