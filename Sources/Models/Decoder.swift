import Foundation
import GGUF
import Kernels

// The pieces that Llama-like architectures share: one self-attention block (separate or fused
// Q/K/V, optional biases and per-head Q/K norms, full or partial RoPE) and one gated MLP
// (separate gate/up or fused gate‖up). An architecture file loads its tensors into these and
// composes them with its own norms and residuals.

/// Head layout of a self-attention block.
struct AttentionShape {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let valueDim: Int
    var qDim: Int { heads * headDim }
    var kDim: Int { kvHeads * headDim }
    var vDim: Int { kvHeads * valueDim }
    var outDim: Int { heads * valueDim }
}

/// Weights of one self-attention block.
struct AttentionWeights {
    enum Projection {
        case separate(q: WeightMatrix, k: WeightMatrix, v: WeightMatrix)
        /// One matrix producing q‖k‖v rows.
        case fused(WeightMatrix)
    }
    let projection: Projection
    /// Bias of q‖k‖v (separate biases are concatenated at load time).
    let bias: UnsafePointer<Float>?
    let qNorm: UnsafePointer<Float>?
    let kNorm: UnsafePointer<Float>?
    let output: WeightMatrix
}

/// Weights of a gated MLP: act(gate(x)) * up(x), then down.
struct GatedMLPWeights {
    enum Projection {
        case separate(gate: WeightMatrix, up: WeightMatrix)
        /// One matrix producing gate‖up rows (GLM's dense_h_to_4h).
        case fused(WeightMatrix)
    }
    let projection: Projection
    let down: WeightMatrix
}

enum Activation {
    case silu
    /// The tanh-approximated GELU, evaluated through llama.cpp's half-precision table.
    case geluTanh
}

extension WeightLoader {
    /// Loads q/k/v (fused `attn_qkv` if the file has it, else `attn_q/k/v`), their biases
    /// (`required`, or taken when present), Q/K norms when `qkNorm`, and `attn_output`.
    func attention(_ p: String, embedding d: Int, shape s: AttentionShape, bias: BiasRule,
                   qkNorm: Bool) -> AttentionWeights? {
        let total = s.qDim + s.kDim + s.vDim
        let projection: AttentionWeights.Projection?
        var biasPtr: UnsafePointer<Float>?
        let wantBias = { (name: String) -> Bool in
            switch bias {
            case .none: return false
            case .required: return true
            case .optional: return self.has(name)
            }
        }
        if has(p + "attn_qkv.weight") {
            projection = matrix(p + "attn_qkv.weight", rows: total, cols: d).map { .fused($0) }
            if wantBias(p + "attn_qkv.bias") { biasPtr = vector(p + "attn_qkv.bias", count: total) }
        } else {
            let q = matrix(p + "attn_q.weight", rows: s.qDim, cols: d)
            let k = matrix(p + "attn_k.weight", rows: s.kDim, cols: d)
            let v = matrix(p + "attn_v.weight", rows: s.vDim, cols: d)
            if let q, let k, let v { projection = .separate(q: q, k: k, v: v) } else { projection = nil }
            if wantBias(p + "attn_q.bias") || wantBias(p + "attn_k.bias") || wantBias(p + "attn_v.bias") {
                let parts = [(p + "attn_q.bias", s.qDim), (p + "attn_k.bias", s.kDim), (p + "attn_v.bias", s.vDim)]
                let loaded = parts.map { vector($0.0, count: $0.1) }
                if loaded.allSatisfy({ $0 != nil }) {
                    let buf = UnsafeMutablePointer<Float>.allocate(capacity: total)
                    var o = 0
                    for (vec, part) in zip(loaded, parts) {
                        if let vec { (buf + o).update(from: vec, count: part.1) }
                        o += part.1
                    }
                    adopt(buf)
                    biasPtr = UnsafePointer(buf)
                }
            }
        }
        let qn = qkNorm ? vector(p + "attn_q_norm.weight", count: s.headDim) : nil
        let kn = qkNorm ? vector(p + "attn_k_norm.weight", count: s.headDim) : nil
        let out = matrix(p + "attn_output.weight", rows: d, cols: s.outDim)
        guard let projection, let out else { return nil }
        if qkNorm && (qn == nil || kn == nil) { return nil }
        return AttentionWeights(projection: projection, bias: biasPtr, qNorm: qn, kNorm: kn, output: out)
    }

