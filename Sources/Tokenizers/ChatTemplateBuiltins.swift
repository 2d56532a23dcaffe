import Foundation

// Python/jinja2 semantics for values: str(), repr(), truthiness, operators, filters, tests, methods.

typealias Scalars = [Unicode.Scalar]

@inline(__always) func scalars(_ s: String) -> Scalars { Array(s.unicodeScalars) }
@inline(__always) func str(_ s: some Sequence<Unicode.Scalar>) -> String {
    var v = String.UnicodeScalarView()
    v.append(contentsOf: s)
    return String(v)
}

// MARK: - Conversions

func truthy(_ v: Value) -> Bool {
    switch v {
    case .undefined, .none: return false
    case .bool(let b): return b
    case .int(let i): return i != 0
    case .double(let d): return d != 0
    case .string(let s): return !s.isEmpty
    case .list(let a), .tuple(let a): return !a.isEmpty
    case .dict(let d): return d.count > 0
    case .namespace, .function: return true
    }
}

/// Python `str(value)` (jinja2 output of `{{ value }}`; undefined prints nothing).
func pyStr(_ v: Value) -> String {
    switch v {
    case .undefined: return ""
    case .string(let s): return s
    default: return pyRepr(v)
    }
}

func pyRepr(_ v: Value) -> String {
    switch v {
    case .undefined: return ""
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return String(i)
    case .double(let d): return pyFloatRepr(d)
    case .string(let s): return pyStringRepr(s)
    case .list(let a): return "[" + a.map(pyRepr).joined(separator: ", ") + "]"
    case .tuple(let a): return "(" + a.map(pyRepr).joined(separator: ", ") + (a.count == 1 ? ",)" : ")")
    case .dict(let d): return "{" + d.pairs.map { pyStringRepr($0.0) + ": " + pyRepr($0.1) }.joined(separator: ", ") + "}"
    case .namespace(let ns):
        return "<Namespace {" + ns.attrs.pairs.map { pyStringRepr($0.0) + ": " + pyRepr($0.1) }.joined(separator: ", ") + "}>"
    case .function(let f): return "<function \(f.name)>"
    }
}

func pyStringRepr(_ s: String) -> String {
    let hasSingle = s.unicodeScalars.contains("'")
    let hasDouble = s.unicodeScalars.contains("\"")
    let q: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(q)
    for c in s.unicodeScalars {
        switch c {
        case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        default:
            if c == q {
                out.append("\\")
                out.append(c)
            } else if c.value < 0x20 || c.value == 0x7F || (c.value >= 0x80 && c.value < 0xA0) {
                out.append(contentsOf: String(format: "\\x%02x", c.value).unicodeScalars)
            } else {
                out.append(c)
            }
        }
    }
    out.append(q)
    return String(out)
}

/// Python `repr(float)`: shortest round-trip digits, exponent form when exp < -4 or exp >= 16.
func pyFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    var desc = "\(d)"
    var neg = false
    if desc.hasPrefix("-") { neg = true; desc.removeFirst() }
    var mant = desc
    var e = 0
    if let ei = desc.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        mant = String(desc[..<ei])
        e = Int(desc[desc.index(after: ei)...]) ?? 0
    }
    let parts = mant.split(separator: ".", omittingEmptySubsequences: false)
    let intPart = String(parts[0])
    let fracPart = parts.count > 1 ? String(parts[1]) : ""
    var digits = Array(intPart + fracPart)
    var point = intPart.count + e
    while digits.count > 1, digits.first == "0" { digits.removeFirst(); point -= 1 }
    while digits.count > 1, digits.last == "0" { digits.removeLast() }
    let exp10 = point - 1
    var r = neg ? "-" : ""
    if exp10 < -4 || exp10 >= 16 {
        r.append(digits[0])
        if digits.count > 1 { r += "." + String(digits[1...]) }
        r += "e" + (exp10 < 0 ? "-" : "+") + (abs(exp10) < 10 ? "0" : "") + String(abs(exp10))
    } else if exp10 >= 0 {
        if digits.count <= exp10 + 1 {
            r += String(digits) + String(repeating: "0", count: exp10 + 1 - digits.count) + ".0"
        } else {
            r += String(digits[0...exp10]) + "." + String(digits[(exp10 + 1)...])
        }
    } else {
        r += "0." + String(repeating: "0", count: -exp10 - 1) + String(digits)
    }
    return r
}

func iterate(_ v: Value) throws(ChatTemplateError) -> [Value] {
    switch v {
    case .undefined: return []
    case .list(let a), .tuple(let a): return a
    case .dict(let d): return d.keys.map { .string($0) }
    case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
    default: throw fail("'\(v.typeName)' object is not iterable")
    }
}

// MARK: - Equality and ordering

func isSequence(_ v: Value) -> Bool {
    switch v {
    case .list, .tuple: return true
    default: return false
    }
}

func isNumber(_ v: Value) -> Bool {
    switch v {
    case .int, .double, .bool: return true
    default: return false
    }
}

func numericPair(_ a: Value, _ b: Value) -> (Double, Double, Int?, Int?)? {
    func parts(_ v: Value) -> (Double, Int?)? {
        switch v {
        case .int(let i): return (Double(i), i)
        case .bool(let b): return (b ? 1 : 0, b ? 1 : 0)
        case .double(let d): return (d, nil)
        default: return nil
        }
    }
    guard let x = parts(a), let y = parts(b) else { return nil }
    return (x.0, y.0, x.1, y.1)
}

