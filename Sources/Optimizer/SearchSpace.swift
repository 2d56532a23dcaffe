import Foundation

/// A knob's value in a concrete configuration.
public enum KnobValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case int(Int)
    case real(Double)
    case category(String)
    case bool(Bool)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .real(let v): return String(format: "%.6g", v)
        case .category(let s): return s
        case .bool(let b): return b ? "true" : "false"
        }
    }
    public var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .real(let v): return Int(v.rounded())
        case .bool(let b): return b ? 1 : 0
        case .category: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .real(let v): return v
        case .bool(let b): return b ? 1 : 0
        case .category: return nil
        }
    }
}

/// A typed, bounded knob.
public enum KnobKind: Sendable, Hashable, Codable {
    /// Integer, uniform on [lo, hi].
    case int(ClosedRange<Int>)
    /// Integer searched on a log scale (lo ≥ 1), e.g. batch sizes.
    case logInt(ClosedRange<Int>)
    /// Real, uniform on [lo, hi].
    case real(ClosedRange<Double>)
    /// One of a fixed list (one-hot in the GP's input space).
    case categorical([String])
    case bool
    /// Ordered integer choices (ascending, distinct), e.g. a discretised int knob; normalised by index.
    case ordinal([Int])
}

public struct Knob: Sendable, Hashable, Codable {
    public var name: String
    public var kind: KnobKind
    public init(_ name: String, _ kind: KnobKind) { self.name = name; self.kind = kind }

    /// Width of this knob in the normalised vector.
    public var width: Int {
        if case .categorical(let c) = kind { return c.count }
        return 1
    }
}

/// A concrete configuration: one value per knob, in the space's knob order.
public struct Config: Sendable, Hashable, Codable, CustomStringConvertible {
    public var names: [String]
    public var values: [KnobValue]
    public init(names: [String], values: [KnobValue]) { self.names = names; self.values = values }
    public init(_ pairs: KeyValuePairs<String, KnobValue>) {
        names = pairs.map(\.key); values = pairs.map(\.value)
    }
    public subscript(_ name: String) -> KnobValue? {
        guard let i = names.firstIndex(of: name) else { return nil }
        return values[i]
    }
    public func int(_ name: String) -> Int? { self[name]?.intValue }
    public func double(_ name: String) -> Double? { self[name]?.doubleValue }
    public func string(_ name: String) -> String? {
        if case .category(let s)? = self[name] { return s }
        return nil
    }
    public var description: String { zip(names, values).map { "\($0)=\($1)" }.joined(separator: " ") }
}

public enum SearchSpaceError: Error, CustomStringConvertible {
    case emptyKnob(String)
    case badBounds(String)
    case noFeasibleConfig(tried: Int)
    /// An exhaustive grid was asked of a space with a real knob or too many configurations.
    case gridTooLarge
    case unknownKnob(String)
    case wrongValue(knob: String, value: KnobValue)

    public var description: String {
        switch self {
        case .emptyKnob(let n): return "knob '\(n)' has no choices; give it at least one category"
        case .badBounds(let n): return "knob '\(n)' has invalid bounds (lo must be ≤ hi, and ≥ 1 for log-int)"
        case .noFeasibleConfig(let t):
            return "no configuration satisfies the machine/model constraints (\(t) random samples tried); lower the model's context, free memory, or widen the bounds"
        case .gridTooLarge: return "the space is too large for an exhaustive grid (or has a real-valued knob); discretise it first (optimize --grid-levels N)"
        case .unknownKnob(let n): return "configuration has no knob named '\(n)'"
        case .wrongValue(let k, let v): return "value \(v) does not fit knob '\(k)'"
        }
    }
}

/// A named feasibility constraint on a configuration (machine cores, memory, model context …).
public struct SpaceConstraint: Sendable {
    public var name: String
    public var holds: @Sendable (Config) -> Bool
    public init(_ name: String, _ holds: @escaping @Sendable (Config) -> Bool) { self.name = name; self.holds = holds }
}

/// Mixed search space with its normalisation to [0,1]^d and back.
public struct SearchSpace: Sendable {
    public let knobs: [Knob]
    public var constraints: [SpaceConstraint]
    /// Start offset of each knob in the normalised vector.
    public let offsets: [Int]
    public let dimension: Int

    public init(knobs: [Knob], constraints: [SpaceConstraint] = []) throws(SearchSpaceError) {
        for k in knobs {
            switch k.kind {
            case .int(let r): if r.lowerBound > r.upperBound { throw .badBounds(k.name) }
            case .logInt(let r): if r.lowerBound < 1 || r.lowerBound > r.upperBound { throw .badBounds(k.name) }
            case .real(let r): if !(r.lowerBound <= r.upperBound) || !r.lowerBound.isFinite || !r.upperBound.isFinite { throw .badBounds(k.name) }
            case .categorical(let c): if c.isEmpty { throw .emptyKnob(k.name) }
            case .bool: break
            case .ordinal(let v):
                if v.isEmpty { throw .emptyKnob(k.name) }
                if zip(v, v.dropFirst()).contains(where: { $0 >= $1 }) { throw .badBounds(k.name) }
            }
        }
        self.knobs = knobs
        self.constraints = constraints
        var off: [Int] = []
        var d = 0
        for k in knobs { off.append(d); d += k.width }
        offsets = off
        dimension = d
    }

