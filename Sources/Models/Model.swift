import GGUF
import Kernels

/// Which logits a forward pass should return for one sequence.
public enum LogitsRequest: Sendable {
    case none
    case last
    case all
}

/// One sequence's part of a batched forward pass: new tokens appended after
/// `cache.count` positions.
public struct SequenceInput {
    public var cache: KVCache
    public var tokens: [Int32]
    public var logits: LogitsRequest

    public init(cache: KVCache, tokens: [Int32], logits: LogitsRequest = .last) {
        self.cache = cache
        self.tokens = tokens
        self.logits = logits
    }
}

/// Shape facts shared by all architectures, read from GGUF metadata.
public struct ModelConfig: Sendable {
    public var architecture: String
    public var layers: Int
    public var embedding: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var valueDim: Int
    public var feedForward: Int
    public var vocabulary: Int
    public var contextLength: Int
    public var rmsEps: Float
}

/// A decoder-only language model. `forward` runs one batched step over several sequences
/// (tokens of all sequences share each weight pass) and appends to their caches.
public protocol LanguageModel: AnyObject, Sendable {
    var config: ModelConfig { get }
    var file: GGUFFile { get }
    /// Returns, per input, the requested logits rows concatenated (rows × vocabulary).
    func forward(_ inputs: [SequenceInput], pool: ThreadPool) throws -> [[Float]]
}

extension LanguageModel {
    /// A new empty cache sized for this model, limited to `maxPositions` (default: the model context),
    /// F16 by default like llama.cpp's.
    public func makeCache(maxPositions: Int? = nil, precision: KVCache.Precision = .f16) -> KVCache {
        KVCache(layers: config.layers, keyDim: config.kvHeads * config.headDim,
                valueDim: config.kvHeads * config.valueDim,
                maxPositions: min(maxPositions ?? config.contextLength, config.contextLength), precision: precision)
    }
}

/// The architecture table: registering an architecture is one line here.
public enum ModelFactory {
    static let table: [String: @Sendable (GGUFFile) throws -> any LanguageModel] = [
        "chatglm": { try ChatGLM.load($0) },
        "gemma3": { try Gemma3Model(file: $0) },
        "glm4": { try GLM4.load($0) },
        "llama": { try Llama.load($0) },
        "qwen2": { try Qwen2.load($0) },
        "qwen3": { try Qwen3.load($0) },
    ]

    public static var supportedArchitectures: [String] { table.keys.sorted() }

    public static func load(_ file: GGUFFile) throws -> any LanguageModel {
        guard let arch = file.architecture else {
            throw ModelError.missingMetadata(path: file.path, key: "general.architecture")
        }
        guard let make = table[arch] else {
            throw ModelError.unsupportedArchitecture(path: file.path, architecture: arch,
                                                     supported: supportedArchitectures)
        }
        try checkShapeMetadata(file, architecture: arch)
        return try make(file)
    }

    /// Architecture-independent checks made before any architecture code runs. The range of each
    /// hyperparameter is judged in one place, `DecoderHyper`; here only what needs the whole file
    /// (the tensor count) or a key an architecture may ignore (`rope.dimension_count`).
    static func checkShapeMetadata(_ file: GGUFFile, architecture arch: String) throws {
        func value(_ key: String) -> Int? { file.int(arch + "." + key) }
        func invalid(_ key: String, _ detail: String) -> ModelError {
            ModelError.invalidMetadata(path: file.path, key: arch + "." + key, detail: detail)
        }
        if let blocks = value("block_count"), blocks > file.tensors.count {
            // Every block holds at least one tensor.
            throw invalid("block_count", "is \(blocks) but the file holds only \(file.tensors.count) tensors")
        }
        if let rope = value("rope.dimension_count") {
            guard rope >= 1 else { throw invalid("rope.dimension_count", "is \(rope) (expected at least 1)") }
            let headDim = value("attention.key_length")
                ?? value("embedding_length").flatMap { d in value("attention.head_count").flatMap { $0 > 0 ? d / $0 : nil } }
            if let headDim, rope > headDim {
                throw invalid("rope.dimension_count", "is \(rope) but a head has only \(headDim) dimensions")
            }
        }
    }
}

/// Shared forward-pass plumbing: prepares the batch, runs the architecture's layers,
/// and extracts the requested logits rows.
enum Forward {
    static func prepare(_ inputs: [SequenceInput]) throws -> BatchLayout {
        for e in inputs { try e.cache.reserve(e.cache.count + e.tokens.count) }
        return BatchLayout(inputs)
    }

    /// Rows of the hidden state for which logits are wanted, in input order.
    static func logitRows(_ inputs: [SequenceInput]) -> [Int] {
        var rows: [Int] = []
        var base = 0
        for e in inputs {
            switch e.logits {
            case .none: break
            case .last: if !e.tokens.isEmpty { rows.append(base + e.tokens.count - 1) }
            case .all: rows.append(contentsOf: base..<(base + e.tokens.count))
            }
            base += e.tokens.count
        }
        return rows
    }

    /// Splits the logits matrix [rows × vocab] back per input and advances the caches.
    static func finish(_ inputs: [SequenceInput], logits: Buffer, vocab: Int) -> [[Float]] {
        var out: [[Float]] = []
        var r = 0
        for e in inputs {
            let n: Int
            switch e.logits {
            case .none: n = 0
            case .last: n = e.tokens.isEmpty ? 0 : 1
            case .all: n = e.tokens.count
            }
            out.append(Array(UnsafeBufferPointer(start: logits.ptr + r * vocab, count: n * vocab)))
            r += n
            e.cache.count += e.tokens.count
        }
        return out
    }
}

extension Forward {
    /// Embeds every token of the batch (dequantized rows of `table`) into x, times `scale`.
    static func embed(_ inputs: [SequenceInput], table: WeightMatrix, into x: Buffer, width: Int, scale: Float = 1) throws {
        var t = 0
        for e in inputs {
            for id in e.tokens {
                guard id >= 0, Int(id) < table.rows else { throw ModelError.invalidToken(id: id, vocabulary: table.rows) }
                dequantizeRow(table, row: Int(id), into: x.row(t, width))
                if scale != 1 { for i in 0..<width { x.ptr[t * width + i] *= scale } }
                t += 1
            }
        }
    }

    /// Final norm + output projection for the requested rows.
    static func logits(_ inputs: [SequenceInput], x: Buffer, width: Int, norm: UnsafePointer<Float>, eps: Float,
                       output: WeightMatrix, pool: ThreadPool) -> [[Float]] {
        let rows = logitRows(inputs)
        let h = Buffer(rows.count * width)
        defer { h.free() }
        for (i, r) in rows.enumerated() {
            rmsNorm(x.row(r, width), norm, h.row(i, width), rows: 1, n: width, eps: eps)
        }
        let out = Buffer(rows.count * output.rows)
        defer { out.free() }
        if !rows.isEmpty { matmul(output, h.ptr, nTokens: rows.count, out.ptr, pool: pool) }
        return finish(inputs, logits: out, vocab: output.rows)
    }
}
