/// Everything that can be wrong with a GGUF file. Each message names the file and the
/// problem so a user can act on it.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case notGGUF(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, offset: Int, needed: Int, what: String)
    case invalidValueType(path: String, key: String, raw: UInt32)
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
            return "\(p): unsupported GGUF version \(v) (supported: 2 and 3)"
        case .truncated(let p, let o, let n, let w):
            return "\(p): truncated file: \(w) needs \(n) bytes at offset \(o)"
        case .invalidValueType(let p, let k, let r):
            return "\(p): metadata key '\(k)' has invalid value type \(r)"
        case .absurdCount(let p, let w, let c, let l):
            return "\(p): \(w) count \(c) exceeds the limit \(l) for this file"
        case .nestingTooDeep(let p, let k):
            return "\(p): metadata key '\(k)' nests arrays too deeply"
        case .duplicateKey(let p, let k): return "\(p): duplicate metadata key '\(k)'"
        case .duplicateTensor(let p, let n): return "\(p): duplicate tensor name '\(n)'"
        case .unknownTensorType(let p, let t, let r):
            return "\(p): tensor '\(t)' has unknown type id \(r)"
        case .invalidTensorShape(let p, let t, let d): return "\(p): tensor '\(t)': \(d)"
        case .tensorOutOfFile(let p, let t, let d): return "\(p): tensor '\(t)' \(d)"
        case .tensorsOverlap(let p, let a, let b):
            return "\(p): tensors '\(a)' and '\(b)' overlap in the data section"
        case .badAlignment(let p, let a):
            return "\(p): general.alignment \(a) is not a power of two between 1 and 65536"
        case .missingTensor(let p, let n): return "\(p): tensor '\(n)' not found"
        case .writer(let m): return "GGUF writer: \(m)"
        }
    }
}