    public var names: [String] { knobs.map(\.name) }

    /// Stable textual identity of the knobs and their bounds (constraints are code, not data).
    public var signature: String {
        knobs.map { k -> String in
            switch k.kind {
            case .int(let r): return "\(k.name):int[\(r.lowerBound),\(r.upperBound)]"
            case .logInt(let r): return "\(k.name):logint[\(r.lowerBound),\(r.upperBound)]"
            case .real(let r): return "\(k.name):real[\(r.lowerBound),\(r.upperBound)]"
            case .categorical(let c): return "\(k.name):cat[\(c.joined(separator: ","))]"
            case .bool: return "\(k.name):bool"
            case .ordinal(let v): return "\(k.name):ord[\(v.map(String.init).joined(separator: ","))]"
            }
        }.joined(separator: ";")
    }

    /// True when every constraint holds.
    /// Width (in the normalised vector) of the knobs that can take more than one value: a pinned
    /// knob, with a single choice, adds nothing to learn.
    public var freeDimension: Int {
        knobs.filter { k in
            switch k.kind {
            case .int(let r), .logInt(let r): return r.count > 1
            case .real(let r): return r.upperBound > r.lowerBound
            case .categorical(let c): return c.count > 1
            case .ordinal(let v): return v.count > 1
            case .bool: return true
            }
        }.reduce(0) { $0 + $1.width }
    }

    public func feasible(_ c: Config) -> Bool { constraints.allSatisfy { $0.holds(c) } }

    /// Names of the constraints a configuration violates.
    public func violated(_ c: Config) -> [String] { constraints.filter { !$0.holds(c) }.map(\.name) }

    /// Config → [0,1]^d. Categoricals one-hot, bool 0/1.
    public func encode(_ c: Config) -> [Double] {
        var x = [Double](repeating: 0, count: dimension)
        for (i, k) in knobs.enumerated() {
            let o = offsets[i]
            let v = c[k.name]
            switch k.kind {
            case .int(let r):
                let span = Double(r.upperBound - r.lowerBound)
                x[o] = span == 0 ? 0.5 : (Double(v?.intValue ?? r.lowerBound) - Double(r.lowerBound)) / span
            case .logInt(let r):
                let lo = Foundation.log(Double(r.lowerBound)), hi = Foundation.log(Double(r.upperBound))
                let val = Foundation.log(Double(max(v?.intValue ?? r.lowerBound, 1)))
                x[o] = hi == lo ? 0.5 : (val - lo) / (hi - lo)
            case .real(let r):
                let span = r.upperBound - r.lowerBound
                x[o] = span == 0 ? 0.5 : ((v?.doubleValue ?? r.lowerBound) - r.lowerBound) / span
            case .categorical(let cats):
                if case .category(let s)? = v, let j = cats.firstIndex(of: s) { x[o + j] = 1 } else { x[o] = 1 }
            case .bool:
                if case .bool(let b)? = v { x[o] = b ? 1 : 0 }
            case .ordinal(let choices):
                let i = v?.intValue.flatMap { choices.firstIndex(of: $0) } ?? 0
                x[o] = choices.count == 1 ? 0.5 : Double(i) / Double(choices.count - 1)
            }
        }
        return x
    }

    /// [0,1]^d (any real vector; clamped) → concrete Config. Integers round, categoricals take the argmax.
    public func decode(_ x: [Double]) -> Config {
        var values: [KnobValue] = []
        values.reserveCapacity(knobs.count)
        for (i, k) in knobs.enumerated() {
            let o = offsets[i]
            let u = min(max(x[o], 0), 1)
            switch k.kind {
            case .int(let r):
                let v = Double(r.lowerBound) + u * Double(r.upperBound - r.lowerBound)
                values.append(.int(min(max(Int(v.rounded()), r.lowerBound), r.upperBound)))
            case .logInt(let r):
                let lo = Foundation.log(Double(r.lowerBound)), hi = Foundation.log(Double(r.upperBound))
                let v = Foundation.exp(lo + u * (hi - lo))
                values.append(.int(min(max(Int(v.rounded()), r.lowerBound), r.upperBound)))
            case .real(let r):
                values.append(.real(r.lowerBound + u * (r.upperBound - r.lowerBound)))
            case .categorical(let cats):
                var best = 0
                for j in 1..<cats.count where x[o + j] > x[o + best] { best = j }
                values.append(.category(cats[best]))
            case .bool:
                values.append(.bool(u >= 0.5))
            case .ordinal(let choices):
                values.append(.int(choices[min(Int((u * Double(choices.count - 1)).rounded()), choices.count - 1)]))
            }
        }
        return Config(names: names, values: values)
    }

