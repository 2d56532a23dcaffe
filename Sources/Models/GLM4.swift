import GGUF

/// GLM-4-0414 / GLM-Z1: four RMSNorms per layer (input → attention → post-attention norm →
/// residual; pre-MLP norm → fused gate‖up SwiGLU → post-MLP norm → residual), Q/K/V biases
/// (fused or separate), no output-projection bias, grouped-query attention, and RoPE on only
/// the first `rope.dimension_count` lanes of each head (half, in the released models),
/// rotating adjacent pairs.
enum GLM4 {
    static func load(_ file: GGUFFile) throws -> any LanguageModel {
        let w = WeightLoader(file: file, prefix: "glm4")
        let hp = try DecoderHyper(w, arch: "glm4", defaultContext: 32768, defaultRopeBase: 10_000)
        let rope = Rope(dims: try hp.ropeDims(w, arch: "glm4"),
                        base: hp.ropeBase, style: .normal)
        return try DecoderModel(file: file, loader: w, hyper: hp, rope: rope) { w, p in
            let v = { (n: String) in w.vector(p + n + ".weight", count: hp.embedding) }
            let norms = (v("attn_norm"), v("post_attention_norm"), v("ffn_norm"), v("post_ffw_norm"))
            let attn = w.attention(p, embedding: hp.embedding, shape: hp.shape, bias: .optional, qkNorm: false)
            let mlp = w.gatedMLP(p, embedding: hp.embedding, hidden: hp.feedForward)
            guard let a = norms.0, let pa = norms.1, let f = norms.2, let pf = norms.3, let attn, let mlp else { return nil }
            return .init(attnNorm: a, postAttnNorm: pa, ffnNorm: f, postFfnNorm: pf, attn: attn, mlp: mlp)
        }
    }
}