    /// Loads `ffn_gate` + `ffn_up`, or a fused `ffn_up` of 2 × `hidden` rows when the file has
    /// no `ffn_gate`, and `ffn_down`.
    func gatedMLP(_ p: String, embedding d: Int, hidden ff: Int) -> GatedMLPWeights? {
        let projection: GatedMLPWeights.Projection?
        if has(p + "ffn_gate.weight") {
            let g = matrix(p + "ffn_gate.weight", rows: ff, cols: d)
            let u = matrix(p + "ffn_up.weight", rows: ff, cols: d)
            if let g, let u { projection = .separate(gate: g, up: u) } else { projection = nil }
        } else {
            projection = matrix(p + "ffn_up.weight", rows: 2 * ff, cols: d).map { .fused($0) }
        }
        let down = matrix(p + "ffn_down.weight", rows: d, cols: ff)
        guard let projection, let down else { return nil }
        return GatedMLPWeights(projection: projection, down: down)
    }

    enum BiasRule { case none, optional, required }
}

/// Scratch buffers of one forward call, sized for `n` tokens.
final class DecoderScratch {
    let qkv: Buffer, q: Buffer, k: Buffer, v: Buffer, att: Buffer
    let gateUp: Buffer, gate: Buffer
    init(tokens n: Int, shape s: AttentionShape, hidden ff: Int) {
        qkv = Buffer(n * (s.qDim + s.kDim + s.vDim))
        q = Buffer(n * s.qDim)
        k = Buffer(n * s.kDim)
        v = Buffer(n * s.vDim)
        att = Buffer(n * s.outDim)
        gateUp = Buffer(n * 2 * ff)
        gate = Buffer(n * ff)
    }
    deinit { for b in [qkv, q, k, v, att, gateUp, gate] { b.free() } }
}

/// Self-attention of the batch: h [n × d] → out [n × d]; appends keys/values to the caches.
func selfAttention(_ layout: BatchLayout, layer: Int, h: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                   weights W: AttentionWeights, shape s: AttentionShape, rope: RopeTable, scale: Float,
                   window: Int? = nil, eps: Float, scratch S: DecoderScratch, pool: ThreadPool) {
    let n = layout.count
    let total = s.qDim + s.kDim + s.vDim
    switch W.projection {
    case .fused(let m):
        matmul(m, h, nTokens: n, S.qkv.ptr, pool: pool)
        if let b = W.bias { addBias(S.qkv.ptr, b, rows: n, n: total) }
        for t in 0..<n {
            let row = S.qkv.row(t, total)
            S.q.row(t, s.qDim).update(from: row, count: s.qDim)
            S.k.row(t, s.kDim).update(from: row + s.qDim, count: s.kDim)
            S.v.row(t, s.vDim).update(from: row + s.qDim + s.kDim, count: s.vDim)
        }
    case .separate(let wq, let wk, let wv):
        matmul(wq, h, nTokens: n, S.q.ptr, pool: pool)
        matmul(wk, h, nTokens: n, S.k.ptr, pool: pool)
        matmul(wv, h, nTokens: n, S.v.ptr, pool: pool)
        if let b = W.bias {
            addBias(S.q.ptr, b, rows: n, n: s.qDim)
            addBias(S.k.ptr, b + s.qDim, rows: n, n: s.kDim)
            addBias(S.v.ptr, b + s.qDim + s.kDim, rows: n, n: s.vDim)
        }
    }
    if let qn = W.qNorm { rmsNorm(S.q.ptr, qn, S.q.ptr, rows: n * s.heads, n: s.headDim, eps: eps) }
    if let kn = W.kNorm { rmsNorm(S.k.ptr, kn, S.k.ptr, rows: n * s.kvHeads, n: s.headDim, eps: eps) }
    for t in 0..<n {
        rope.apply(S.q.row(t, s.qDim), heads: s.heads, headDim: s.headDim, token: t)
        rope.apply(S.k.row(t, s.kDim), heads: s.kvHeads, headDim: s.headDim, token: t)
    }
    storeKV(layout, layer: layer, k: S.k.ptr, v: S.v.ptr, keyDim: s.kDim, valueDim: s.vDim)
    attention(layout, layer: layer, q: S.q.ptr, out: S.att.ptr, heads: s.heads, kvHeads: s.kvHeads,
              headDim: s.headDim, valueDim: s.valueDim, scale: scale, window: window, pool: pool)
    matmul(W.output, S.att.ptr, nTokens: n, out, pool: pool)
}

