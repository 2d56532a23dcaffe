import Foundation
import GGUF
import Kernels

/// Gemma 3: interleaved sliding-window (local) and global attention layers, per-head Q/K
/// RMSNorm, sandwich norms around attention and MLP, GeGLU (tanh GELU), embeddings scaled by
/// √d and tied to the output. Norm weights in GGUF already include Gemma's "+1".
public final class Gemma3Model: LanguageModel, @unchecked Sendable {
    struct Layer {
        let attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFfnNorm: UnsafePointer<Float>
        let wq, wk, wv, wo, gate, up, down: WeightMatrix
        let isLocal: Bool
    }

    public let config: ModelConfig
    public let file: GGUFFile
    let layers: [Layer]
    let embeddings: WeightMatrix
    let output: WeightMatrix
    let outputNorm: UnsafePointer<Float>
    let localRope: Rope
    let globalRope: Rope
    let window: Int
    let attnScale: Float
    let owned: [UnsafeMutablePointer<Float>]

    public init(file: GGUFFile) throws {
        let w = WeightLoader(file: file, prefix: "gemma3")
        let hp = try DecoderHyper(w, arch: "gemma3", defaultContext: 8192, defaultEps: 1e-6, defaultRopeBase: 1_000_000,
                                  slidingWindow: 512)
        let d = hp.embedding, nLayers = hp.layers, ff = hp.feedForward
        let heads = hp.shape.heads, kvHeads = hp.shape.kvHeads, headDim = hp.shape.headDim, valueDim = hp.shape.valueDim
        config = hp.config("gemma3")
        window = hp.slidingWindow ?? hp.context
        globalRope = Rope(dims: headDim, base: hp.ropeBase, style: .neox, scale: 1 / hp.ropeScaling)
        localRope = Rope(dims: headDim, base: 10_000, style: .neox)
        attnScale = 1 / Float(headDim).squareRoot()
        let pattern = 6 // every 6th layer attends globally
        var ls: [Layer] = []
        for i in 0..<nLayers {
            let p = "blk.\(i)."
            let v = { (n: String, c: Int) in w.vector(p + n + ".weight", count: c) }
            let m = { (n: String, r: Int, c: Int) in w.matrix(p + n + ".weight", rows: r, cols: c) }
            let parts = (v("attn_norm", d), v("attn_q_norm", headDim), v("attn_k_norm", headDim),
                         v("post_attention_norm", d), v("ffn_norm", d), v("post_ffw_norm", d),
                         m("attn_q", heads * headDim, d), m("attn_k", kvHeads * headDim, d),
                         m("attn_v", kvHeads * valueDim, d), m("attn_output", d, heads * valueDim),
                         m("ffn_gate", ff, d), m("ffn_up", ff, d), m("ffn_down", d, ff))
            if let a = parts.0, let b = parts.1, let c = parts.2, let e = parts.3, let f = parts.4, let g = parts.5,
               let q = parts.6, let k = parts.7, let vv = parts.8, let o = parts.9, let gt = parts.10,
               let up = parts.11, let dn = parts.12 {
                ls.append(Layer(attnNorm: a, qNorm: b, kNorm: c, postAttnNorm: e, ffnNorm: f, postFfnNorm: g,
                                wq: q, wk: k, wv: vv, wo: o, gate: gt, up: up, down: dn,
                                isLocal: (i + 1) % pattern != 0))
            }
        }
        let emb = w.matrix("token_embd.weight", rows: hp.vocabulary, cols: d)
        let out = w.has("output.weight") ? w.matrix("output.weight", rows: hp.vocabulary, cols: d) : emb
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
        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim, vDim = c.kvHeads * c.valueDim
        let x = Buffer(n * d), h = Buffer(n * d), o = Buffer(n * d)
        let q = Buffer(n * qDim), k = Buffer(n * kDim), v = Buffer(n * vDim), att = Buffer(n * c.heads * c.valueDim)
        let g = Buffer(n * c.feedForward), u = Buffer(n * c.feedForward)
        defer { for b in [x, h, o, q, k, v, att, g, u] { b.free() } }
        try Forward.embed(inputs, table: embeddings, into: x, width: d, scale: Float(d).squareRoot())
        let localTable = localRope.table(layout.positions), globalTable = globalRope.table(layout.positions)

        for (li, L) in layers.enumerated() {
            rmsNorm(x.ptr, L.attnNorm, h.ptr, rows: n, n: d, eps: c.rmsEps)
            matmul(L.wq, h.ptr, nTokens: n, q.ptr, pool: pool)
            matmul(L.wk, h.ptr, nTokens: n, k.ptr, pool: pool)
            matmul(L.wv, h.ptr, nTokens: n, v.ptr, pool: pool)
            rmsNorm(q.ptr, L.qNorm, q.ptr, rows: n * c.heads, n: c.headDim, eps: c.rmsEps)
            rmsNorm(k.ptr, L.kNorm, k.ptr, rows: n * c.kvHeads, n: c.headDim, eps: c.rmsEps)
            let rope = L.isLocal ? localTable : globalTable
            for t in 0..<n {
                rope.apply(q.row(t, qDim), heads: c.heads, headDim: c.headDim, token: t)
                rope.apply(k.row(t, kDim), heads: c.kvHeads, headDim: c.headDim, token: t)
            }
            storeKV(layout, layer: li, k: k.ptr, v: v.ptr, keyDim: kDim, valueDim: vDim)
            attention(layout, layer: li, q: q.ptr, out: att.ptr, heads: c.heads, kvHeads: c.kvHeads,
                      headDim: c.headDim, valueDim: c.valueDim, scale: attnScale,
                      window: L.isLocal ? window : nil, pool: pool)
            matmul(L.wo, att.ptr, nTokens: n, o.ptr, pool: pool)
            rmsNorm(o.ptr, L.postAttnNorm, o.ptr, rows: n, n: d, eps: c.rmsEps)
            addInPlace(x.ptr, o.ptr, n * d)

            rmsNorm(x.ptr, L.ffnNorm, h.ptr, rows: n, n: d, eps: c.rmsEps)
            matmul(L.gate, h.ptr, nTokens: n, g.ptr, pool: pool)
            matmul(L.up, h.ptr, nTokens: n, u.ptr, pool: pool)
            activate(g.ptr, times: u.ptr, count: n * c.feedForward, .geluTanh, pool: pool)
            matmul(L.down, g.ptr, nTokens: n, o.ptr, pool: pool)
            rmsNorm(o.ptr, L.postFfnNorm, o.ptr, rows: n, n: d, eps: c.rmsEps)
            addInPlace(x.ptr, o.ptr, n * d)
        }
        return Forward.logits(inputs, x: x, width: d, norm: outputNorm, eps: c.rmsEps, output: output, pool: pool)
    }
}
