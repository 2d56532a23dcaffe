import GGUF

/// Errors raised while loading or running a model. Each is one line that names the file and
/// what to fix; names read from the file are quoted with control characters escaped.
public enum ModelError: Error, CustomStringConvertible {
    case unsupportedArchitecture(path: String, architecture: String, supported: [String])
    case missingMetadata(path: String, key: String)
    case missingTensors(path: String, names: [String])
    case unsupportedTensorType(path: String, tensor: String, type: GGMLType)
    case shapeMismatch(path: String, tensor: String, expected: [Int], actual: [Int])
    case invalidMetadata(path: String, key: String, detail: String)
    case contextOverflow(needed: Int, limit: Int)
    case invalidToken(id: Int32, vocabulary: Int)
    /// The engine did not give a pooled cache the blocks a forward pass needs (an engine bug).
    case kvBlocksMissing(needed: Int, covered: Int)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let p, let a, let s):
            return "\(p): unsupported architecture \(GGUFError.quote(a)) (supported: \(s.joined(separator: ", ")))"
        case .missingMetadata(let p, let k):
            return "\(p): missing metadata key \(GGUFError.quote(k))"
        case .missingTensors(let p, let n):
            let shown = n.prefix(8).joined(separator: ", ") + (n.count > 8 ? ", … (\(n.count) in all)" : "")
            return "\(p): missing tensors: \(shown)"
        case .unsupportedTensorType(let p, let t, let ty):
            return "\(p): tensor \(GGUFError.quote(t)) has unsupported type \(ty)"
        case .shapeMismatch(let p, let t, let e, let a):
            return "\(p): tensor \(GGUFError.quote(t)) has shape \(a), expected \(e) from the metadata"
        case .invalidMetadata(let p, let k, let d):
            return "\(p): metadata \(GGUFError.quote(k)) \(GGUFError.clean(d))"
        case .contextOverflow(let n, let l):
            return "sequence needs \(n) positions but the context holds \(l)"
        case .invalidToken(let id, let v):
            return "token id \(id) is outside the vocabulary (0 ..< \(v))"
        case .kvBlocksMissing(let n, let c):
            return "internal error: the sequence needs \(n) KV positions but its block table covers \(c); please report it"
        }
    }
}
