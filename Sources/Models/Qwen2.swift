import Foundation
import GGUF
import Kernels

/// Qwen 2 / 2.5: pre-norm decoder with biased Q/K/V projections, grouped-query attention,
/// NeoX RoPE and a SwiGLU MLP; output projection separate or tied to the embeddings.
public final class Qwen2Model: LanguageModel, @unchecked Sendable {
    struct Layer {
        let attnNorm, ffnNorm, bq, bk, bv: UnsafePointer<Float>
        let wq, wk, wv, wo, gate, up, down: WeightMatrix
    }

    public let config: ModelConfig
    public let file: GGUFFile
    let layers: [Layer]
    let embeddings: WeightMatrix
    let output: WeightMatrix
    let outputNorm: UnsafePointer<Float>
    let rope: Rope
    let owned: [UnsafeMutablePointer<Float>]

    public init(file: GGUFFile) throws {
        let w = WeightLoader(file: file, prefix: "qwen2")
        let d = try w.metaInt("embedding_length")
        let nLayers = try w.metaInt("block_count")
        let heads = try w.metaInt("attention.head_count")
        let kvHeads = w.metaInt("attention.head_count_kv", default: heads)
        let ff = try w.metaInt("feed_forward_length")
        guard d % heads == 0, heads % kvHeads == 0 else {
            throw ModelError.invalidMetadata(path: file.path, key: "qwen2.attention.head_count",
                                             detail: "(\(heads)) must divide embedding_length (\(d)) and be a multiple of head_count_kv (\(kvHeads))")
        }
        let headDim = d / heads
        guard let embInfo = file.tensor(named: "token_embd.weight"), embInfo.dims.count == 2 else {
            throw ModelError.missingTensors(path: file.path, names: ["token_embd.weight"])
        }
        let vocab = embInfo.dims[1]
        config = ModelConfig(
            architecture: "qwen2", layers: nLayers, embedding: d, heads: heads, kvHeads: kvHeads,
            headDim: headDim, valueDim: headDim, feedForward: ff, vocabulary: vocab,
            contextLength: w.metaInt("context_length", default: 32768),
            rmsEps: w.metaFloat("attention.layer_norm_rms_epsilon", default: 1e-6))
        rope = Rope(dims: w.metaInt("rope.dimension_count", default: headDim),
                    base: w.metaFloat("rope.freq_base", default: 1_000_000), style: .neox)
        var ls: [Layer] = []
        for i in 0..<nLayers {
            let p = "blk.\(i)."
            let m = { (n: String, r: Int, c: Int) in w.matrix(p + n + ".weight", rows: r, cols: c) }
            let parts = (w.vector(p + "attn_norm.weight", count: d), w.vector(p + "ffn_norm.weight", count: d),
                         w.vector(p + "attn_q.bias", count: d), w.vector(p + "attn_k.bias", count: kvHeads * headDim),
                         w.vector(p + "attn_v.bias", count: kvHeads * headDim),
                         m("attn_q", d, d), m("attn_k", kvHeads * headDim, d), m("attn_v", kvHeads * headDim, d),
                         m("attn_output", d, d), m("ffn_gate", ff, d), m("ffn_up", ff, d), m("ffn_down", d, ff))
            if let a = parts.0, let f = parts.1, let bq = parts.2, let bk = parts.3, let bv = parts.4,
               let q = parts.5, let k = parts.6, let v = parts.7, let o = parts.8, let g = parts.9,
               let up = parts.10, let dn = parts.11 {
                ls.append(Layer(attnNorm: a, ffnNorm: f, bq: bq, bk: bk, bv: bv,
                                wq: q, wk: k, wv: v, wo: o, gate: g, up: up, down: dn))
            }
        }
        let emb = w.matrix("token_embd.weight", rows: vocab, cols: d)
        let out = w.has("output.weight") ? w.matrix("output.weight", rows: vocab, cols: d) : emb
        let norm = w.vector("output_norm.weight", count: d)
        try w.finish()
        guard let emb, let out, let norm else { throw ModelError.missingTensors(path: file.path, names: ["token_embd.weight"]) }
        embeddings = emb
        output = out
        outputNorm = norm
        layers = ls
        owned = w.takeOwnedBuffers()
        self.file = file
    }

    deinit { for p in owned { p.deallocate() } }

    public func forward(_ inputs: [SequenceInput], pool: ThreadPool) throws -> [[Float]] {
        let c = config
        let layout = try Forward.prepare(inputs)
        let n = layout.count, d = c.embedding
        let kvDim = c.kvHeads * c.headDim
        let x = Buffer(n * d), h = Buffer(n * d), o = Buffer(n * d), q = Buffer(n * d)
        let k = Buffer(n * kvDim), v = Buffer(n * kvDim), att = Buffer(n * d)
        let g = Buffer(n * c.feedForward), u = Buffer(n * c.feedForward)
        defer { for b in [x, h, o, q, k, v, att, g, u] { b.free() } }
        try Forward.embed(inputs, table: embeddings, into: x, width: d)
        let scale = 1 / Float(c.headDim).squareRoot()
        let ropeTable = rope.table(layout.positions)

        for (li, L) in layers.enumerated() {
            rmsNorm(x.ptr, L.attnNorm, h.ptr, rows: n, n: d, eps: c.rmsEps)
            matmul(L.wq, h.ptr, nTokens: n, q.ptr, pool: pool)
            matmul(L.wk, h.ptr, nTokens: n, k.ptr, pool: pool)
            matmul(L.wv, h.ptr, nTokens: n, v.ptr, pool: pool)
            addBias(q.ptr, L.bq, rows: n, n: d)
            addBias(k.ptr, L.bk, rows: n, n: kvDim)
            addBias(v.ptr, L.bv, rows: n, n: kvDim)
            for t in 0..<n {
                ropeTable.apply(q.row(t, d), heads: c.heads, headDim: c.headDim, token: t)
                ropeTable.apply(k.row(t, kvDim), heads: c.kvHeads, headDim: c.headDim, token: t)
            }
            storeKV(layout, layer: li, k: k.ptr, v: v.ptr, keyDim: kvDim, valueDim: kvDim)
            attention(layout, layer: li, q: q.ptr, out: att.ptr, heads: c.heads, kvHeads: c.kvHeads,
                      headDim: c.headDim, valueDim: c.headDim, scale: scale, window: nil, pool: pool)
            matmul(L.wo, att.ptr, nTokens: n, o.ptr, pool: pool)
            addInPlace(x.ptr, o.ptr, n * d)

            rmsNorm(x.ptr, L.ffnNorm, h.ptr, rows: n, n: d, eps: c.rmsEps)
            matmul(L.gate, h.ptr, nTokens: n, g.ptr, pool: pool)
            matmul(L.up, h.ptr, nTokens: n, u.ptr, pool: pool)
            for i in 0..<(n * c.feedForward) { g.ptr[i] = silu(g.ptr[i]) * u.ptr[i] }
            matmul(L.down, g.ptr, nTokens: n, o.ptr, pool: pool)
            addInPlace(x.ptr, o.ptr, n * d)
        }
        return Forward.logits(inputs, x: x, width: d, norm: outputNorm, eps: c.rmsEps, output: output, pool: pool)
    }
}
