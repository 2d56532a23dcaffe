import GGUF

/// Qwen 3 (dense): pre-norm decoder, grouped-query attention without Q/K/V biases but with a
/// per-head RMSNorm on queries and keys before NeoX RoPE; the head size comes from
/// `attention.key_length` (it need not be embedding/heads); SwiGLU MLP.
enum Qwen3 {
    static func load(_ file: GGUFFile) throws -> any LanguageModel {
        let w = WeightLoader(file: file, prefix: "qwen3")
        let hp = try DecoderHyper(w, arch: "qwen3", defaultContext: 32768, defaultRopeBase: 1_000_000)
        let rope = Rope(dims: try hp.ropeDims(w, arch: "qwen3"),
                        base: hp.ropeBase, style: .neox)
        return try DecoderModel(file: file, loader: w, hyper: hp, rope: rope) { w, p in
            .preNorm(w, p, hp, bias: .none, qkNorm: true)
        }
    }
}
