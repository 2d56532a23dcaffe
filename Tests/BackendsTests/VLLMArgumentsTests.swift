import Testing
import Core
import Spec
import Backends

/// The spec → `vllm serve` flag mapping (VLLMBackend.serveArguments). scripts/check-vllm-flags.sh
/// checks that every flag it emits exists in the pinned vLLM's CLI.
@Suite struct VLLMArgumentsTests {
    func args(_ model: ModelSpec, _ b: BackendSpec = BackendSpec(), gpus: Int = 1) -> [String] {
        var backend = b
        backend.type = .vllm
        return VLLMBackend.serveArguments(model: model, backend: backend, gpus: gpus, servedModelName: "served",
                                          host: "127.0.0.1", port: 8000)
    }

    /// The value after `flag`, nil when the flag is absent.
    func value(_ a: [String], _ flag: String) -> String? {
        a.firstIndex(of: flag).flatMap { $0 + 1 < a.count ? a[$0 + 1] : nil }
    }

    @Test func unsetFieldsEmitNothing() {
        #expect(args(ModelSpec(ref: "THUDM/glm-4-9b-chat-hf")) == [
            "serve", "THUDM/glm-4-9b-chat-hf", "--host", "127.0.0.1", "--port", "8000", "--served-model-name", "served"])
    }

    @Test func eachFieldMapsToItsFlag() {
        var b = BackendSpec()
        b.maxSeqs = 64
        b.contextLength = 8192
        b.maxBatchedTokens = 4096
        b.gpuMemoryUtilization = 0.85
        b.dtype = "bfloat16"
        b.quantization = "awq_marlin"
        let a = args(ModelSpec(ref: "hf://Org/Repo", revision: "a1b2c3d"), b, gpus: 4)
        #expect(a.first == "serve" && a.dropFirst().first == "Org/Repo")
        let expected: [(String, String)] = [
            ("--revision", "a1b2c3d"), ("--tensor-parallel-size", "4"), ("--max-num-seqs", "64"),
            ("--max-model-len", "8192"), ("--max-num-batched-tokens", "4096"),
            ("--gpu-memory-utilization", "0.85"), ("--dtype", "bfloat16"), ("--quantization", "awq_marlin"),
            ("--host", "127.0.0.1"), ("--port", "8000"), ("--served-model-name", "served"),
        ]
        for (flag, v) in expected { #expect(value(a, flag) == v, "\(flag)") }
        // Every flag appears once and takes exactly one value: nothing else is emitted.
        let flags = a.filter { $0.hasPrefix("--") }
        #expect(Set(flags).count == flags.count)
        #expect(Set(flags) == Set(expected.map(\.0)))
        #expect(a.count == 2 + 2 * expected.count)
    }

    @Test func tensorParallelFollowsTheGPUCount() {
        let m = ModelSpec(ref: "o/r")
        #expect(value(args(m, gpus: 0), "--tensor-parallel-size") == nil)
        #expect(value(args(m, gpus: 1), "--tensor-parallel-size") == nil)
        #expect(value(args(m, gpus: 2), "--tensor-parallel-size") == "2")
        #expect(value(args(m, gpus: 8), "--tensor-parallel-size") == "8")
    }

    @Test func repoIDFromEitherForm() {
        #expect(args(ModelSpec(ref: "hf://Qwen/Qwen2.5-7B-Instruct"))[1] == "Qwen/Qwen2.5-7B-Instruct")
        #expect(args(ModelSpec(ref: "Qwen/Qwen2.5-7B-Instruct"))[1] == "Qwen/Qwen2.5-7B-Instruct")
        #expect(VLLMBackend.repoID("hf://o/r/model.gguf") == nil)
        #expect(VLLMBackend.repoID("gemma3-270m") == nil)
    }

    /// Every ref `validate` lets through for vllm (Core's rule) reaches vLLM as the same repo id.
    @Test func validatedRefsAreTheRepoIDsVLLMGets() {
        for ref in ["o/r", "hf://o/r", "THUDM/glm-4-9b-chat-hf", "hf://Qwen/Qwen2.5-0.5B", "a.b/c_d-e", "hf://o/r/f.gguf",
                    "o/r/", "HF://o/r", "o/r@v1", "./o", "o/..", "gemma3-270m"] {
            if let id = RefSyntax.repoID(ref) { #expect(VLLMBackend.repoID(ref) == id, "\(ref)") }
        }
    }

    @Test func gpuMemoryUtilizationIsWrittenPlainly() {
        var b = BackendSpec()
        for (v, text) in [(0.9, "0.9"), (1.0, "1.0"), (0.05, "0.05")] {
            b.gpuMemoryUtilization = v
            #expect(value(args(ModelSpec(ref: "o/r"), b), "--gpu-memory-utilization") == text)
        }
        #expect(VLLMBackend.dtypes == BackendSpec.vllmDTypes)
    }
}
