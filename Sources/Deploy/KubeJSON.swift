import Spec
import Foundation

// Kubernetes API objects are the shared `JSONValue` (module JSON); re-exported so Deploy's
// clients and tests see it through `import Deploy`.
@_exported import JSON

extension JSONValue {
    /// The rendered-manifest value as JSON (what the API server receives).
    public init(_ yaml: YAMLValue) {
        switch yaml {
        case .string(let s): self = .string(s)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .bool(let b): self = .bool(b)
        case .list(let l): self = .array(l.map(JSONValue.init))
        case .map(let fields):
            var o: [String: JSONValue] = [:]
            for f in fields { o[f.key] = JSONValue(f.value) }
            self = .object(o)
        }
    }
}
