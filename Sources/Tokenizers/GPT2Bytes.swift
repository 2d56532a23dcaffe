/// The GPT-2 byte-to-unicode alphabet used by byte-level BPE vocabularies.
enum GPT2Bytes {
    /// Code point assigned to each byte.
    static let codePoint: [UInt32] = {
        var cp = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                cp[b] = UInt32(b)
            } else {
                cp[b] = next
                next += 1
            }
        }
        return cp
    }()

    /// UTF-8 encoding of each byte's character.
    static let encoded: [[UInt8]] = codePoint.map { v in
        guard let s = Unicode.Scalar(v) else { return [] }
        return Array(String(Character(s)).utf8)
    }

    /// Byte for each code point below 512, or -1.
    static let decoded: [Int16] = {
        var d = [Int16](repeating: -1, count: 512)
        for b in 0..<256 { d[Int(codePoint[b])] = Int16(b) }
        return d
    }()
}