/// Gated MLP of the batch: h [n × d] → out [n × d].
func gatedMLP(_ n: Int, h: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, weights W: GatedMLPWeights,
              hidden ff: Int, activation: Activation, scratch S: DecoderScratch, pool: ThreadPool) {
    let g = S.gate.ptr
    switch W.projection {
    case .separate(let gate, let up):
        matmul(gate, h, nTokens: n, g, pool: pool)
        matmul(up, h, nTokens: n, S.gateUp.ptr, pool: pool)
        activate(g, times: S.gateUp.ptr, count: n * ff, activation, pool: pool)
    case .fused(let m):
        matmul(m, h, nTokens: n, S.gateUp.ptr, pool: pool)
        for t in 0..<n {
            let row = S.gateUp.row(t, 2 * ff)
            // gate is the first half of each row, up the second; write act(gate)·up over the gate half.
            activate(row, times: row + ff, count: ff, activation, pool: pool)
            (g + t * ff).update(from: row, count: ff)
        }
    }
    matmul(W.down, g, nTokens: n, out, pool: pool)
}

/// x[i] = act(x[i]) * y[i], split across the pool in chunks (each element's result does not
/// depend on the chunking or the thread count). GELU is llama.cpp's half-precision table rule
/// (`gegluTable`): it is what the reference engine computes, and with it gemma3's first-step
/// logits land closer to llama.cpp's goldens than with an exact tanh (mean top-5 deviation lower
/// on 6 of the 8 golden prompts, e.g. code_python 0.27 vs 0.58).
func activate(_ x: UnsafeMutablePointer<Float>, times y: UnsafePointer<Float>, count: Int, _ a: Activation,
              pool: ThreadPool) {
    let chunk = 2048
    let tasks = (count + chunk - 1) / chunk
    pool.parallelFor(tasks) { i in
        let lo = i * chunk, hi = min(count, lo + chunk)
        switch a {
        case .silu: for j in lo..<hi { x[j] = silu(x[j]) * y[j] }
        case .geluTanh: gegluTable(x + lo, y + lo, into: x + lo, count: hi - lo)
        }
    }
}

/// The hyperparameters of an architecture, read once from GGUF metadata, each within a range
/// and consistent with the others (heads divide into KV groups, the RoPE lanes fit a head, the
/// window fits the context). Models size every buffer and loop from these; `Hyperparameters`
/// ranges are the only place a metadata value is judged.
struct DecoderHyper {
    let embedding: Int
    let layers: Int
    let shape: AttentionShape
    let feedForward: Int
    let vocabulary: Int
    let context: Int
    let eps: Float
    let ropeBase: Float
    /// `rope.scaling.factor` (1: none).
    let ropeScaling: Float
    /// `attention.sliding_window` when the architecture has local layers.
    let slidingWindow: Int?

    /// Ranges of every value (generous: the largest published models are far inside them).
    enum Range {
        static let width = 1...(1 << 20)
        static let layers = 1...4096
        static let heads = 1...4096
        static let headDim = 1...16384
        static let context = 1...(1 << 24)
        static let eps: ClosedRange<Float> = 1e-12...0.1
        static let ropeBase: ClosedRange<Float> = 1...1e12
        static let ropeScaling: ClosedRange<Float> = 1e-3...1e6
    }

