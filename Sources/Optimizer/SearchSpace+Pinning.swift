import Foundation

extension SearchSpace {
    /// The space with every knob not in `searched` pinned to its default, moved inside the knob's
    /// bounds (an int clamped, an ordinal's nearest choice); knobs without a default stay searched.
    public func searching(only searched: Set<String>, defaults: [String: KnobValue]) throws(SearchSpaceError) -> SearchSpace {
        var pinned: [String: KnobValue] = [:]
        for k in knobs where !searched.contains(k.name) {
            guard let d = defaults[k.name] else { continue }
            pinned[k.name] = Self.clamp(d, to: k)
        }
        return pinned.isEmpty ? self : try fixing(pinned)
    }

    static func clamp(_ v: KnobValue, to k: Knob) -> KnobValue {
        guard let x = v.intValue, case .int = v else { return v }
        switch k.kind {
        case .int(let r), .logInt(let r): return .int(min(max(x, r.lowerBound), r.upperBound))
        case .ordinal(let xs): return .int(xs.min { abs($0 - x) < abs($1 - x) } ?? x)
        default: return v
        }
    }

    /// The same space with some knobs pinned to one value each (the others still searched), e.g.
    /// to search only threads and maxSeqs. Throws for an unknown knob or a value of the wrong kind
    /// or outside the knob's bounds.
    public func fixing(_ values: [String: KnobValue]) throws(SearchSpaceError) -> SearchSpace {
        for name in values.keys where !knobs.contains(where: { $0.name == name }) { throw .unknownKnob(name) }
        let ks = try knobs.map { k throws(SearchSpaceError) -> Knob in
            guard let v = values[k.name] else { return k }
            switch (k.kind, v) {
            case (.int(let r), .int(let x)), (.logInt(let r), .int(let x)):
                guard r.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .ordinal([x]))
            case (.ordinal(let xs), .int(let x)):
                guard xs.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .ordinal([x]))
            case (.categorical(let cs), .category(let s)):
                guard cs.contains(s) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .categorical([s]))
            case (.real(let r), .real(let x)):
                guard r.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .real(x...x))
            default:
                throw .wrongValue(knob: k.name, value: v)
            }
        }
        return try SearchSpace(knobs: ks, constraints: constraints)
    }

    /// Parses a knob's value from text the way the knob is typed ("8", "f16", "0.5", "true").
    public func value(of name: String, from text: String) throws(SearchSpaceError) -> KnobValue {
        guard let k = knobs.first(where: { $0.name == name }) else { throw .unknownKnob(name) }
        switch k.kind {
        case .int, .logInt, .ordinal:
            guard let x = Int(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .int(x)
        case .real:
            guard let x = Double(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .real(x)
        case .categorical: return .category(text)
        case .bool:
            guard let b = Bool(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .bool(b)
        }
    }
}
