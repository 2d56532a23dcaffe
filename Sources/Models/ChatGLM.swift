import GGUF

/// ChatGLM3-6B, GLM-4-9B-chat, glm-edge: pre-norm decoder with a fused Q/K/V projection and
/// bias, grouped-query attention, RoPE on the first `rope.dimension_count` lanes of each head
/// rotating adjacent pairs, and a fused gate‖up SwiGLU MLP.
enum ChatGLM {
    static func load(_ file: GGUFFile) throws -> any LanguageModel {
        let w = WeightLoader(file: file, prefix: "chatglm")
        let hp = try DecoderHyper(w, arch: "chatglm", defaultContext: 8192, defaultRopeBase: 10_000)
        let rope = Rope(dims: try hp.ropeDims(w, arch: "chatglm"),
                        base: hp.ropeBase, style: .normal)
        return try DecoderModel(file: file, loader: w, hyper: hp, rope: rope) { w, p in
            .preNorm(w, p, hp, bias: .optional, qkNorm: false)
        }
    }
}