    init(_ w: WeightLoader, arch: String, defaultContext: Int, defaultEps: Float = 1e-5, defaultRopeBase: Float,
         slidingWindow defaultWindow: Int? = nil) throws {
        embedding = try w.metaInt("embedding_length", Range.width)
        layers = try w.metaInt("block_count", Range.layers)
        let heads = try w.metaInt("attention.head_count", Range.heads)
        let kvHeads = try w.metaInt("attention.head_count_kv", default: heads, 1...heads)
        guard heads % kvHeads == 0 else {
            throw ModelError.invalidMetadata(path: w.path, key: arch + ".attention.head_count_kv",
                                             detail: "(\(kvHeads)) must divide head_count (\(heads))")
        }
        let keyLength = try w.metaInt("attention.key_length", default: 0, 0...Range.headDim.upperBound)
        guard keyLength > 0 || embedding % heads == 0 else {
            throw ModelError.invalidMetadata(path: w.path, key: arch + ".attention.head_count",
                                             detail: "(\(heads)) must divide embedding_length (\(embedding))")
        }
        let headDim = keyLength > 0 ? keyLength : embedding / heads
        guard Range.headDim.contains(headDim) else {
            throw ModelError.invalidMetadata(path: w.path, key: arch + ".attention.head_count",
                                             detail: "gives heads of \(headDim) dimensions (expected \(Range.headDim.lowerBound) ... \(Range.headDim.upperBound))")
        }
        shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: headDim,
                               valueDim: try w.metaInt("attention.value_length", default: headDim, Range.headDim))
        feedForward = try w.metaInt("feed_forward_length", Range.width)
        guard let emb = w.file.tensor(named: "token_embd.weight"), emb.dims.count == 2 else {
            throw ModelError.missingTensors(path: w.path, names: ["token_embd.weight"])
        }
        vocabulary = emb.dims[1]
        guard (1...(1 << 24)).contains(vocabulary) else {
            throw ModelError.invalidMetadata(path: w.path, key: "token_embd.weight",
                                             detail: "has \(vocabulary) rows (expected 1 ... \(1 << 24) tokens)")
        }
        context = try w.metaInt("context_length", default: defaultContext, Range.context)
        eps = try w.metaFloat("attention.layer_norm_rms_epsilon", default: defaultEps, Range.eps)
        ropeBase = try w.metaFloat("rope.freq_base", default: defaultRopeBase, Range.ropeBase)
        ropeScaling = try w.metaFloat("rope.scaling.factor", default: 1, Range.ropeScaling)
        if let defaultWindow {
            slidingWindow = try w.metaInt("attention.sliding_window", default: defaultWindow, 1...context)
        } else {
            slidingWindow = nil
        }
    }

    func config(_ arch: String) -> ModelConfig {
        ModelConfig(architecture: arch, layers: layers, embedding: embedding, heads: shape.heads,
                    kvHeads: shape.kvHeads, headDim: shape.headDim, valueDim: shape.valueDim,
                    feedForward: feedForward, vocabulary: vocabulary, contextLength: context, rmsEps: eps)
    }

    /// RoPE lanes per head from `rope.dimension_count` (default: the whole head), validated.
    func ropeDims(_ w: WeightLoader, arch: String) throws -> Int {
        let dims = try w.metaInt("rope.dimension_count", default: shape.headDim, 1...shape.headDim)
        guard dims % 2 == 0 else {
            throw ModelError.invalidMetadata(path: w.path, key: arch + ".rope.dimension_count",
                                             detail: "(\(dims)) must be even and at most the head size (\(shape.headDim))")
        }
        return dims
    }
}

/// Token embedding, final norm and output projection (tied to the embeddings when the file
/// has no `output.weight`).
struct EmbeddingWeights {
    let embeddings: WeightMatrix
    let output: WeightMatrix
    let outputNorm: UnsafePointer<Float>

    static func load(_ w: WeightLoader, vocabulary: Int, embedding d: Int) -> EmbeddingWeights? {
        let emb = w.matrix("token_embd.weight", rows: vocabulary, cols: d)
        let out = w.has("output.weight") ? w.matrix("output.weight", rows: vocabulary, cols: d) : emb
        let norm = w.vector("output_norm.weight", count: d)
        guard let emb, let out, let norm else { return nil }
        return EmbeddingWeights(embeddings: emb, output: out, outputNorm: norm)
    }
}

/// A Llama-like decoder assembled from the pieces above: per layer, pre-norm → self-attention
/// (→ optional post-attention norm) → residual, pre-norm → gated MLP (→ optional post-MLP
/// norm) → residual; then the final norm and output projection. Architecture files load their
/// tensors into it (`Llama.swift`, `Qwen3.swift`, `GLM4.swift`, `ChatGLM.swift`).
final class DecoderModel: LanguageModel, @unchecked Sendable {
    struct Layer {
        let attnNorm: UnsafePointer<Float>
        let postAttnNorm: UnsafePointer<Float>?
        let ffnNorm: UnsafePointer<Float>
        let postFfnNorm: UnsafePointer<Float>?
        let attn: AttentionWeights
        let mlp: GatedMLPWeights
    }

