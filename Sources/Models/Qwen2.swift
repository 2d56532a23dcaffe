import GGUF

/// Qwen 2 / 2.5: pre-norm decoder with biased Q/K/V projections, grouped-query attention,
/// NeoX RoPE and a SwiGLU MLP; output projection separate or tied to the embeddings.
enum Qwen2 {
    static func load(_ file: GGUFFile) throws -> any LanguageModel {
        let w = WeightLoader(file: file, prefix: "qwen2")
        let hp = try DecoderHyper(w, arch: "qwen2", defaultContext: 32768, defaultRopeBase: 1_000_000)
        let rope = Rope(dims: try hp.ropeDims(w, arch: "qwen2"),
                        base: hp.ropeBase, style: .neox)
        return try DecoderModel(file: file, loader: w, hyper: hp, rope: rope) { w, p in
            .preNorm(w, p, hp, bias: .required, qkNorm: false)
        }
    }
}
