extension Tokenizer {
    /// Appends the bytes of one token's piece (llama.cpp `token_to_piece` semantics):
    /// control/unknown tokens render only with `renderSpecial`; user-defined tokens as their
    /// text; SPM normal tokens with ▁ turned into spaces; SPM byte tokens as their byte; BPE
    /// normal tokens through the GPT-2 byte alphabet; anything else (unused…) as nothing.
    /// Ids out of range are skipped.
    func appendPiece(_ id: Int32, renderSpecial: Bool, stripLeadingSpace: Bool, to out: inout [UInt8]) {
        guard id >= 0, Int(id) < vocabularySize else { return }
        let i = Int(id)
        let text = table.bytes(of: i)
        let startCount = out.count
        switch types[i] {
        case .control, .unknown:
            if renderSpecial { out.append(contentsOf: text) }
        case .userDefined:
            out.append(contentsOf: text)
        case .normal:
            switch kind {
            case .spm:
                var k = text.startIndex
                while k < text.endIndex {
                    if text[k] == 0xE2, k + 2 < text.endIndex, text[k + 1] == 0x96, text[k + 2] == 0x81 {
                        out.append(0x20); k += 3
                    } else {
                        out.append(text[k]); k += 1
                    }
                }
            case .bpe:
                appendGPT2Decoded(text, to: &out)
            }
        case .byte:
            if kind == .spm { out.append(byteValueOf[i]) }
        case .unused, .undefined:
            break
        }
        if stripLeadingSpace && out.count > startCount && out[startCount] == 0x20 {
            out.remove(at: startCount)
        }
    }

    func appendGPT2Decoded(_ text: ArraySlice<UInt8>, to out: inout [UInt8]) {
        var k = text.startIndex
        let end = text.endIndex
        while k < end {
            let b0 = text[k]
            var len = 1
            var v = UInt32(b0)
            if b0 >= 0xF0 { len = 4; v = UInt32(b0 & 0x07) }
            else if b0 >= 0xE0 { len = 3; v = UInt32(b0 & 0x0F) }
            else if b0 >= 0xC0 { len = 2; v = UInt32(b0 & 0x1F) }
            len = min(len, end - k)
            if len > 1 { for j in 1..<len { v = (v << 6) | UInt32(text[k + j] & 0x3F) } }
            if v < 512, GPT2Bytes.decoded[Int(v)] >= 0 {
                out.append(UInt8(GPT2Bytes.decoded[Int(v)]))
            } else {
                out.append(contentsOf: text[k..<(k + len)])
            }
            k += len
        }
    }

    /// The bytes one generated token appends to the text (control tokens: none). What grammar
    /// masks match a token by.
    public func piece(_ id: Int32) -> [UInt8] {
        var out: [UInt8] = []
        appendPiece(id, renderSpecial: false, stripLeadingSpace: false, to: &out)
        return out
    }

    /// Raw bytes of the detokenized ids.
    public func decodeBytes(_ ids: [Int32], renderSpecial: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        var first = addSpacePrefix
        for id in ids {
            appendPiece(id, renderSpecial: renderSpecial, stripLeadingSpace: first, to: &out)
            first = false
        }
        return out
    }

    /// Detokenizes `ids` (llama.cpp `llama_detokenize` with remove_special=false); invalid
    /// UTF-8 is repaired with U+FFFD. Out-of-range ids are skipped.
    public func decode(_ ids: [Int32], renderSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, renderSpecial: renderSpecial), as: UTF8.self)
    }
}

/// Incremental detokenizer: returns only complete UTF-8 text, holding back a trailing
/// incomplete multi-byte sequence until the token that completes it arrives.
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let renderSpecial: Bool
    private var pending: [UInt8] = []
    private var first = true

    public init(tokenizer: Tokenizer, renderSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.renderSpecial = renderSpecial
    }

    /// Adds one token; returns the newly completed text (possibly empty).
    public mutating func append(_ id: Int32) -> String {
        tokenizer.appendPiece(id, renderSpecial: renderSpecial,
                              stripLeadingSpace: first && tokenizer.addSpacePrefix, to: &pending)
        first = false
        let keep = StreamingDetokenizer.incompleteTailLength(pending)
        let emitCount = pending.count - keep
        guard emitCount > 0 else { return "" }
        let s = String(decoding: pending[0..<emitCount], as: UTF8.self)
        pending.removeFirst(emitCount)
        return s
    }

    /// Returns whatever is still held back (invalid bytes become U+FFFD) and resets.
    public mutating func flush() -> String {
        let s = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        return s
    }

    /// Length of a trailing UTF-8 sequence that is a valid but incomplete prefix.
    static func incompleteTailLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = n - 1
        var cont = 0
        while k >= 0 && cont < 3 && b[k] & 0xC0 == 0x80 { k -= 1; cont += 1 }
        guard k >= 0 else { return 0 }
        let lead = b[k]
        let need: Int
        if lead >= 0xF0 && lead <= 0xF4 { need = 4 }
        else if lead >= 0xE0 && lead < 0xF0 { need = 3 }
        else if lead >= 0xC2 && lead < 0xE0 { need = 2 }
        else { return 0 }
        let have = n - k
        if have >= need { return 0 }
        // Check the second byte's restricted ranges so an invalid prefix is not held forever.
        if have >= 2 {
            let b1 = b[k + 1]
            switch lead {
            case 0xE0: if b1 < 0xA0 { return 0 }
            case 0xED: if b1 > 0x9F { return 0 }
            case 0xF0: if b1 < 0x90 { return 0 }
            case 0xF4: if b1 > 0x8F { return 0 }
            default: break
            }
        }
        return have
    }
}
