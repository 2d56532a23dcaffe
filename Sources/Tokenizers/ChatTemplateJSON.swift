import JSON

extension TemplateValue {
    /// A JSON value with its object key order, as a template sees it.
    public init(_ v: OrderedJSON) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(TemplateValue.init))
        case .object(let m): self = .object(m.map { ($0.key, TemplateValue($0.value)) })
        }
    }
}

func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
    switch c {
    case "0"..."9": return c.value - 48
    case "a"..."f": return c.value - 87
    case "A"..."F": return c.value - 55
    default: return nil
    }
}