    /// The canonical normalised point of x (decode then encode): what the surrogates are trained on.
    public func snap(_ x: [Double]) -> [Double] { encode(decode(x)) }

    /// Checks a configuration's names and values against the knobs.
    public func validate(_ c: Config) throws(SearchSpaceError) {
        for k in knobs {
            guard let v = c[k.name] else { throw .unknownKnob(k.name) }
            switch (k.kind, v) {
            case (.int(let r), .int(let i)), (.logInt(let r), .int(let i)):
                if !r.contains(i) { throw .wrongValue(knob: k.name, value: v) }
            case (.real(let r), .real(let d)):
                if !r.contains(d) { throw .wrongValue(knob: k.name, value: v) }
            case (.categorical(let cats), .category(let s)):
                if !cats.contains(s) { throw .wrongValue(knob: k.name, value: v) }
            case (.bool, .bool): break
            case (.ordinal(let choices), .int(let i)):
                if !choices.contains(i) { throw .wrongValue(knob: k.name, value: v) }
            default: throw .wrongValue(knob: k.name, value: v)
            }
        }
    }

    /// A uniformly random point of the unit cube whose decoded config is feasible (rejection sampling).
    public func randomFeasible(_ rng: inout SeededRNG, tries: Int = 10_000) throws(SearchSpaceError) -> [Double] {
        for _ in 0..<tries {
            var x = [Double](repeating: 0, count: dimension)
            for i in 0..<dimension { x[i] = rng.uniform() }
            let c = decode(x)
            if feasible(c) { return encode(c) }
        }
        throw .noFeasibleConfig(tried: tries)
    }

    /// The same space with every int / log-int knob of more than `levels` values replaced by an
    /// ordinal knob of `levels` values spread over its range (evenly for int, geometrically for
    /// log-int, both ends included; rounding duplicates dropped). Constraints are kept, so a grid
    /// over it (`grid`) and a search in it explore exactly the same configurations.
    public func discretized(levels: Int) throws(SearchSpaceError) -> SearchSpace {
        let n = max(levels, 2)
        let ks = knobs.map { k -> Knob in
            switch k.kind {
            case .int(let r) where r.count > n:
                let v = (0..<n).map { r.lowerBound + Int((Double(r.upperBound - r.lowerBound) * Double($0) / Double(n - 1)).rounded()) }
                return Knob(k.name, .ordinal(Array(Set(v)).sorted()))
            case .logInt(let r) where r.count > n:
                let lo = Foundation.log(Double(r.lowerBound)), hi = Foundation.log(Double(r.upperBound))
                let v = (0..<n).map { i -> Int in
                    let x = Int(Foundation.exp(lo + (hi - lo) * Double(i) / Double(n - 1)).rounded())
                    return min(max(x, r.lowerBound), r.upperBound)
                }
                return Knob(k.name, .ordinal(Array(Set(v)).sorted()))
            default:
                return k
            }
        }
        return try SearchSpace(knobs: ks, constraints: constraints)
    }

    /// Every configuration of an all-discrete space (for grids and exhaustive checks); nil when a
    /// knob is real or the grid would exceed `limit`.
    public func grid(limit: Int = 1_000_000) -> [Config]? {
        var axes: [[KnobValue]] = []
        var total = 1
        for k in knobs {
            let axis: [KnobValue]
            switch k.kind {
            case .int(let r), .logInt(let r): axis = r.map { .int($0) }
            case .categorical(let c): axis = c.map { .category($0) }
            case .bool: axis = [.bool(false), .bool(true)]
            case .ordinal(let v): axis = v.map { .int($0) }
            case .real: return nil
            }
            total *= axis.count
            if total > limit { return nil }
            axes.append(axis)
        }
        var out: [Config] = [Config(names: names, values: [])]
        for axis in axes {
            out = out.flatMap { c in axis.map { v in Config(names: c.names, values: c.values + [v]) } }
        }
        return out
    }
}

/// Seeded Latin hypercube in [0,1]^d: each dimension's n strata are each hit exactly once.
public func latinHypercube(n: Int, dimension d: Int, rng: inout SeededRNG) -> [[Double]] {
    guard n > 0 else { return [] }
    var points = [[Double]](repeating: [Double](repeating: 0, count: d), count: n)
    for j in 0..<d {
        var perm = Array(0..<n)
        // Fisher–Yates with our generator (Array.shuffle's algorithm is not guaranteed stable across releases).
        var i = n - 1
        while i > 0 {
            let k = rng.below(i + 1)
            perm.swapAt(i, k)
            i -= 1
        }
        for p in 0..<n { points[p][j] = (Double(perm[p]) + rng.uniform()) / Double(n) }
    }
    return points
}
