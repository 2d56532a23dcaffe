import GGUF

/// GGUF token types (`tokenizer.ggml.token_type`).
enum TokenType: UInt8, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

enum VocabKind: Sendable { case spm, bpe }

/// SentencePiece (llama) and byte-level BPE (gpt2) tokenizer built from GGUF metadata.
public final class Tokenizer: Sendable {
    let kind: VocabKind
    let table: ByteTable
    let types: [TokenType]
    let scores: [Float]
    /// SPM: id of `<0xNN>` for each byte; BPE: id of the GPT-2 character of each byte. -1 if absent.
    let byteTokens: [Int32]
    /// SPM byte tokens: byte value per id (only meaningful for type .byte).
    let byteValueOf: [UInt8]
    /// BPE merges: (left id << 32 | right id) -> (rank << 32 | result id (UInt32, 0xFFFFFFFF = none)).
    let merges: [UInt64: UInt64]
    let pre: PreTokenizer?
    /// Special tokens (control, user-defined, unknown) matched in raw text, longest first.
    let specials: [Int32]
    /// Position of each special token in `specials`.
    let specialOrder: [Int32: Int32]
    let specialFirstBytes: [Bool]
    let specialLengths: [Int]
    let unkID: Int32?
    let addSpacePrefix: Bool
    let addEOS: Bool

    public let vocabularySize: Int
    public let bosID: Int32?
    public let eosID: Int32?
    public let addBOS: Bool
    public let endOfGenerationIDs: Set<Int32>
    /// Tokens every prompt must start with when special tokens are added: GLM models
    /// (`tokenizer.ggml.pre` glm4 / chatglm-bpe) need `[gMASK]<sop>`, without which their output
    /// loops. Empty for other models (they use BOS).
    public let promptPrefix: [Int32]
    /// The Jinja chat template from GGUF metadata (`tokenizer.chat_template`), if the file has one.
    public let chatTemplate: String?

