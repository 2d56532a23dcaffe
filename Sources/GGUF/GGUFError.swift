/// Everything that can be wrong with a GGUF file. Each message is one line that names the
/// file and the problem so a user can act on it. Names and keys taken from the file are
/// quoted with control characters escaped and long ones shortened, so a hostile file
/// cannot forge extra output lines.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case notGGUF(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, offset: Int, needed: Int, what: String)
    case invalidValueType(path: String, key: String, raw: UInt32)
    /// A metadata value whose bytes are not valid for its type (a bool that is not 0 or 1,
    /// `general.alignment` that is not an integer, ...).
    case invalidValue(path: String, key: String, detail: String)
    case absurdCount(path: String, what: String, count: UInt64, limit: Int)
    case nestingTooDeep(path: String, key: String)
    case duplicateKey(path: String, key: String)
    case duplicateTensor(path: String, name: String)
    case unknownTensorType(path: String, tensor: String, raw: UInt32)
    case invalidTensorShape(path: String, tensor: String, detail: String)
    case tensorOutOfFile(path: String, tensor: String, detail: String)
    case tensorsOverlap(path: String, first: String, second: String)
    case badAlignment(path: String, alignment: Int)
    case missingTensor(path: String, name: String)
    case writer(String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): return "\(p): cannot open: \(r)"
        case .notGGUF(let p): return "\(p): not a GGUF file (missing 'GGUF' magic)"
        case .unsupportedVersion(let p, let v):
            let swapped = v.byteSwapped
            let hint = (swapped == 2 || swapped == 3) ? " (a big-endian file; only little-endian is supported)" : ""
            return "\(p): unsupported GGUF version \(v)\(hint) (supported: 2 and 3)"
        case .truncated(let p, let o, let n, let w):
            return "\(p): truncated file: \(GGUFError.clean(w)) needs \(n) bytes at offset \(o)"
        case .invalidValueType(let p, let k, let r):
            return "\(p): metadata key \(GGUFError.quote(k)) has invalid value type \(r)"
        case .invalidValue(let p, let k, let d):
            return "\(p): metadata key \(GGUFError.quote(k)): \(GGUFError.clean(d))"
        case .absurdCount(let p, let w, let c, let l):
            return "\(p): \(GGUFError.clean(w)) count \(c) exceeds the limit \(l) for this file"
        case .nestingTooDeep(let p, let k):
            return "\(p): metadata key \(GGUFError.quote(k)) nests arrays too deeply"
        case .duplicateKey(let p, let k): return "\(p): duplicate metadata key \(GGUFError.quote(k))"
        case .duplicateTensor(let p, let n): return "\(p): duplicate tensor name \(GGUFError.quote(n))"
        case .unknownTensorType(let p, let t, let r):
            return "\(p): tensor \(GGUFError.quote(t)) has unknown type id \(r)"
        case .invalidTensorShape(let p, let t, let d):
            return "\(p): tensor \(GGUFError.quote(t)): \(GGUFError.clean(d))"
        case .tensorOutOfFile(let p, let t, let d):
            return "\(p): tensor \(GGUFError.quote(t)) \(GGUFError.clean(d))"
        case .tensorsOverlap(let p, let a, let b):
            return "\(p): tensors \(GGUFError.quote(a)) and \(GGUFError.quote(b)) overlap in the data section"
        case .badAlignment(let p, let a):
            return "\(p): general.alignment \(a) is not a power of two between 1 and 65536"
        case .missingTensor(let p, let n): return "\(p): tensor \(GGUFError.quote(n)) not found"
        case .writer(let m): return "GGUF writer: \(GGUFError.clean(m))"
        }
    }

    /// `'name'` with control characters escaped and at most `limit` characters kept.
    public static func quote(_ s: String, limit: Int = 120) -> String {
        "'" + clean(s, limit: limit) + "'"
    }

    /// Escapes control characters (so the text stays on one line) and shortens long text.
    public static func clean(_ s: String, limit: Int = 400) -> String {
        var out = ""
        var n = 0
        for u in s.unicodeScalars {
            if n == limit { out += "…"; break }
            n += 1
            switch u.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029:
                out += "\\u{" + String(u.value, radix: 16) + "}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
