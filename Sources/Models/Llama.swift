import GGUF

/// Llama 2/3.x: pre-norm decoder, grouped-query attention, SwiGLU MLP. GGUF stores Q/K rows
/// permuted so RoPE rotates adjacent lanes; Llama 3.1+ rope scaling arrives as per-frequency
/// factors in `rope_freqs.weight`, linear scaling as `rope.scaling.type = linear` + factor.
enum Llama {
    static func load(_ file: GGUFFile) throws -> any LanguageModel {
        let w = WeightLoader(file: file, prefix: "llama")
        let hp = try DecoderHyper(w, arch: "llama", defaultContext: 4096, defaultRopeBase: 10_000)
        let dims = try hp.ropeDims(w, arch: "llama")
        var factors: [Float]?
        if w.has("rope_freqs.weight"), let f = w.vector("rope_freqs.weight", count: dims / 2) {
            factors = Array(UnsafeBufferPointer(start: f, count: dims / 2))
            if let bad = factors?.first(where: { !$0.isFinite || $0 <= 0 }) {
                throw ModelError.invalidMetadata(path: file.path, key: "rope_freqs.weight",
                                                 detail: "holds \(bad); every RoPE frequency factor must be a finite number > 0")
            }
        }
        let linear = file.string("llama.rope.scaling.type") == "linear" ? hp.ropeScaling : 1
        let rope = Rope(dims: dims, base: hp.ropeBase, style: .normal, scale: 1 / linear, freqFactors: factors)
        return try DecoderModel(file: file, loader: w, hyper: hp, rope: rope) { w, p in
            .preNorm(w, p, hp, bias: .optional, qkNorm: false)
        }
    }
}
