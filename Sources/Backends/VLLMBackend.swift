import Foundation
import Core
import Spec

/// vLLM's OpenAI-compatible server (`vllm serve REPO`), which loads a Hugging Face repo id
/// (safetensors) onto the GPUs. autoglm runs it (or, in a pod, a container next to it runs it) on
/// loopback and fronts it.
///
/// Spec field → flag (checked against the vLLM of `BackendSpec.defaultVLLMImage`):
///   model.ref (`ORG/REPO` or `hf://ORG/REPO`) → positional model; model.revision → `--revision`;
///   resources.nvidia.com/gpu → `--tensor-parallel-size`; backend.maxSeqs → `--max-num-seqs`;
///   backend.contextLength → `--max-model-len`; backend.maxBatchedTokens → `--max-num-batched-tokens`;
///   backend.gpuMemoryUtilization → `--gpu-memory-utilization`; backend.dtype → `--dtype`;
///   backend.quantization → `--quantization`; the served name → `--served-model-name`.
public enum VLLMBackend {
    /// The program name when `backend.executable` is not set.
    public static let program = "vllm"
    /// `--dtype` values vLLM accepts (the spec's rule: `BackendSpec.vllmDTypes`).
    public static let dtypes = BackendSpec.vllmDTypes

    /// The Hugging Face repo id of a vLLM model ref (`ORG/REPO` or `hf://ORG/REPO`), nil when the
    /// ref is not one (a GGUF file, a path, an alias).
    public static func repoID(_ ref: String) -> String? { RefSyntax.repoID(ref) }

    /// `vllm serve` arguments (after the program name) for the spec's model and backend, listening
    /// on `host:port` under `servedModelName`, sharded over `gpus` GPUs.
    public static func serveArguments(model: ModelSpec, backend b: BackendSpec, gpus: Int,
                                      servedModelName: String, host: String, port: Int) -> [String] {
        var args = ["serve", repoID(model.ref) ?? model.ref, "--host", host, "--port", String(port),
                    "--served-model-name", servedModelName]
        if let r = model.revision { args += ["--revision", r] }
        if gpus > 1 { args += ["--tensor-parallel-size", String(gpus)] }
        if let v = b.maxSeqs { args += ["--max-num-seqs", String(v)] }
        if let v = b.contextLength { args += ["--max-model-len", String(v)] }
        if let v = b.maxBatchedTokens { args += ["--max-num-batched-tokens", String(v)] }
        if let v = b.gpuMemoryUtilization { args += ["--gpu-memory-utilization", String(v)] }
        if let v = b.dtype { args += ["--dtype", v] }
        if let v = b.quantization { args += ["--quantization", v] }
        if b.prefixCache == false { args += ["--no-enable-prefix-caching"] }
        return args
    }
}