    let config: ModelConfig
    let file: GGUFFile
    let hyper: DecoderHyper
    let layers: [Layer]
    let io: EmbeddingWeights
    let rope: Rope
    let activation: Activation
    let owned: [UnsafeMutablePointer<Float>]

    /// Loads every layer with `layer(loader, "blk.i.")`, then the embeddings; throws one error
    /// listing every missing or mismatched tensor.
    init(file: GGUFFile, loader w: WeightLoader, hyper hp: DecoderHyper, rope: Rope, activation: Activation = .silu,
         layer: (WeightLoader, String) -> Layer?) throws {
        var ls: [Layer] = []
        for i in 0..<hp.layers {
            if let l = layer(w, "blk.\(i).") { ls.append(l) }
        }
        let io = EmbeddingWeights.load(w, vocabulary: hp.vocabulary, embedding: hp.embedding)
        try w.finish()
        guard let io, ls.count == hp.layers else {
            throw ModelError.missingTensors(path: file.path, names: ["token_embd.weight"])
        }
        self.io = io
        self.file = file
        self.rope = rope
        self.activation = activation
        hyper = hp
        config = hp.config(w.prefix)
        layers = ls
        owned = w.takeOwnedBuffers()
    }

    deinit { for p in owned { p.deallocate() } }

    func forward(_ inputs: [SequenceInput], pool: ThreadPool) throws -> [[Float]] {
        let hp = hyper, d = hp.embedding
        let layout = try Forward.prepare(inputs)
        let n = layout.count
        let x = Buffer(n * d), h = Buffer(n * d), o = Buffer(n * d)
        defer { for b in [x, h, o] { b.free() } }
        let scratch = DecoderScratch(tokens: n, shape: hp.shape, hidden: hp.feedForward)
        try Forward.embed(inputs, table: io.embeddings, into: x, width: d)
        let table = rope.table(layout.positions)
        let scale = 1 / Float(hp.shape.headDim).squareRoot()
        for (li, L) in layers.enumerated() {
            rmsNorm(x.ptr, L.attnNorm, h.ptr, rows: n, n: d, eps: hp.eps)
            selfAttention(layout, layer: li, h: h.ptr, out: o.ptr, weights: L.attn, shape: hp.shape, rope: table,
                          scale: scale, eps: hp.eps, scratch: scratch, pool: pool)
            if let pn = L.postAttnNorm { rmsNorm(o.ptr, pn, o.ptr, rows: n, n: d, eps: hp.eps) }
            addInPlace(x.ptr, o.ptr, n * d)
            rmsNorm(x.ptr, L.ffnNorm, h.ptr, rows: n, n: d, eps: hp.eps)
            gatedMLP(n, h: h.ptr, out: o.ptr, weights: L.mlp, hidden: hp.feedForward, activation: activation,
                     scratch: scratch, pool: pool)
            if let pn = L.postFfnNorm { rmsNorm(o.ptr, pn, o.ptr, rows: n, n: d, eps: hp.eps) }
            addInPlace(x.ptr, o.ptr, n * d)
        }
        return Forward.logits(inputs, x: x, width: d, norm: io.outputNorm, eps: hp.eps, output: io.output, pool: pool)
    }
}

extension DecoderModel.Layer {
    /// The common pre-norm layer: `attn_norm`, attention, `ffn_norm`, gated MLP.
    static func preNorm(_ w: WeightLoader, _ p: String, _ hp: DecoderHyper, bias: WeightLoader.BiasRule,
                        qkNorm: Bool) -> DecoderModel.Layer? {
        let a = w.vector(p + "attn_norm.weight", count: hp.embedding)
        let f = w.vector(p + "ffn_norm.weight", count: hp.embedding)
        let attn = w.attention(p, embedding: hp.embedding, shape: hp.shape, bias: bias, qkNorm: qkNorm)
        let mlp = w.gatedMLP(p, embedding: hp.embedding, hidden: hp.feedForward)
        guard let a, let f, let attn, let mlp else { return nil }
        return .init(attnNorm: a, postAttnNorm: nil, ffnNorm: f, postFfnNorm: nil, attn: attn, mlp: mlp)
    }
}