func pyEq(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined): return true
    case (.undefined, _), (_, .undefined): return false
    case (.none, .none): return true
    case let (.string(x), .string(y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
    case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)): return x.count == y.count && zip(x, y).allSatisfy { pyEq($0, $1) }
    case let (.dict(x), .dict(y)):
        guard x.count == y.count else { return false }
        for (k, v) in x.pairs {
            guard let w = y[k], pyEq(v, w) else { return false }
        }
        return true
    case let (.namespace(x), .namespace(y)): return x === y
    case let (.function(x), .function(y)): return x === y
    default:
        if let (x, y, xi, yi) = numericPair(a, b) {
            if let xi, let yi { return xi == yi }
            return x == y
        }
        return false
    }
}

/// Python ordering: -1, 0, 1; throws for unorderable types.
func pyCompare(_ a: Value, _ b: Value, _ op: String) throws(ChatTemplateError) -> Int {
    if let (x, y, xi, yi) = numericPair(a, b) {
        if let xi, let yi { return xi < yi ? -1 : (xi > yi ? 1 : 0) }
        return x < y ? -1 : (x > y ? 1 : 0)
    }
    switch (a, b) {
    case let (.string(x), .string(y)):
        let xs = x.unicodeScalars, ys = y.unicodeScalars
        var i = xs.startIndex, j = ys.startIndex
        while i != xs.endIndex && j != ys.endIndex {
            if xs[i] != ys[j] { return xs[i].value < ys[j].value ? -1 : 1 }
            i = xs.index(after: i)
            j = ys.index(after: j)
        }
        if i == xs.endIndex && j == ys.endIndex { return 0 }
        return i == xs.endIndex ? -1 : 1
    case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
        for (p, q) in zip(x, y) where !pyEq(p, q) { return try pyCompare(p, q, op) }
        return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
    case (.undefined, _): throw undefinedError(a)
    case (_, .undefined): throw undefinedError(b)
    default:
        throw fail("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
    }
}

func contains(_ container: Value, _ item: Value) throws(ChatTemplateError) -> Bool {
    switch container {
    case .string(let s):
        guard case .string(let sub) = item else { throw fail("'in <string>' requires string as left operand, not \(item.typeName)") }
        return scalarFind(scalars(s), scalars(sub), from: 0) != nil
    case .list(let a), .tuple(let a): return a.contains { pyEq($0, item) }
    case .dict(let d):
        guard case .string(let k) = item else { return false }
        return d[k] != nil
    case .undefined: return false
    default: throw fail("argument of type '\(container.typeName)' is not iterable")
    }
}

func compareOp(_ op: String, _ a: Value, _ b: Value) throws(ChatTemplateError) -> Bool {
    switch op {
    case "==": return pyEq(a, b)
    case "!=": return !pyEq(a, b)
    case "<": return try pyCompare(a, b, op) < 0
    case "<=": return try pyCompare(a, b, op) <= 0
    case ">": return try pyCompare(a, b, op) > 0
    case ">=": return try pyCompare(a, b, op) >= 0
    case "in": return try contains(b, a)
    case "notin": return try !contains(b, a)
    default: throw fail("unknown comparison \(op)")
    }
}

// MARK: - Arithmetic

func binaryOp(_ op: String, _ a: Value, _ b: Value) throws(ChatTemplateError) -> Value {
    if op == "~" { return .string(pyStr(a) + pyStr(b)) }
    if a.isUndefined { throw undefinedError(a) }
    if b.isUndefined { throw undefinedError(b) }
    func typeError() -> ChatTemplateError {
        fail("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }
    switch op {
    case "+":
        switch (a, b) {
        case let (.string(x), .string(y)): return .string(x + y)
        case let (.list(x), .list(y)): return .list(x + y)
        case let (.tuple(x), .tuple(y)): return .tuple(x + y)
        default: break
        }
    case "*":
        switch (a, b) {
        case let (.string(s), .int(n)), let (.int(n), .string(s)):
            return .string(n > 0 ? String(repeating: s, count: n) : "")
        case let (.list(l), .int(n)), let (.int(n), .list(l)):
            var r: [Value] = []
            if n > 0 { for _ in 0..<n { r += l } }
            return .list(r)
        default: break
        }
    case "%":
        if case .string = a { throw fail("string formatting with '%' is not supported") }
    default: break
    }
    guard let (x, y, xi, yi) = numericPair(a, b) else { throw typeError() }
    if let xi, let yi {
        switch op {
        case "+":
            let (r, o) = xi.addingReportingOverflow(yi)
            if o { throw fail("integer overflow") }
            return .int(r)
        case "-":
            let (r, o) = xi.subtractingReportingOverflow(yi)
            if o { throw fail("integer overflow") }
            return .int(r)
        case "*":
            let (r, o) = xi.multipliedReportingOverflow(by: yi)
            if o { throw fail("integer overflow") }
            return .int(r)
        case "/":
            guard yi != 0 else { throw fail("division by zero") }
            return .double(x / y)
        case "//":
            guard yi != 0 else { throw fail("integer division or modulo by zero") }
            var q = xi / yi
            if (xi % yi != 0) && ((xi < 0) != (yi < 0)) { q -= 1 }
            return .int(q)
        case "%":
            guard yi != 0 else { throw fail("integer division or modulo by zero") }
            var m = xi % yi
            if m != 0 && ((m < 0) != (yi < 0)) { m += yi }
            return .int(m)
        case "**":
            if yi >= 0 {
                var r = 1
                for _ in 0..<min(yi, 4096) {
                    let (p, o) = r.multipliedReportingOverflow(by: xi)
                    if o { throw fail("integer overflow") }
                    r = p
                }
                return .int(r)
            }
            return .double(Foundation.pow(x, y))
        default: throw typeError()
        }
    }
    switch op {
    case "+": return .double(x + y)
    case "-": return .double(x - y)
    case "*": return .double(x * y)
    case "/":
        guard y != 0 else { throw fail("float division by zero") }
        return .double(x / y)
    case "//":
        guard y != 0 else { throw fail("float floor division by zero") }
        return .double((x / y).rounded(.down))
    case "%":
        guard y != 0 else { throw fail("float modulo") }
        var m = x.truncatingRemainder(dividingBy: y)
        if m != 0 && ((m < 0) != (y < 0)) { m += y }
        return .double(m)
    case "**": return .double(Foundation.pow(x, y))
    default: throw typeError()
    }
}

// MARK: - Attributes, items, slices

func getAttr(_ obj: Value, _ name: String) throws(ChatTemplateError) -> Value {
    switch obj {
    case .undefined:
        throw undefinedError(obj)
    case .dict(let d):
        if let m = dictMethod(d, name) { return m }
        return d[name] ?? .undefined("'dict object' has no attribute '\(name)'; it")
    case .namespace(let ns):
        return ns.attrs[name] ?? .undefined("namespace attribute '\(name)'")
    case .string(let s):
        if let m = stringMethod(s, name) { return m }
        return .undefined("'str object' has no attribute '\(name)'; it")
    default:
        return .undefined("'\(obj.typeName) object' has no attribute '\(name)'; it")
    }
}

func getItem(_ obj: Value, _ key: Value) throws(ChatTemplateError) -> Value {
    switch obj {
    case .undefined:
        throw undefinedError(obj)
    case .dict(let d):
        if case .string(let k) = key { return d[k] ?? .undefined("key '\(k)'") }
        return .undefined("key \(pyRepr(key))")
    case .list(let a), .tuple(let a):
        guard let i = intIndex(key) else { return .undefined("list index \(pyRepr(key))") }
        let j = i < 0 ? a.count + i : i
        return j >= 0 && j < a.count ? a[j] : .undefined("list index \(i)")
    case .string(let s):
        guard let i = intIndex(key) else { return .undefined("string index \(pyRepr(key))") }
        let sc = scalars(s)
        let j = i < 0 ? sc.count + i : i
        return j >= 0 && j < sc.count ? .string(String(sc[j])) : .undefined("string index \(i)")
    case .namespace:
        if case .string(let k) = key { return try getAttr(obj, k) }
        return .undefined("namespace item")
    default:
        return .undefined("item \(pyRepr(key)) of \(obj.typeName)")
    }
}

func intIndex(_ v: Value) -> Int? {
    switch v {
    case .int(let i): return i
    case .bool(let b): return b ? 1 : 0
    default: return nil
    }
}

/// Python slice indices for a sequence of length n.
func sliceIndices(_ n: Int, _ a: Value?, _ b: Value?, _ c: Value?) throws(ChatTemplateError) -> [Int] {
    func opt(_ v: Value?) throws(ChatTemplateError) -> Int? {
        guard let v else { return nil }
        if case .none = v { return nil }
        guard let i = intIndex(v) else { throw fail("slice indices must be integers or None") }
        return i
    }
    let step = try opt(c) ?? 1
    guard step != 0 else { throw fail("slice step cannot be zero") }
    var start: Int, stop: Int
    if step > 0 {
        start = try opt(a).map { $0 < 0 ? max($0 + n, 0) : min($0, n) } ?? 0
        stop = try opt(b).map { $0 < 0 ? max($0 + n, 0) : min($0, n) } ?? n
    } else {
        start = try opt(a).map { $0 < 0 ? max($0 + n, -1) : min($0, n - 1) } ?? (n - 1)
        stop = try opt(b).map { $0 < 0 ? max($0 + n, -1) : min($0, n - 1) } ?? -1
    }
    var r: [Int] = []
    var k = start
    while step > 0 ? k < stop : k > stop {
        r.append(k)
        k += step
    }
    return r
}

func slice(_ obj: Value, _ a: Value?, _ b: Value?, _ c: Value?) throws(ChatTemplateError) -> Value {
    switch obj {
    case .list(let l):
        return .list(try sliceIndices(l.count, a, b, c).map { l[$0] })
    case .tuple(let l):
        return .tuple(try sliceIndices(l.count, a, b, c).map { l[$0] })
    case .string(let s):
        let sc = scalars(s)
        return .string(str(try sliceIndices(sc.count, a, b, c).map { sc[$0] }))
    case .undefined:
        throw undefinedError(obj)
    default:
        throw fail("'\(obj.typeName)' object is not subscriptable")
    }
}

// MARK: - Methods

func argument(_ args: [Value], _ kwargs: [(String, Value)], _ index: Int, _ name: String) -> Value? {
    if index < args.count { return args[index] }
    return kwargs.last(where: { $0.0 == name })?.1
}

func dictMethod(_ d: ODict, _ name: String) -> Value? {
    switch name {
    case "get":
        return .function(FunctionObject("dict.get") { args, kwargs throws(ChatTemplateError) in
            guard let k = argument(args, kwargs, 0, "key") else { throw fail("get() needs a key") }
            let def = argument(args, kwargs, 1, "default") ?? .none
            guard case .string(let ks) = k else { return def }
            return d[ks] ?? def
        })
    case "items":
        return .function(FunctionObject("dict.items") { _, _ in .list(d.pairs.map { .tuple([.string($0.0), $0.1]) }) })
    case "keys":
        return .function(FunctionObject("dict.keys") { _, _ in .list(d.keys.map { .string($0) }) })
    case "values":
        return .function(FunctionObject("dict.values") { _, _ in .list(d.pairs.map { $0.1 }) })
    default:
        return nil
    }
}

func stringArg(_ v: Value?, _ what: String) throws(ChatTemplateError) -> String? {
    guard let v else { return nil }
    switch v {
    case .none: return nil
    case .string(let s): return s
    default: throw fail("\(what) must be a string or None, not \(v.typeName)")
    }
}

func scalarFind(_ hay: Scalars, _ needle: Scalars, from: Int) -> Int? {
    if needle.isEmpty { return from <= hay.count ? from : nil }
    guard hay.count >= needle.count else { return nil }
    var i = from
    while i + needle.count <= hay.count {
        if hay[i] == needle[0] {
            var k = 1
            while k < needle.count, hay[i + k] == needle[k] { k += 1 }
            if k == needle.count { return i }
        }
        i += 1
    }
    return nil
}

func pyStrip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
    let sc = scalars(s)
    let set: Set<Unicode.Scalar>? = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPyWhitespace(c) }
    var a = 0, b = sc.count
    if left { while a < b, strip(sc[a]) { a += 1 } }
    if right { while b > a, strip(sc[b - 1]) { b -= 1 } }
    return str(sc[a..<b])
}

func pySplit(_ s: String, _ sep: String?, _ maxsplit: Int) throws(ChatTemplateError) -> [String] {
    let sc = scalars(s)
    var out: [String] = []
    if let sep {
        let sp = scalars(sep)
        guard !sp.isEmpty else { throw fail("empty separator") }
        var start = 0
        while maxsplit < 0 || out.count < maxsplit, let f = scalarFind(sc, sp, from: start) {
            out.append(str(sc[start..<f]))
            start = f + sp.count
        }
        out.append(str(sc[start...]))
        return out
    }
    var i = 0
    while i < sc.count {
        while i < sc.count, isPyWhitespace(sc[i]) { i += 1 }
        if i >= sc.count { break }
        if maxsplit >= 0 && out.count >= maxsplit {
            var end = sc.count
            while end > i, isPyWhitespace(sc[end - 1]) { end -= 1 }
            out.append(str(sc[i..<end]))
            return out
        }
        var j = i
        while j < sc.count, !isPyWhitespace(sc[j]) { j += 1 }
        out.append(str(sc[i..<j]))
        i = j
    }
    return out
}

func pyRSplit(_ s: String, _ sep: String?, _ maxsplit: Int) throws(ChatTemplateError) -> [String] {
    if maxsplit < 0 { return try pySplit(s, sep, -1) }
    let rev = str(scalars(s).reversed())
    let rsep = sep.map { str(scalars($0).reversed()) }
    return try pySplit(rev, rsep, maxsplit).reversed().map { str(scalars($0).reversed()) }
}

func pyReplace(_ s: String, _ old: String, _ new: String, _ count: Int) -> String {
    let sc = scalars(s), o = scalars(old), nw = scalars(new)
    var out: Scalars = []
    var done = 0
    if o.isEmpty {
        for (k, c) in sc.enumerated() {
            if count < 0 || done < count { out += nw; done += 1 }
            out.append(c)
            _ = k
        }
        if count < 0 || done < count { out += nw }
        return str(out)
    }
    var i = 0
    while i < sc.count {
        if (count < 0 || done < count), i + o.count <= sc.count, sc[i] == o[0], Array(sc[i..<(i + o.count)]) == o {
            out += nw
            i += o.count
            done += 1
        } else {
            out.append(sc[i])
            i += 1
        }
    }
    return str(out)
}

func pyTitle(_ s: String) -> String {
    var out = ""
    var prevCased = false
    for c in s.unicodeScalars {
        let cased = c.properties.isCased
        if cased {
            out += prevCased ? String(c).lowercased() : String(c).uppercased()
        } else {
            out.unicodeScalars.append(c)
        }
        prevCased = cased
    }
    return out
}

func pyCapitalize(_ s: String) -> String {
    let sc = scalars(s)
    guard let f = sc.first else { return s }
    return String(f).uppercased() + str(sc.dropFirst()).lowercased()
}

func intArg(_ v: Value?, _ def: Int) throws(ChatTemplateError) -> Int {
    guard let v else { return def }
    if case .none = v { return def }
    guard let i = intIndex(v) else { throw fail("expected an integer, got \(v.typeName)") }
    return i
}

func stringMethod(_ s: String, _ name: String) -> Value? {
    func m(_ call: @escaping ([Value], [(String, Value)]) throws(ChatTemplateError) -> Value) -> Value {
        .function(FunctionObject("str.\(name)", call))
    }
    switch name {
    case "startswith", "endswith":
        return m { args, _ throws(ChatTemplateError) in
            guard let p = args.first else { throw fail("\(name)() needs an argument") }
            var cands: [String] = []
            switch p {
            case .string(let x): cands = [x]
            case .list(let l), .tuple(let l):
                for x in l {
                    guard case .string(let xs) = x else { throw fail("\(name)() tuple items must be strings") }
                    cands.append(xs)
                }
            default: throw fail("\(name)() argument must be str or a tuple of str, not \(p.typeName)")
            }
            var sc = scalars(s)
            let start = try intArg(args.count > 1 ? args[1] : nil, 0)
            let end = try intArg(args.count > 2 ? args[2] : nil, sc.count)
            let idx = try sliceIndices(sc.count, .int(start), .int(end), nil)
            sc = idx.map { sc[$0] }
            for c in cands {
                let cs = scalars(c)
                if name == "startswith" ? sc.starts(with: cs) : sc.reversed().starts(with: cs.reversed()) { return .bool(true) }
            }
            return .bool(false)
        }
    case "split", "rsplit":
        return m { args, kwargs throws(ChatTemplateError) in
            let sep = try stringArg(argument(args, kwargs, 0, "sep"), "separator")
            let maxsplit = try intArg(argument(args, kwargs, 1, "maxsplit"), -1)
            let parts = name == "split" ? try pySplit(s, sep, maxsplit) : try pyRSplit(s, sep, maxsplit)
            return .list(parts.map { .string($0) })
        }
    case "strip", "lstrip", "rstrip":
        return m { args, kwargs throws(ChatTemplateError) in
            let chars = try stringArg(argument(args, kwargs, 0, "chars"), "chars")
            return .string(pyStrip(s, chars, left: name != "rstrip", right: name != "lstrip"))
        }
    case "upper": return m { _, _ in .string(s.uppercased()) }
    case "lower": return m { _, _ in .string(s.lowercased()) }
    case "title": return m { _, _ in .string(pyTitle(s)) }
    case "capitalize": return m { _, _ in .string(pyCapitalize(s)) }
    case "replace":
        return m { args, kwargs throws(ChatTemplateError) in
            guard let o = try stringArg(argument(args, kwargs, 0, "old"), "old"),
                  let n = try stringArg(argument(args, kwargs, 1, "new"), "new") else { throw fail("replace() needs two strings") }
            return .string(pyReplace(s, o, n, try intArg(argument(args, kwargs, 2, "count"), -1)))
        }
    case "find", "rfind", "count":
        return m { args, _ throws(ChatTemplateError) in
            guard let sub = try stringArg(args.first, "substring") else { throw fail("\(name)() needs a string") }
            let sc = scalars(s), sb = scalars(sub)
            var positions: [Int] = []
            var from = 0
            while let f = scalarFind(sc, sb, from: from) {
                positions.append(f)
                from = f + max(sb.count, 1)
                if from > sc.count { break }
            }
            switch name {
            case "find": return .int(positions.first ?? -1)
            case "rfind":
                if sb.isEmpty { return .int(sc.count) }
                var last = -1
                var k = 0
                while let f = scalarFind(sc, sb, from: k) { last = f; k = f + 1 }
                return .int(last)
            default: return .int(positions.count)
            }
        }
    case "join":
        return m { args, _ throws(ChatTemplateError) in
            guard let it = args.first else { throw fail("join() needs an iterable") }
            var parts: [String] = []
            for x in try iterate(it) {
                guard case .string(let xs) = x else { throw fail("sequence item: expected str instance, \(x.typeName) found") }
                parts.append(xs)
            }
            return .string(parts.joined(separator: s))
        }
    case "splitlines":
        return m { _, _ in
            var lines: [Value] = []
            var cur = String.UnicodeScalarView()
            let sc = scalars(s)
            var i = 0
            while i < sc.count {
                let c = sc[i]
                if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value) {
                    lines.append(.string(String(cur)))
                    cur = String.UnicodeScalarView()
                    if c == "\r", i + 1 < sc.count, sc[i + 1] == "\n" { i += 1 }
                } else {
                    cur.append(c)
                }
                i += 1
            }
            if !cur.isEmpty { lines.append(.string(String(cur))) }
            return .list(lines)
        }
    case "isdigit": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
    case "isalpha": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
    case "isalnum": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }) }
    case "isspace": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPyWhitespace)) }
    case "islower": return m { _, _ in .bool(s.contains { $0.isLetter } && s.lowercased() == s) }
    case "isupper": return m { _, _ in .bool(s.contains { $0.isLetter } && s.uppercased() == s) }
    default: return nil
    }
}

