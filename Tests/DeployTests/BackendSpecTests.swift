import Foundation
import Testing
import Core
@testable import Spec
@testable import Deploy

/// The backend settings of llamacpp, vllm and openai: decoded, validated against the backend that
/// reads them (with file:line:col), and written back unchanged.
@Suite struct BackendSpecTests {
    static let vllm = """
    apiVersion: autoglm/v1
    name: glm
    model:
      ref: THUDM/glm-4-9b-chat-hf
      revision: v1.0
    backend:
      type: vllm
      maxSeqs: 32
      contextLength: 8192
      gpuMemoryUtilization: 0.85
      dtype: bfloat16
      quantization: awq_marlin
      executable: /opt/venv/bin/vllm
      image: registry.example/vllm:v0.11.0
    resources:
      nvidia.com/gpu: 2

    """

    @Test func vllmFieldsDecodeAndRoundTrip() throws {
        let spec = try SpecLoader.load(yaml: Self.vllm, file: "t.yaml", variables: [:]).spec
        let b = spec.backend
        #expect(b.type == .vllm && b.gpuMemoryUtilization == 0.85 && b.dtype == "bfloat16" && b.quantization == "awq_marlin")
        #expect(b.executable == "/opt/venv/bin/vllm" && b.image == "registry.example/vllm:v0.11.0")
        #expect(spec.model == ModelSpec(ref: "THUDM/glm-4-9b-chat-hf", revision: "v1.0"))
        let printed = SpecEncoder.yaml(spec)
        #expect(printed.contains("gpuMemoryUtilization: 0.85\n") && printed.contains("revision: v1.0\n"))
        #expect(try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec == spec)
    }

    @Test func llamacppAndOpenAIFieldsRoundTrip() throws {
        let llama = minimal + """
        backend:
          type: llamacpp
          gpuLayers: 20
          executable: /usr/local/bin/llama-server
        resources:
          nvidia.com/gpu: 1
        """
        let l = try SpecLoader.load(yaml: llama, file: "t.yaml", variables: [:]).spec
        #expect(l.backend.gpuLayers == 20 && l.backend.executable == "/usr/local/bin/llama-server")
        #expect(try SpecLoader.load(yaml: SpecEncoder.yaml(l), file: "p.yaml", variables: [:]).spec == l)
        for (key, expected) in [("{secretRef: {name: up-key, key: token}}", APIKeySource.secretRef(name: "up-key", key: "token")),
                                ("{env: UPSTREAM_KEY}", .env("UPSTREAM_KEY"))] {
            let openai = minimal + """
            backend:
              type: openai
              url: https://api.example.com/v1
              apiKey: \(key)
            """
            let o = try SpecLoader.load(yaml: openai, file: "t.yaml", variables: [:]).spec
            #expect(o.backend.apiKey == expected)
            #expect(try SpecLoader.load(yaml: SpecEncoder.yaml(o), file: "p.yaml", variables: [:]).spec == o)
        }
    }