    static let eogTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "</s>",
    ]
    /// Texts llama.cpp forces to control type (EOT / FIM detection by text).
    static let forcedControlTexts: Set<String> = eogTexts.union([
        "<｜end▁of▁sentence｜>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    ])
    /// Texts that end generation when they exist (after the override above) as control tokens.
    static let eogControlTexts: Set<String> = eogTexts.union([
        "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|user|>", "<|observation|>",
    ])

    /// Builds a tokenizer from an opened GGUF file.
    public static func load(from file: GGUFFile) throws -> Tokenizer {
        try load(metadata: file.metadata)
    }

    /// Builds a tokenizer from GGUF metadata (the `tokenizer.ggml.*` keys).
    public static func load(metadata md: [String: GGUFValue]) throws -> Tokenizer {
        try Tokenizer(metadata: md)
    }

    init(metadata md: [String: GGUFValue]) throws {
        guard let model = md["tokenizer.ggml.model"]?.string else {
            throw TokenizerError.missingKey("tokenizer.ggml.model")
        }
        switch model {
        case "llama": kind = .spm
        case "gpt2": kind = .bpe
        default: throw TokenizerError.unsupportedModel(model)
        }
        guard let tokensValue = md["tokenizer.ggml.tokens"], case .array(_, let tokenValues) = tokensValue else {
            throw TokenizerError.missingKey("tokenizer.ggml.tokens")
        }
        let n = tokenValues.count
        if n == 0 { throw TokenizerError.emptyVocabulary }
        if n >= Int(Int32.max) { throw TokenizerError.lengthMismatch(key: "tokenizer.ggml.tokens", expected: Int(Int32.max), actual: n) }
        vocabularySize = n

        // Flat byte storage of the vocabulary.
        var storage: [UInt8] = []
        storage.reserveCapacity(n * 8)
        var offsets = [Int32](repeating: 0, count: n + 1)
        for (i, v) in tokenValues.enumerated() {
            guard case .string(var s) = v else { throw TokenizerError.missingKey("tokenizer.ggml.tokens") }
            s.withUTF8 { storage.append(contentsOf: $0) }
            offsets[i + 1] = Int32(truncatingIfNeeded: storage.count)
        }
        let table = ByteTable(storage: storage, offsets: offsets)
        self.table = table

        // Token types.
        var types = [TokenType](repeating: .normal, count: n)
        if let tv = md["tokenizer.ggml.token_type"] {
            guard let arr = tv.intArray else { throw TokenizerError.missingKey("tokenizer.ggml.token_type") }
            guard arr.count == n else {
                throw TokenizerError.lengthMismatch(key: "tokenizer.ggml.token_type", expected: n, actual: arr.count)
            }
            for i in 0..<n { types[i] = TokenType(rawValue: UInt8(clamping: max(0, arr[i]))) ?? .undefined }
        }
        for text in Tokenizer.forcedControlTexts {
            if let id = table.lookup(Array(text.utf8)) { types[Int(id)] = .control }
        }

        // Scores.
        if kind == .spm, let sv = md["tokenizer.ggml.scores"] {
            guard let arr = sv.floatArray else { throw TokenizerError.missingKey("tokenizer.ggml.scores") }
            guard arr.count == n else {
                throw TokenizerError.lengthMismatch(key: "tokenizer.ggml.scores", expected: n, actual: arr.count)
            }
            scores = arr
        } else {
            scores = []
        }

        // Byte tokens.
        var byteTokens = [Int32](repeating: -1, count: 256)
        var byteValueOf = [UInt8]()
        switch kind {
        case .spm:
            byteValueOf = [UInt8](repeating: 0, count: n)
            let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
            for b in 0..<256 {
                let text: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]
                if let id = table.lookup(text) { byteTokens[b] = id }
            }
            for id in 0..<n where types[id] == .byte {
                // "<0xNN>"
                let t = table.bytes(of: id)
                if t.count == 6, let v = UInt8(String(decoding: t.dropFirst(3).prefix(2), as: UTF8.self), radix: 16) {
                    byteValueOf[id] = v
                }
            }
        case .bpe:
            for b in 0..<256 {
                if let id = table.lookup(GPT2Bytes.encoded[b]) { byteTokens[b] = id }
            }
        }
        self.byteTokens = byteTokens
        self.byteValueOf = byteValueOf

        // Merges and pre-tokenizer (BPE).
        if kind == .bpe {
            guard let mv = md["tokenizer.ggml.merges"], case .array(_, let mergeValues) = mv else {
                throw TokenizerError.missingKey("tokenizer.ggml.merges")
            }
            var merges: [UInt64: UInt64] = [:]
            merges.reserveCapacity(mergeValues.count)
            var scratch: [UInt8] = []
            for (rank, v) in mergeValues.enumerated() {
                guard case .string(var s) = v else { throw TokenizerError.missingKey("tokenizer.ggml.merges") }
                s.withUTF8 { u in
                    guard u.count >= 3 else { return }
                    var sp = -1
                    for k in 1..<u.count where u[k] == 0x20 { sp = k; break }
                    guard sp > 0, let base = u.baseAddress else { return }
                    guard let l = table.lookup(base, sp), let r = table.lookup(base + sp + 1, u.count - sp - 1) else { return }
                    scratch.removeAll(keepingCapacity: true)
                    scratch.append(contentsOf: UnsafeBufferPointer(rebasing: u[0..<sp]))
                    scratch.append(contentsOf: UnsafeBufferPointer(rebasing: u[(sp + 1)...]))
                    let res = table.lookup(scratch).map { UInt64(UInt32(bitPattern: $0)) } ?? 0xFFFF_FFFF
                    let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
                    if merges[key] == nil { merges[key] = UInt64(rank) << 32 | res }
                }
            }
            self.merges = merges
            let preName = md["tokenizer.ggml.pre"]?.string ?? "default"
            guard let pk = PreTokenizerKind.named(preName) else {
                throw TokenizerError.unsupportedPreTokenizer(preName)
            }
            pre = PreTokenizer(kind: pk)
        } else {
            merges = [:]
            pre = nil
        }

        // Special ids.
        func optID(_ key: String, default def: Int32?) throws -> Int32? {
            guard let v = md[key] else { return def }
            guard let i = v.int else { throw TokenizerError.missingKey(key) }
            if i < 0 || i == 0xFFFF_FFFF { return nil } // -1 / UINT32_MAX mean "none"
            guard i < n else { throw TokenizerError.tokenIDOutOfRange(key: key, id: i, vocabularySize: n) }
            return Int32(i)
        }
        let isSPM = kind == .spm
        bosID = try optID("tokenizer.ggml.bos_token_id", default: isSPM ? 1 : nil)
        eosID = try optID("tokenizer.ggml.eos_token_id", default: isSPM ? 2 : nil)
        unkID = try optID("tokenizer.ggml.unknown_token_id", default: isSPM ? 0 : nil)
        let eot = try optID("tokenizer.ggml.eot_token_id", default: nil)
        let eom = try optID("tokenizer.ggml.eom_token_id", default: nil)
        addBOS = md["tokenizer.ggml.add_bos_token"]?.bool ?? isSPM
        addEOS = md["tokenizer.ggml.add_eos_token"]?.bool ?? false
        addSpacePrefix = md["tokenizer.ggml.add_space_prefix"]?.bool ?? isSPM

        var eog = Set<Int32>()
        for id in [eosID, eot, eom] { if let id { eog.insert(id) } }
        for text in Tokenizer.eogControlTexts {
            if let id = table.lookup(Array(text.utf8)), types[Int(id)] == .control { eog.insert(id) }
        }
        endOfGenerationIDs = eog
        let pre = md["tokenizer.ggml.pre"]?.string ?? ""
        if ["glm4", "chatglm-bpe"].contains(pre), let g = table.lookup(Array("[gMASK]".utf8)),
           let sop = table.lookup(Array("<sop>".utf8)) {
            promptPrefix = [g, sop]
        } else {
            promptPrefix = []
        }
        chatTemplate = md["tokenizer.chat_template"]?.string

        // Special tokens matched in raw text, longest first (ties: lower id first).
        var specials: [Int32] = []
        var first = [Bool](repeating: false, count: 256)
        var lengths = Set<Int>()
        for id in 0..<n {
            switch types[id] {
            case .control, .userDefined, .unknown:
                let len = Int(offsets[id + 1] - offsets[id])
                guard len > 0 else { continue }
                specials.append(Int32(id))
                first[Int(storage[Int(offsets[id])])] = true
                lengths.insert(len)
            default: continue
            }
        }
        specials.sort { a, b in
            let la = offsets[Int(a) + 1] - offsets[Int(a)], lb = offsets[Int(b) + 1] - offsets[Int(b)]
            return la != lb ? la > lb : a < b
        }
        self.specials = specials
        var order: [Int32: Int32] = [:]
        order.reserveCapacity(specials.count)
        for (k, sid) in specials.enumerated() { order[sid] = Int32(k) }
        specialOrder = order
        specialFirstBytes = first
        specialLengths = lengths.sorted(by: >)
        self.types = types
    }

    // MARK: - Queries

    /// The raw vocabulary piece of `id`, or nil when out of range.
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < vocabularySize else { return nil }
        return String(decoding: table.bytes(of: Int(id)), as: UTF8.self)
    }

    /// Text of the BOS token ("" when the vocabulary has none), as chat templates get it in `bos_token`.
    public var bosText: String { bosID.flatMap(tokenText) ?? "" }

    /// Text of the EOS token ("" when the vocabulary has none), as chat templates get it in `eos_token`.
    public var eosText: String { eosID.flatMap(tokenText) ?? "" }

    /// True for control tokens (rendered as nothing unless `renderSpecial`).
    public func isControl(_ id: Int32) -> Bool {
        guard id >= 0, Int(id) < vocabularySize else { return false }
        return types[Int(id)] == .control
    }

    /// Looks up the id of an exact vocabulary piece.
    public func tokenID(_ text: String) -> Int32? {
        table.lookup(Array(text.utf8))
    }
}
