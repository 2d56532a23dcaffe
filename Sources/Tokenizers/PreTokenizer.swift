/// Regex-equivalent pre-tokenizers for byte-level BPE, written as scanners over
/// Unicode scalars. Character classes follow llama.cpp's view of the regexes:
/// `\s` = Unicode White_Space, `\p{L}` = general category L*, `\p{N}` = N*.
enum PreTokenizerKind: Sendable, Equatable {
    /// `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// qwen2: maxDigits 1; llama3 and relatives: maxDigits 3.
    case llama3Style(maxDigits: Int, ignoreMerges: Bool)
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    case gpt2

    static func named(_ pre: String) -> PreTokenizerKind? {
        switch pre {
        case "qwen2", "deepseek-r1-qwen", "qwen35":
            return .llama3Style(maxDigits: 1, ignoreMerges: false)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
            return .llama3Style(maxDigits: 3, ignoreMerges: true)
        case "dbrx", "smaug-bpe", "chatglm-bpe", "glm4":
            return .llama3Style(maxDigits: 3, ignoreMerges: false)
        case "gpt2", "gpt-2", "default":
            return .gpt2
        default:
            return nil
        }
    }
}

/// Scalar classes used by the scanners.
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    static let newline: UInt8 = 8   // \r or \n (also has `space`)

    static func of(_ v: UInt32) -> UInt8 {
        if v < 128 {
            switch v {
            case 0x0A, 0x0D: return space | newline
            case 0x09, 0x0B, 0x0C, 0x20: return space
            case 0x30...0x39: return number
            case 0x41...0x5A, 0x61...0x7A: return letter
            default: return 0
            }
        }
        guard let s = Unicode.Scalar(v) else { return 0 }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }
}

struct PreTokenizer: Sendable {
    let kind: PreTokenizerKind