// MARK: - JSON (transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False))

struct JSONOptions {
    var indent: Int?
    var ensureASCII = false
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false
}

func jsonEscape(_ s: String, ascii: Bool, into out: inout String) {
    out.append("\"")
    for c in s.unicodeScalars {
        switch c {
        case "\"": out.append("\\\"")
        case "\\": out.append("\\\\")
        case "\n": out.append("\\n")
        case "\r": out.append("\\r")
        case "\t": out.append("\\t")
        case "\u{08}": out.append("\\b")
        case "\u{0C}": out.append("\\f")
        default:
            if c.value < 0x20 || (ascii && c.value > 0x7E) {
                if c.value > 0xFFFF {
                    let v = c.value - 0x10000
                    out.append(String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
                } else {
                    out.append(String(format: "\\u%04x", c.value))
                }
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }
    out.append("\"")
}

func jsonDumps(_ v: Value, _ o: JSONOptions, level: Int = 0, into out: inout String) throws(ChatTemplateError) {
    switch v {
    case .none: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .double(let d):
        if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += pyFloatRepr(d) }
    case .string(let s): jsonEscape(s, ascii: o.ensureASCII, into: &out)
    case .list(let a), .tuple(let a):
        if a.isEmpty { out += "[]"; return }
        out += "["
        for (k, x) in a.enumerated() {
            if k > 0 { out += o.itemSeparator }
            if let ind = o.indent { out += "\n" + String(repeating: " ", count: ind * (level + 1)) }
            try jsonDumps(x, o, level: level + 1, into: &out)
        }
        if let ind = o.indent { out += "\n" + String(repeating: " ", count: ind * level) }
        out += "]"
    case .dict(let d):
        if d.count == 0 { out += "{}"; return }
        out += "{"
        var pairs = d.pairs
        if o.sortKeys { pairs.sort { scalars($0.0).lexicographicallyPrecedes(scalars($1.0), by: { $0.value < $1.value }) } }
        for (k, (key, x)) in pairs.enumerated() {
            if k > 0 { out += o.itemSeparator }
            if let ind = o.indent { out += "\n" + String(repeating: " ", count: ind * (level + 1)) }
            jsonEscape(key, ascii: o.ensureASCII, into: &out)
            out += o.keySeparator
            try jsonDumps(x, o, level: level + 1, into: &out)
        }
        if let ind = o.indent { out += "\n" + String(repeating: " ", count: ind * level) }
        out += "}"
    case .undefined: throw fail("Object of type Undefined is not JSON serializable")
    case .namespace: throw fail("Object of type Namespace is not JSON serializable")
    case .function: throw fail("Object of type function is not JSON serializable")
    }
}

// MARK: - Filters

func attrPath(_ v: Value, _ path: String) throws(ChatTemplateError) -> Value {
    var cur = v
    for part in path.split(separator: ".", omittingEmptySubsequences: false) {
        if let i = Int(part), isSequence(cur) {
            cur = try getItem(cur, .int(i))
        } else if case .dict(let d) = cur {
            cur = d[String(part)] ?? .undefined("attribute '\(part)'")
        } else {
            cur = try getAttr(cur, String(part))
        }
        if cur.isUndefined { return cur }
    }
    return cur
}

extension Renderer {
    func applyFilter(_ name: String, _ v: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws(ChatTemplateError) -> Value {
        func arg(_ i: Int, _ n: String) -> Value? { argument(args, kwargs, i, n) }
        switch name {
        case "safe":
            return v
        case "string":
            return .string(pyStr(v))
        case "trim":
            return .string(pyStrip(pyStr(v), try stringArg(arg(0, "chars"), "chars"), left: true, right: true))
        case "upper":
            return .string(pyStr(v).uppercased())
        case "lower":
            return .string(pyStr(v).lowercased())
        case "capitalize":
            return .string(pyCapitalize(pyStr(v)))
        case "title":
            // jinja2 capitalizes words split on whitespace and -([{<
            var out = ""
            var start = true
            for c in pyStr(v).unicodeScalars {
                let sep = isPyWhitespace(c) || "-([{<".unicodeScalars.contains(c)
                if sep { out.unicodeScalars.append(c); start = true; continue }
                out += start ? String(c).uppercased() : String(c).lowercased()
                start = false
            }
            return .string(out)
        case "replace":
            guard let o = arg(0, "old"), let n = arg(1, "new") else { throw fail("replace needs two arguments") }
            return .string(pyReplace(pyStr(v), pyStr(o), pyStr(n), try intArg(arg(2, "count"), -1)))
        case "escape", "e":
            var out = ""
            for c in pyStr(v).unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            case .namespace(let ns): return .int(ns.attrs.count)
            default: throw fail("object of type '\(v.typeName)' has no len()")
            }
        case "wordcount":
            return .int(try pySplit(pyStr(v), nil, -1).count)
        case "default", "d":
            let def = arg(0, "default_value") ?? .string("")
            let boolean = truthy(arg(1, "boolean") ?? .bool(false))
            if v.isUndefined || (boolean && !truthy(v)) { return def }
            return v
        case "items":
            switch v {
            case .dict(let d): return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .undefined: return .list([])
            default: throw fail("can only get item pairs from a mapping")
            }
        case "dictsort":
            guard case .dict(let d) = v else { throw fail("dictsort expects a mapping") }
            let caseSensitive = truthy(arg(0, "case_sensitive") ?? .bool(false))
            let byValue = (arg(1, "by").map(pyStr) ?? "key") == "value"
            let reverse = truthy(arg(2, "reverse") ?? .bool(false))
            var pairs = d.pairs.map { Value.tuple([.string($0.0), $0.1]) }
            try sortValues(&pairs, reverse: reverse) { (p) throws(ChatTemplateError) -> Value in
                let x = try getItem(p, .int(byValue ? 1 : 0))
                if !caseSensitive, case .string(let s) = x { return .string(s.lowercased()) }
                return x
            }
            return .list(pairs)
        case "list":
            return .list(try iterate(v))
        case "first":
            if case .dict(let d) = v { return d.keys.first.map { .string($0) } ?? .undefined("first item") }
            return try iterate(v).first ?? .undefined("first item of an empty sequence")
        case "last":
            return try iterate(v).last ?? .undefined("last item of an empty sequence")
        case "reverse":
            if case .string(let s) = v { return .string(str(scalars(s).reversed())) }
            return .list(try iterate(v).reversed())
        case "join":
            let sep = arg(0, "d").map(pyStr) ?? ""
            var parts: [String] = []
            for x in try iterate(v) {
                if let a = arg(1, "attribute") { parts.append(pyStr(try attrPath(x, pyStr(a)))) } else { parts.append(pyStr(x)) }
            }
            return .string(parts.joined(separator: sep))
        case "tojson":
            var o = JSONOptions()
            if let a = arg(0, "ensure_ascii") { o.ensureASCII = truthy(a) }
            if let a = arg(1, "indent") {
                switch a {
                case .none: o.indent = nil
                case .int(let n): o.indent = max(n, 0)
                default: throw fail("tojson indent must be an integer")
                }
            }
            if o.indent != nil { o.itemSeparator = "," }
            if let a = arg(2, "separators"), let seps = try? iterate(a), seps.count == 2 {
                o.itemSeparator = pyStr(seps[0])
                o.keySeparator = pyStr(seps[1])
            }
            if let a = arg(3, "sort_keys") { o.sortKeys = truthy(a) }
            var out = ""
            try jsonDumps(v, o, into: &out)
            return .string(out)
        case "int":
            let def = arg(0, "default") ?? .int(0)
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : def
            case .string(let s):
                let t = pyStrip(s, nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return def
            default: return def
            }
        case "float":
            let def = arg(0, "default") ?? .double(0)
            switch v {
            case .double: return v
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .string(let s): return Double(pyStrip(s, nil, left: true, right: true)).map { .double($0) } ?? def
            default: return def
            }
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw fail("bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            let precision = try intArg(arg(0, "precision"), 0)
            let method = arg(1, "method").map(pyStr) ?? "common"
            guard let (x, _, _, _) = numericPair(v, .int(0)) else { throw fail("round expects a number") }
            let p = Foundation.pow(10.0, Double(precision))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : (method == "floor" ? .down : .toNearestOrEven)
            return .double((x * p).rounded(rule) / p)
        case "sum":
            var acc = arg(1, "start") ?? .int(0)
            for x in try iterate(v) {
                let item = try arg(0, "attribute").map { (a) throws(ChatTemplateError) in try attrPath(x, pyStr(a)) } ?? x
                acc = try binaryOp("+", acc, item)
            }
            return acc
        case "min", "max":
            var items = try iterate(v)
            let caseSensitive = truthy(arg(0, "case_sensitive") ?? .bool(false))
            let attribute = arg(1, "attribute")
            try sortValues(&items, reverse: false) { (x) throws(ChatTemplateError) -> Value in
                let y = try attribute.map { (a) throws(ChatTemplateError) in try attrPath(x, pyStr(a)) } ?? x
                if !caseSensitive, case .string(let s) = y { return .string(s.lowercased()) }
                return y
            }
            return (name == "min" ? items.first : items.last) ?? .undefined("\(name) of an empty sequence")
        case "sort":
            var items = try iterate(v)
            let reverse = truthy(arg(0, "reverse") ?? .bool(false))
            let caseSensitive = truthy(arg(1, "case_sensitive") ?? .bool(false))
            let attribute = arg(2, "attribute")
            try sortValues(&items, reverse: reverse) { (x) throws(ChatTemplateError) -> Value in
                let y = try attribute.map { (a) throws(ChatTemplateError) in try attrPath(x, pyStr(a)) } ?? x
                if !caseSensitive, case .string(let s) = y { return .string(s.lowercased()) }
                return y
            }
            return .list(items)
        case "unique":
            var seen: [Value] = []
            let caseSensitive = truthy(arg(0, "case_sensitive") ?? .bool(false))
            var keys: [Value] = []
            for x in try iterate(v) {
                var key = try arg(1, "attribute").map { (a) throws(ChatTemplateError) in try attrPath(x, pyStr(a)) } ?? x
                if !caseSensitive, case .string(let s) = key { key = .string(s.lowercased()) }
                if !keys.contains(where: { pyEq($0, key) }) {
                    keys.append(key)
                    seen.append(x)
                }
            }
            return .list(seen)
        case "batch":
            let size = try intArg(arg(0, "linecount"), 1)
            guard size > 0 else { throw fail("batch size must be positive") }
            let fill = arg(1, "fill_with")
            var out: [Value] = []
            var cur: [Value] = []
            for x in try iterate(v) {
                cur.append(x)
                if cur.count == size { out.append(.list(cur)); cur = [] }
            }
            if !cur.isEmpty {
                if let fill, case .none = fill {} else if let fill { while cur.count < size { cur.append(fill) } }
                out.append(.list(cur))
            }
            return .list(out)
        case "indent":
            let width: String
            switch arg(0, "width") {
            case .string(let s)?: width = s
            case let w?: width = String(repeating: " ", count: max(try intArg(w, 4), 0))
            case nil: width = "    "
            }
            let first = truthy(arg(1, "first") ?? .bool(false))
            let blank = truthy(arg(2, "blank") ?? .bool(false))
            let lines = pyStr(v).components(separatedBy: "\n")
            var out: [String] = []
            for (k, line) in lines.enumerated() {
                if k == 0 && !first { out.append(line); continue }
                if !blank && pyStrip(line, nil, left: true, right: true).isEmpty { out.append(line); continue }
                out.append(width + line)
            }
            return .string(out.joined(separator: "\n"))
        case "attr":
            guard let a = arg(0, "name") else { throw fail("attr needs a name") }
            return try getAttr(v, pyStr(a))
        case "map":
            let items = try iterate(v)
            if let a = kwargs.last(where: { $0.0 == "attribute" })?.1 {
                let def = kwargs.last(where: { $0.0 == "default" })?.1
                var out: [Value] = []
                for x in items {
                    let y = try attrPath(x, pyStr(a))
                    out.append(y.isUndefined ? (def ?? y) : y)
                }
                return .list(out)
            }
            guard let f = args.first, case .string(let fname) = f else { throw fail("map needs a filter name or attribute=") }
            guard Builtins.filters.contains(fname) else { throw fail("map: unsupported filter '\(fname)'") }
            var out: [Value] = []
            for x in items { out.append(try applyFilter(fname, x, Array(args.dropFirst()), kwargs)) }
            return .list(out)
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = args
            var attribute: String? = nil
            if byAttr {
                guard !rest.isEmpty else { throw fail("\(name) needs an attribute name") }
                attribute = pyStr(rest.removeFirst())
            }
            var testName: String? = nil
            if !rest.isEmpty { testName = pyStr(rest.removeFirst()) }
            if let t = testName, !Builtins.tests.contains(t) { throw fail("\(name): unsupported test '\(t)'") }
            var out: [Value] = []
            for x in try iterate(v) {
                let subject = try attribute.map { (a) throws(ChatTemplateError) in try attrPath(x, a) } ?? x
                let r = try testName.map { (t) throws(ChatTemplateError) in try applyTest(t, subject, rest) } ?? truthy(subject)
                if r == keep { out.append(x) }
            }
            return .list(out)
        default:
            throw fail("unsupported filter '\(name)'")
        }
    }

    func sortValues(_ items: inout [Value], reverse: Bool, key: (Value) throws(ChatTemplateError) -> Value) throws(ChatTemplateError) {
        var keyed: [(Value, Value)] = []
        for x in items { keyed.append((try key(x), x)) }
        // Stable insertion sort with Python ordering (errors propagate).
        var k = 1
        while k < keyed.count {
            var j = k
            while j > 0 {
                let c = try pyCompare(keyed[j - 1].0, keyed[j].0, "<")
                if reverse ? c < 0 : c > 0 { keyed.swapAt(j - 1, j); j -= 1 } else { break }
            }
            k += 1
        }
        items = keyed.map(\.1)
    }

    // MARK: Tests

    func applyTest(_ name: String, _ v: Value, _ args: [Value]) throws(ChatTemplateError) -> Bool {
        func other() throws(ChatTemplateError) -> Value {
            guard let a = args.first else { throw fail("test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "number": return isNumber(v)
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "callable": if case .function = v { return true }; return false
        case "sameas": return pyEq(v, try other())
        case "eq", "equalto", "==": return pyEq(v, try other())
        case "ne", "!=": return !pyEq(v, try other())
        case "lt", "<": return try pyCompare(v, try other(), "<") < 0
        case "le", "<=": return try pyCompare(v, try other(), "<=") <= 0
        case "gt", ">": return try pyCompare(v, try other(), ">") > 0
        case "ge", ">=": return try pyCompare(v, try other(), ">=") >= 0
        case "in": return try contains(try other(), v)
        case "odd", "even", "divisibleby":
            guard let i = intIndex(v) else { throw fail("test '\(name)' needs an integer") }
            if name == "odd" { return ((i % 2) + 2) % 2 == 1 }
            if name == "even" { return i % 2 == 0 }
            guard let d = intIndex(try other()), d != 0 else { throw fail("divisibleby needs a non-zero integer") }
            return i % d == 0
        case "lower": return pyStr(v).lowercased() == pyStr(v)
        case "upper": return pyStr(v).uppercased() == pyStr(v)
        default: throw fail("unsupported test '\(name)'")
        }
    }
}

// MARK: - strftime

func strftime(_ fmt: String, _ date: Date) throws(ChatTemplateError) -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = TimeZone.current
    let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    let y = c.year ?? 1970, mo = c.month ?? 1, d = c.day ?? 1, h = c.hour ?? 0, mi = c.minute ?? 0, s = c.second ?? 0
    let wd = (c.weekday ?? 1) - 1
    let yday = cal.ordinality(of: .day, in: .year, for: date) ?? 1
    func p2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    var out = ""
    var it = fmt.unicodeScalars.makeIterator()
    while let ch = it.next() {
        guard ch == "%" else { out.unicodeScalars.append(ch); continue }
        guard var f = it.next() else { out += "%"; break }
        var noPad = false
        if f == "-" {
            noPad = true
            guard let g = it.next() else { break }
            f = g
        }
        func num(_ v: Int, _ width: Int = 2) -> String {
            if noPad { return String(v) }
            let t = String(v)
            return String(repeating: "0", count: max(0, width - t.count)) + t
        }
        switch f {
        case "Y": out += String(y)
        case "y": out += p2(y % 100)
        case "m": out += num(mo)
        case "d": out += num(d)
        case "e": out += d < 10 ? " \(d)" : "\(d)"
        case "H": out += num(h)
        case "I": out += num(h % 12 == 0 ? 12 : h % 12)
        case "M": out += num(mi)
        case "S": out += num(s)
        case "p": out += h < 12 ? "AM" : "PM"
        case "j": out += num(yday, 3)
        case "b", "h": out += String(months[mo - 1].prefix(3))
        case "B": out += months[mo - 1]
        case "a": out += String(days[wd].prefix(3))
        case "A": out += days[wd]
        case "w": out += String(wd)
        case "%": out += "%"
        default: throw fail("strftime_now: unsupported directive %\(f)")
        }
    }
    return out
}