    @Test func badValuesAreReportedWhereTheyAre() {
        let yaml = Self.vllm
            .replacingOccurrences(of: "gpuMemoryUtilization: 0.85", with: "gpuMemoryUtilization: 1.5")
            .replacingOccurrences(of: "dtype: bfloat16", with: "dtype: bfloat")
            .replacingOccurrences(of: "quantization: awq_marlin", with: "quantization: q4_k_m")
            .replacingOccurrences(of: "revision: v1.0", with: "revision: has space")
        #expect(errors(yaml) == [
            "t.yaml:5:13: model.revision 'has space' is not a Hugging Face revision; write a branch, tag or commit hash (letters, digits, '.', '_', '-', '/'), e.g. 'main'",
            "t.yaml:10:25: backend.gpuMemoryUtilization (1.5) must be greater than 0 and at most 1, e.g. 0.9",
            "t.yaml:11:10: backend.dtype 'bfloat' is not one of auto, half, float16, bfloat16, float, float32; did you mean 'float'?",
            "t.yaml:12:17: backend.quantization 'q4_k_m' is not a method vLLM v0.11.0 runs here; use one of \(BackendSpec.vllmQuantizations.joined(separator: ", ")) (or omit it: vLLM reads the method from the repo's config)",
        ])
        for bad in ["0", "-0.5", "'0.9'", "nan", "lots"] {
            let e = errors(Self.vllm.replacingOccurrences(of: "gpuMemoryUtilization: 0.85", with: "gpuMemoryUtilization: \(bad)"))
            #expect(e.count == 1 && e.first?.hasPrefix("t.yaml:10:25: backend.gpuMemoryUtilization") == true, "\(bad): \(e)")
        }
        let layers = minimal + """
        backend:
          type: llamacpp
          gpuLayers: 100001
        """
        #expect(errors(layers) == ["t.yaml:7:14: backend.gpuLayers (100001) must be between 0 and 100000"])
    }

    @Test func settingsOfAnotherBackendAreErrors() {
        let native = minimal + """
        backend:
          gpuLayers: 10
          dtype: half
          executable: /bin/x
          apiKey: {env: K}
          image: vllm/vllm-openai:latest
        """
        #expect(errors(native) == [
            "t.yaml:6:14: backend.gpuLayers is a llama.cpp setting; remove it or set backend.type: llamacpp",
            "t.yaml:7:10: backend.dtype is a vLLM setting; remove it or set backend.type: vllm",
            "t.yaml:8:15: backend.executable names the llama-server or vllm program; backend native has none (remove it)",
            "t.yaml:9:11: backend.apiKey is the key autoglm sends to an openai upstream; remove it or set backend.type: openai (clients' keys go in server.apiKeys)",
            "t.yaml:10:10: backend.image is a vLLM setting; remove it or set backend.type: vllm (the pod's autoglm image is the top-level image)",
        ])
        let vllm = Self.vllm.replacingOccurrences(of: "  maxSeqs: 32\n", with: """
          threads: 4
          kvCacheMB: 1024
          kvCacheType: f16
          batchWaitMs: 5
          ubatchTokens: 64
          flashAttention: true
          gpuLayers: 10

        """)
        let e = errors(vllm)
        #expect(e.count == 7, "\(e)")
        #expect(e.first == "t.yaml:8:12: backend.threads means nothing to backend vllm (vLLM runs the model on the GPU and picks its own CPU threads); remove it")
        #expect(e.contains("t.yaml:10:16: backend.kvCacheType means nothing to backend vllm (the KV cache follows backend.dtype on vLLM); remove it"))
        #expect(e.last == "t.yaml:14:14: backend.gpuLayers is a llama.cpp setting; remove it or set backend.type: llamacpp")
        let openai = minimal + """
        backend:
          type: openai
          url: http://up:8000/v1
          dtype: half
        """
        #expect(errors(openai) == ["t.yaml:8:10: backend.dtype is a vllm setting; backend openai forwards to an upstream that owns its engine (remove it)"])
        let literal = minimal + """
        backend:
          type: openai
          url: http://up:8000/v1
          apiKey: sk-123
        """
        #expect(errors(literal) == ["t.yaml:8:11: backend.apiKey: literal API keys are not allowed (they would end up in a ConfigMap); use {secretRef: {name: SECRET, key: KEY}} or {env: VAR}"])
    }

    /// `validate` refuses a model the backend could not load, and exactly the refs and channels
    /// `autoglm pull` refuses.
    @Test func modelMustFitTheBackend() {
        func spec(_ model: String, _ backend: String, gpu: Bool = true) -> String {
            "apiVersion: autoglm/v1\nname: t\nmodel: \(model)\nbackend: \(backend)\n" + (gpu ? "resources: {nvidia.com/gpu: 1}\n" : "")
        }
        let vllm = "{type: vllm}"
        #expect(errors(spec("{ref: hf://THUDM/glm-4-9b-chat-hf}", vllm)).isEmpty)
        #expect(errors(spec("{ref: hf://o/r/m-q4.gguf}", vllm)) == [
            "t.yaml:3:14: model.ref 'hf://o/r/m-q4.gguf' is not a Hugging Face repo id, which backend vllm needs (it downloads the repository itself); write ORG/REPO or hf://ORG/REPO, e.g. 'THUDM/glm-4-9b-chat-hf' (a .gguf file runs on backend llamacpp)"])
        #expect(errors(spec("{ref: gemma3-270m}", vllm)).first?.contains("is not a Hugging Face repo id") == true)
        #expect(errors(spec("{ref: ./models/x}", vllm)).first?.contains("is not a Hugging Face repo id") == true)
        // model.version only labels a vLLM deployment (a note); a registry channel is refused.
        #expect(errors(spec("{ref: o/r, version: '1.0.0'}", vllm)).isEmpty)
        #expect((try? SpecLoader.load(yaml: spec("{ref: o/r, version: '1.0.0'}", vllm), file: "t.yaml", variables: [:]))?.notes.map(\.description) == [
            "t.yaml:3:28: model.version only labels the deployment (app.kubernetes.io/version) with backend vllm: vLLM downloads the repo itself; pin its contents with model.revision (a branch, tag or commit)"])
        #expect(errors(spec("{ref: o/r, channel: stable}", vllm)) == [
            "t.yaml:3:28: model.channel names a channel in autoglm's registry (a GGUF), which backend vllm does not use (vLLM downloads the repo itself); pin the repo with model.revision (a branch, tag or commit) instead"])
        #expect(errors(spec("{ref: o/r}", vllm, gpu: false)) == [
            "t.yaml:4:17: backend vllm needs a GPU (the vllm/vllm-openai:v0.11.0 image runs on CUDA); set resources.nvidia.com/gpu: 1 (more shard the model with tensor parallelism)"])

        #expect(errors(spec("{ref: THUDM/glm-4-9b-chat-hf}", "{type: llamacpp}")) == [
            "t.yaml:3:14: model.ref 'THUDM/glm-4-9b-chat-hf' is a whole Hugging Face repository, which backend llamacpp cannot load; name one GGUF file in it, hf://THUDM/glm-4-9b-chat-hf/FILE.gguf (or set backend.type: vllm for a safetensors repo)"])
        #expect(errors(spec("{ref: hf://o/r}", "{type: native}", gpu: false)).first?.contains("is a whole Hugging Face repository, which backend native cannot load") == true)
        #expect(errors(spec("{ref: s3://bucket/m.gguf}", "{type: native}", gpu: false)) == [
            "t.yaml:3:14: model.ref 's3://bucket/m.gguf' is not a reference autoglm pull accepts (unknown scheme); write an alias (gemma3-270m), hf://ORG/REPO[@REVISION]/FILE.gguf, pip:PACKAGE, an https:// URL or a path to a .gguf"])
        #expect(errors(spec("{ref: Gemma-3}", "{type: native}", gpu: false)).first?.contains("(not a path, pip:PACKAGE, URL or alias)") == true)
        #expect(errors(spec("{ref: hf://o/r/m.gguf, revision: main}", "{type: llamacpp}")) == [
            "t.yaml:3:41: model.revision is for backend vllm; pin a GGUF's revision in the ref (hf://ORG/REPO@REVISION/FILE.gguf) or use model.version"])

        // Channels: the registry's tag rule (pull --channel).
        #expect(errors(spec("{ref: gemma3-270m, channel: 1.0.0}", "{type: native}", gpu: false)) == [
            "t.yaml:3:36: model.channel '1.0.0' is a version, not a channel; write it as model.version: \"1.0.0\""])
        #expect(errors(spec("{ref: gemma3-270m, channel: 2024-prod}", "{type: native}", gpu: false)).first?.contains("is not a valid channel") == true)
        #expect(errors(spec("{ref: gemma3-270m, channel: prod-2024}", "{type: native}", gpu: false)).isEmpty)

        // openai: the ref is the upstream's model name; registry pins are notes.
        let openai = "apiVersion: autoglm/v1\nname: t\nmodel: {ref: Qwen/Qwen2.5-72B, channel: stable}\nbackend: {type: openai, url: 'http://u:1/v1'}\n"
        #expect(errors(openai).isEmpty)
    }

    /// Whatever `autoglm pull` (Registry's ModelRef.parse, i.e. Core.RefSyntax) rejects,
    /// `validate` rejects for a GGUF backend, and the reverse.
    @Test func validateAgreesWithPullOnRefs() {
        let refs = ["gemma3-270m", "qwen2.5:stable", "./m.gguf", "/abs/m.gguf", "~/m.gguf", "M.GGUF", "pip:pkg==1.0",
                    "pip:", "hf://o/r/f.gguf", "hf://o/r@v2/sub/f.gguf", "hf://o/r/f.bin", "hf://o@/r/f.gguf",
                    "https://h.example/m.gguf", "https://h.example/m.gguf#sha256=00", "https://h.example/m.gguf#md5=1",
                    "ftp://h/m.gguf", "Upper", "a b", "o/r", "hf:o/r/f.gguf", "https://"]
        for ref in refs {
            let pullAccepts = (try? RefSyntax.classify(ref, fileExists: { _ in false })) != nil
            let yaml = "apiVersion: autoglm/v1\nname: t\nmodel:\n  ref: \"\(ref)\"\n"
            #expect(errors(yaml).isEmpty == pullAccepts, "\(ref): pull \(pullAccepts ? "accepts" : "rejects"), validate says \(errors(yaml))")
        }
    }

    @Test func gpuNotesStay() throws {
        let native = minimal + "resources:\n  nvidia.com/gpu: 1\n"
        let loaded = try SpecLoader.load(yaml: native, file: "t.yaml", variables: [:])
        #expect(loaded.notes.contains { $0.message.hasPrefix("resources.nvidia.com/gpu: the native backend runs on CPU") })
        let cpuLayers = minimal + "backend: {type: llamacpp, gpuLayers: 8}\n"
        let l = try SpecLoader.load(yaml: cpuLayers, file: "t.yaml", variables: [:])
        #expect(l.notes.map(\.message) == ["backend.gpuLayers offloads 8 layers to a GPU, but resources.nvidia.com/gpu is not set: llama-server runs on the CPU"])
    }

    @Test func unknownBackendTypeListsTheFour() {
        #expect(errors(minimal + "backend: {type: tgi}\n") == ["t.yaml:5:17: backend.type 'tgi' is not one of native, llamacpp, vllm, openai"])
    }

    @Test func everyExampleAndOverlayIsValid() throws {
        let dir = Fixture.repoRoot + "/examples"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 4)
        for f in files {
            let text = try String(contentsOfFile: dir + "/" + f, encoding: .utf8)
            let r = SpecLoader.validate(yaml: text, file: f, variables: [:])
            #expect(r.errors.isEmpty, "\(f): \(r.errors)")
        }
        let vllm = try SpecLoader.load(yaml: String(contentsOfFile: dir + "/glm-4-9b-vllm.yaml", encoding: .utf8),
                                       file: "v", variables: [:]).spec
        #expect(vllm.backend.type == .vllm && vllm.model.revision != nil && vllm.resources.gpu == 1)
        #expect(vllm.backend.dtype != nil && vllm.backend.gpuMemoryUtilization != nil && vllm.backend.maxSeqs != nil && vllm.backend.contextLength != nil)
        let up = try SpecLoader.load(yaml: String(contentsOfFile: dir + "/qwen-openai-upstream.yaml", encoding: .utf8),
                                     file: "o", variables: [:]).spec
        guard case .secretRef? = up.backend.apiKey else { Issue.record("the openai example has no apiKey secretRef"); return }
    }
}