    /// Splits UTF-8 `bytes` (valid UTF-8) into pieces; returns byte ranges.
    func split(_ bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        // Decode scalars with their byte offsets.
        var cps: [UInt32] = []
        var offs: [Int] = []
        cps.reserveCapacity(bytes.count)
        offs.reserveCapacity(bytes.count + 1)
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = UInt32(bytes[i])
            var len = 1
            var v = b0
            if b0 >= 0xF0 { len = 4; v = b0 & 0x07 }
            else if b0 >= 0xE0 { len = 3; v = b0 & 0x0F }
            else if b0 >= 0xC0 { len = 2; v = b0 & 0x1F }
            if i + len > n { len = n - i }
            if len > 1 { for k in 1..<len { v = (v << 6) | (UInt32(bytes[i + k]) & 0x3F) } }
            cps.append(v)
            offs.append(i)
            i += len
        }
        offs.append(n)
        var cls = [UInt8](repeating: 0, count: cps.count)
        for k in 0..<cps.count { cls[k] = CharClass.of(cps[k]) }
        let ranges: [Range<Int>]
        switch kind {
        case .llama3Style(let maxDigits, _):
            ranges = PreTokenizer.scanLlama3(cps, cls, maxDigits: maxDigits)
        case .gpt2:
            ranges = PreTokenizer.scanGPT2(cps, cls)
        }
        return ranges.map { offs[$0.lowerBound]..<offs[$0.upperBound] }
    }

    @inline(__always) static func lower(_ c: UInt32) -> UInt32 {
        (c >= 0x41 && c <= 0x5A) ? c + 32 : c
    }

    /// Returns the length (2 or 3) of a contraction starting at `i` (which holds `'`), or 0.
    @inline(__always)
    static func contraction(_ cps: [UInt32], _ i: Int, caseInsensitive: Bool) -> Int {
        let n = cps.count
        guard cps[i] == 0x27, i + 1 < n else { return 0 }
        let c1 = caseInsensitive ? lower(cps[i + 1]) : cps[i + 1]
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64: return 2 // s t m d
        default: break
        }
        guard i + 2 < n else { return 0 }
        let c2 = caseInsensitive ? lower(cps[i + 2]) : cps[i + 2]
        if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
            return 3 // re ve ll
        }
        return 0
    }

    static func scanLlama3(_ cps: [UInt32], _ cls: [UInt8], maxDigits: Int) -> [Range<Int>] {
        let n = cps.count
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        let L = CharClass.letter, N = CharClass.number, S = CharClass.space, NL = CharClass.newline
        @inline(__always) func isOther(_ k: Int) -> Bool { cls[k] & (L | N | S) == 0 }
        var i = 0
        while i < n {
            let c = cls[i]
            // 1. contractions
            let cl = contraction(cps, i, caseInsensitive: true)
            if cl > 0 { out.append(i..<(i + cl)); i += cl; continue }
            // 2. [^\r\n\p{L}\p{N}]?\p{L}+
            do {
                var k = i
                if c & (L | N | NL) == 0 && i + 1 < n && cls[i + 1] & L != 0 { k = i + 1 }
                if cls[k] & L != 0 {
                    var j = k + 1
                    while j < n && cls[j] & L != 0 { j += 1 }
                    out.append(i..<j); i = j; continue
                }
            }
            // 3. \p{N}{1,maxDigits}
            if c & N != 0 {
                var j = i + 1
                while j < n && j - i < maxDigits && cls[j] & N != 0 { j += 1 }
                out.append(i..<j); i = j; continue
            }
            // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
            do {
                let k = (cps[i] == 0x20 && i + 1 < n) ? i + 1 : i
                if isOther(k) {
                    var j = k + 1
                    while j < n && isOther(j) { j += 1 }
                    while j < n && cls[j] & NL != 0 { j += 1 }
                    out.append(i..<j); i = j; continue
                }
            }
            // whitespace alternatives
            if c & S != 0 {
                var j = i + 1
                while j < n && cls[j] & S != 0 { j += 1 }
                // 5. \s*[\r\n]+ : ends after the last newline of the run
                var p = j - 1
                while p >= i && cls[p] & NL == 0 { p -= 1 }
                if p >= i { out.append(i..<(p + 1)); i = p + 1; continue }
                // 6. \s+(?!\S)
                if j == n { out.append(i..<j); i = j; continue }
                if j - i >= 2 { out.append(i..<(j - 1)); i = j - 1; continue }
                // 7. \s+
                out.append(i..<j); i = j; continue
            }
            // Unreachable for well-formed classes; keep progress.
            out.append(i..<(i + 1)); i += 1
        }
        return out
    }

    static func scanGPT2(_ cps: [UInt32], _ cls: [UInt8]) -> [Range<Int>] {
        let n = cps.count
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        let L = CharClass.letter, N = CharClass.number, S = CharClass.space
        var i = 0
        while i < n {
            let cl = contraction(cps, i, caseInsensitive: false)
            if cl > 0 { out.append(i..<(i + cl)); i += cl; continue }
            let k = (cps[i] == 0x20 && i + 1 < n) ? i + 1 : i
            let ck = cls[k]
            //  ?\p{L}+ /  ?\p{N}+ /  ?[^\s\p{L}\p{N}]+
            if ck & S == 0 || k == i && ck & S == 0 {
                let want: (UInt8) -> Bool
                if ck & L != 0 { want = { $0 & L != 0 } }
                else if ck & N != 0 { want = { $0 & N != 0 } }
                else { want = { $0 & (L | N | S) == 0 } }
                var j = k + 1
                while j < n && want(cls[j]) { j += 1 }
                out.append(i..<j); i = j; continue
            }
            if cls[i] & S != 0 {
                var j = i + 1
                while j < n && cls[j] & S != 0 { j += 1 }
                if j == n { out.append(i..<j); i = j; continue }
                if j - i >= 2 { out.append(i..<(j - 1)); i = j - 1; continue }
            }
            // No alternative matches here: the character stands alone.
            out.append(i..<(i + 1)); i += 1
        }
        return out
    }
}
