import JSON

/// How `JSONSchemaGrammar` lays out the JSON it allows.
public struct JSONSchemaOptions: Sendable {
    public enum Whitespace: Sendable {
        /// No whitespace at all between tokens (`{"a":1}`).
        case compact
        /// JSON's optional whitespace, bounded so a model can never loop on it: between tokens,
        /// nothing, one space, or a newline followed by at most `maxIndent` spaces/tabs.
        case flexible
    }
    public var whitespace: Whitespace = .compact
    /// The indentation a newline may carry under `.flexible`.
    public var maxIndent = 20
    /// How deep arrays/objects nest inside a value the schema leaves unconstrained ("any JSON",
    /// `{}`, `true`, extra properties); deeper values are refused.
    public var maxNesting = 16
    /// Whether an object schema that declares `properties` but says nothing about
    /// `additionalProperties` refuses undeclared properties (OpenAI strict mode's reading).
    /// false (the default) follows JSON Schema: undeclared properties are allowed.
    public var closedObjects = false
    public init() {}
}

/// JSON Schema (draft 2020-12 subset) → `Grammar`: every output the grammar allows is a JSON text
/// valid against the schema. Object properties come out in the schema's declared order (required
/// ones always, optional ones maybe, undeclared ones, where allowed, after them). Strings,
/// numbers and literals (enum/const members) are written as `json.dumps(..., ensure_ascii=False)`
/// writes them, except that plain strings may also use any JSON escape.
///
/// Keywords: `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`, `anyOf`,
/// `oneOf` (only when its branches are provably disjoint: by JSON type, or by a required property
/// with a distinct `const` in each branch; it then compiles as anyOf, otherwise it is refused),
/// `allOf` with one member, `$ref` (JSON pointers into the document: `#`, `#/$defs/…`,
/// `#/definitions/…`; recursion allowed), `items`, `prefixItems`, `minItems`, `maxItems`,
/// `minLength`, `maxLength`, `pattern`, `format` (`date`, `uuid`), `minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum` (integers; numbers with a bound are written without an exponent),
/// `uniqueItems: false`. Annotations (title, description, examples, default, $schema, $id,
/// $comment, deprecated, readOnly, writeOnly, $defs, definitions) are ignored. Anything else throws
/// `GrammarError.unsupported` naming the keyword and where it is: nothing is enforced partially.
///
/// Without `type`, the type is inferred from the keywords present (`properties` → object, …), a
/// subset of what JSON Schema accepts (which would also let any other type through).
///
/// Approximations, all on the safe side (the grammar allows less than the schema, never more):
/// enum/const members are written compactly even under `.flexible`; numbers and integers only in
/// their shortest forms (no `1.0` for an integer, no `-0`); a `pattern` follows ECMA-262/Python
/// with ASCII `\d \w \s`; an undeclared property's key may not use a `\u` escape while it
/// still spells the start of a declared name. Not enforced: two undeclared properties sharing one
/// key. Unbounded numbers and strings stay unbounded: `max_tokens` bounds them.
public enum JSONSchemaGrammar {
    public static func grammar(_ schema: OrderedJSON, options: JSONSchemaOptions = .init()) throws(GrammarError) -> Grammar {
        var b = GrammarBuilder()
        let s = try add(schema, to: &b, options: options)
        let root = try b.add("root", [s])
        return try b.build(root: root)
    }

    /// Adds the rules for one value valid against `schema` to `b`; returns the symbols matching it
    /// (for embedding in larger grammars, e.g. tool calls). `$ref`s resolve inside `schema`.
    public static func add(_ schema: OrderedJSON, to b: inout GrammarBuilder, options: JSONSchemaOptions) throws(GrammarError) -> [Grammar.Symbol] {
        var c = SchemaCompiler(root: schema, options: options)
        return try c.value(schema, "#", &b)
    }

    /// Any JSON object (`response_format: json_object`).
    public static func anyObject(options: JSONSchemaOptions = .init()) throws(GrammarError) -> Grammar {
        var b = GrammarBuilder()
        var c = SchemaCompiler(root: .null, options: options)
        let obj = try c.anyLevels(&b).object
        let root = try b.add("root", [[.rule(obj)]])
        return try b.build(root: root)
    }

    /// Any JSON value.
    public static func addAnyValue(to b: inout GrammarBuilder, options: JSONSchemaOptions = .init()) throws(GrammarError) -> [Grammar.Symbol] {
        var c = SchemaCompiler(root: .null, options: options)
        return [.rule(try c.anyLevels(&b).value)]
    }
}

/// The JSON types of JSON Schema's `type`.
enum JSONType: String, CaseIterable {
    case null, boolean, object, array, number, integer, string
}

struct SchemaCompiler {
    typealias Symbol = Grammar.Symbol
    let root: OrderedJSON
    let options: JSONSchemaOptions
    /// Rules of the `$ref` targets compiled so far (reserved before compiling, so recursion works).
    var refs: [String: Int] = [:]
    var depth = 0

    static let annotations: Set<String> = [
        "title", "description", "examples", "default", "$schema", "$id", "$comment", "deprecated",
        "readOnly", "writeOnly", "$defs", "definitions",
    ]
    static let objectKeywords: Set<String> = ["properties", "required", "additionalProperties"]
    static let arrayKeywords: Set<String> = ["items", "prefixItems", "minItems", "maxItems", "uniqueItems"]
    static let stringKeywords: Set<String> = ["minLength", "maxLength", "pattern", "format"]
    static let numberKeywords: Set<String> = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
    static let otherKeywords: Set<String> = ["type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"]
    static let supported = objectKeywords.union(arrayKeywords).union(stringKeywords).union(numberKeywords).union(otherKeywords)

    init(root: OrderedJSON, options: JSONSchemaOptions) {
        self.root = root
        self.options = options
    }

    static func lit(_ s: String) -> [Symbol] { GrammarBuilder.literal(s) }

    static func pointer(_ path: String, _ key: String) -> String {
        path + "/" + key.replacingTilde()
    }

    // MARK: - Shared pieces

    var tag: String { "\(options.whitespace == .compact ? "c" : "f\(options.maxIndent)")-\(options.maxNesting)" }

    func ws(_ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        guard options.whitespace == .flexible else { return [] }
        let name = "ws-\(options.maxIndent)"
        if let id = b.rule(named: name) { return [.rule(id)] }
        let indent = try b.repeat([.bytes(ByteSet(bytes: [0x20, 0x09]))], min: 0, max: max(0, options.maxIndent))
        return [.rule(try b.add(name, [[], SchemaCompiler.lit(" "), SchemaCompiler.lit("\n") + indent]))]
    }

    /// `ws "," ws`
    func comma(_ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let w = try ws(&b)
        return w + SchemaCompiler.lit(",") + w
    }

    /// `ws ":" ws`
    func colon(_ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let w = try ws(&b)
        return w + SchemaCompiler.lit(":") + w
    }

    /// One character of a JSON string: a UTF-8 encoded code point other than `"`, `\` and the
    /// controls, or one escape (a surrogate pair of `\u` escapes counts as one character).
    static func stringChar(_ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        if let id = b.rule(named: "json-char") { return [.rule(id)] }
        var alts: [[Symbol]] = []
        let raw = CodeSet.all.subtracting(CodeSet(ranges: [0...0x1F, 0x22...0x22, 0x5C...0x5C]))
        for seq in RegexGrammar.utf8Sequences(raw) { alts.append(seq.map { .bytes(ByteSet($0)) }) }
        let bs: Symbol = .bytes(ByteSet(0x5C))
        alts.append([bs, .bytes(ByteSet(bytes: Array("\"\\/bfnrt".utf8)))])
        let hex: Symbol = .bytes(ByteSet(bytes: Array("0123456789abcdefABCDEF".utf8)))
        let u: Symbol = .bytes(ByteSet(UInt8(ascii: "u")))
        let d: Symbol = .bytes(ByteSet(bytes: Array("dD".utf8)))
        // \uXXXX outside the surrogates; a high surrogate escape followed by a low one.
        alts.append([bs, u, .bytes(ByteSet(bytes: Array("0123456789abcABCefEF".utf8))), hex, hex, hex])
        alts.append([bs, u, d, .bytes(ByteSet(bytes: Array("01234567".utf8))), hex, hex])
        alts.append([bs, u, d, .bytes(ByteSet(bytes: Array("89abAB".utf8))), hex, hex,
                     bs, u, d, .bytes(ByteSet(bytes: Array("cdefCDEF".utf8))), hex, hex])
        return [.rule(try b.add("json-char", alts))]
    }

    static func anyString(_ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        if let id = b.rule(named: "json-string") { return [.rule(id)] }
        let c = try stringChar(&b)
        let body = try b.star(c)
        return [.rule(try b.add("json-string", [lit("\"") + body + lit("\"")]))]
    }

    /// A JSON string other than the given ones: a trie of the names in which every step either
    /// follows a name (written as `json.dumps` writes it) or leaves all of them, after which
    /// anything may follow. While the key still follows a name, `\u` escapes are not allowed (so
    /// `"\u0061"` cannot smuggle in a declared `"a"`); short escapes are, where they leave it.
    static func keyExcluding(_ names: [String], _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let free = try b.star(try stringChar(&b)) + lit("\"")
        let specials = CodeSet(ranges: [0...0x1F, 0x22...0x22, 0x5C...0x5C])
        let rawChars = CodeSet.all.subtracting(specials)
        // The trie: node 0 is the root; children by scalar; terminal where a name ends.
        var children: [[(UInt32, Int)]] = [[]]
        var terminal = [false]
        var seen = Set<String>()
        for name in names where seen.insert(name).inserted {
            var node = 0
            for u in name.unicodeScalars {
                if let next = children[node].first(where: { $0.0 == u.value })?.1 { node = next; continue }
                children.append([]); terminal.append(false)
                children[node].append((u.value, children.count - 1))
                node = children.count - 1
            }
            terminal[node] = true
        }
        var ids: [Int] = []
        for _ in 0..<children.count { ids.append(try b.reserve("key-not-declared")) }
        for n in 0..<children.count {
            var alts: [[Symbol]] = []
            var others = rawChars
            for (c, child) in children[n].sorted(by: { $0.0 < $1.0 }) {
                let bytes: [UInt8] = specials.contains(c) ? Array(RegexGrammar.jsonEscape(c).utf8)
                    : Array(String(Character(Unicode.Scalar(c) ?? "?")).utf8)
                alts.append(GrammarBuilder.literal(bytes) + [.rule(ids[child])])
                others = others.subtracting(CodeSet(c))
            }
            for seq in RegexGrammar.utf8Sequences(others) { alts.append(seq.map { .bytes(ByteSet($0)) } + free) }
            // Short escapes of characters no name continues with also leave the trie (`\u`
            // escapes do not: they could spell a name's next character).
            for (e, c) in zip("\"\\/bfnrt".utf8, [0x22, 0x5C, 0x2F, 0x08, 0x0C, 0x0A, 0x0D, 0x09] as [UInt32])
            where !children[n].contains(where: { $0.0 == c }) {
                alts.append(GrammarBuilder.literal([0x5C, e]) + free)
            }
            if !terminal[n] { alts.append(lit("\"")) }
            try b.define(ids[n], alts)
        }
        return lit("\"") + [.rule(ids[0])]
    }

    static func digit() -> Symbol { .bytes(ByteSet(UInt8(ascii: "0")...UInt8(ascii: "9"))) }

    /// JSON number syntax; `negative: false` leaves out the minus sign.
    static func number(_ b: inout GrammarBuilder, negative: Bool = true) throws(GrammarError) -> [Symbol] {
        let name = negative ? "json-number" : "json-number-nonneg"
        if let id = b.rule(named: name) { return [.rule(id)] }
        let digits = try b.plus([digit()])
        let int = try b.choice([lit("0"), [.bytes(ByteSet(UInt8(ascii: "1")...UInt8(ascii: "9")))] + (try b.star([digit()]))])
        let frac = try b.optional(lit(".") + digits)
        let exp = try b.optional([.bytes(ByteSet(bytes: Array("eE".utf8)))] + (try b.optional([.bytes(ByteSet(bytes: Array("+-".utf8)))])) + digits)
        let sign = negative ? (try b.optional(lit("-"))) : []
        return [.rule(try b.add(name, [sign + int + frac + exp]))]
    }

    /// Rules for "any JSON value" nested at most `maxNesting` deep; returns level 0's value and
    /// object rules.
    mutating func anyLevels(_ b: inout GrammarBuilder) throws(GrammarError) -> (value: Int, object: Int) {
        let base = "any-\(tag)"
        if let v = b.rule(named: "\(base)-value-0"), let o = b.rule(named: "\(base)-object-0") { return (v, o) }
        let n = max(0, options.maxNesting)
        var values: [Int] = [], objects: [Int] = [], arrays: [Int] = []
        for d in 0...n {
            values.append(try b.reserve("\(base)-value-\(d)"))
            if d < n {
                objects.append(try b.reserve("\(base)-object-\(d)"))
                arrays.append(try b.reserve("\(base)-array-\(d)"))
            }
        }
        let scalars: [[Symbol]] = [SchemaCompiler.lit("null"), SchemaCompiler.lit("true"), SchemaCompiler.lit("false"),
                                   try SchemaCompiler.number(&b), try SchemaCompiler.anyString(&b)]
        let w = try ws(&b), sep = try comma(&b), col = try colon(&b)
        let key = try SchemaCompiler.anyString(&b)
        for d in 0...n {
            if d == n {
                try b.define(values[d], scalars)
                break
            }
            try b.define(values[d], scalars + [[.rule(objects[d])], [.rule(arrays[d])]])
            let inner: Symbol = .rule(values[d + 1])
            let kv = key + col + [inner]
            try b.define(objects[d], [SchemaCompiler.lit("{") + w + SchemaCompiler.lit("}"),
                                      SchemaCompiler.lit("{") + w + kv + (try b.star(sep + kv)) + w + SchemaCompiler.lit("}")])
            try b.define(arrays[d], [SchemaCompiler.lit("[") + w + SchemaCompiler.lit("]"),
                                     SchemaCompiler.lit("[") + w + [inner] + (try b.star(sep + [inner])) + w + SchemaCompiler.lit("]")])
        }
        if n == 0 {
            // No nesting allowed at all: the "object" is only the empty one.
            let o = try b.add("\(base)-object-0", [SchemaCompiler.lit("{") + w + SchemaCompiler.lit("}")])
            return (values[0], o)
        }
        return (values[0], objects[0])
    }

    // MARK: - Schemas

    mutating func value(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 128 else { throw .tooLarge("the schema nests more than 128 levels deep at \(path)") }
        let members: [OrderedJSON.Member]
        switch s {
        case .bool(true): return [.rule(try anyLevels(&b).value)]
        case .bool(false): throw .invalid("the schema at \(path) is false: no value can match it")
        case .object(let ms): members = ms
        default: throw .invalid("the schema at \(path) must be an object or a boolean, found \(s.typeName) \(s.serialized())")
        }
        var keys = Set<String>()
        for m in members {
            if !SchemaCompiler.supported.contains(m.key) && !SchemaCompiler.annotations.contains(m.key) {
                throw .unsupported("JSON Schema keyword '\(m.key)' at \(SchemaCompiler.pointer(path, m.key)) is not supported by constrained decoding; remove it (its constraint could not be guaranteed)")
            }
            if !SchemaCompiler.annotations.contains(m.key) { keys.insert(m.key) }
        }
        func only(_ allowed: Set<String>, _ what: String) throws(GrammarError) {
            let extra = keys.subtracting(allowed)
            if !extra.isEmpty {
                throw .unsupported("'\(what)' at \(path) together with \(extra.sorted().map { "'\($0)'" }.joined(separator: ", ")) is not supported; move those keywords into the \(what == "$ref" ? "referenced schema" : "branches")")
            }
        }
        if let ref = s["$ref"] {
            try only(["$ref"], "$ref")
            return try self.ref(ref, SchemaCompiler.pointer(path, "$ref"), &b)
        }
        for k in ["anyOf", "oneOf", "allOf"] where keys.contains(k) {
            try only([k], k)
            guard let branches = s[k]?.array, !branches.isEmpty else {
                throw .invalid("'\(k)' at \(path) must be a non-empty array of schemas")
            }
            let p = SchemaCompiler.pointer(path, k)
            if k == "allOf" {
                guard branches.count == 1 else {
                    throw .unsupported("'allOf' with \(branches.count) schemas at \(p) is not supported; merge them into one schema")
                }
                return try value(branches[0], p + "/0", &b)
            }
            if k == "oneOf" { try checkDisjoint(branches, p) }
            var alts: [[Symbol]] = []
            for (i, br) in branches.enumerated() { alts.append(try value(br, p + "/\(i)", &b)) }
            return try b.choice(alts)
        }
        let types = try self.types(s, keys, path)
        if keys.contains("enum") || keys.contains("const") {
            try only(["enum", "const", "type"], keys.contains("enum") ? "enum" : "const")
            var values: [OrderedJSON]
            if let c = s["const"] { values = [c] } else {
                guard let e = s["enum"]?.array else { throw .invalid("'enum' at \(path) must be an array") }
                values = e
            }
            if let c = s["const"], let e = s["enum"]?.array { values = e.contains(c) ? [c] : [] }
            values = values.filter { v in types.contains { SchemaCompiler.matches(v, $0) } }
            guard !values.isEmpty else { throw .invalid("no value allowed by 'enum'/'const' at \(path) has an allowed type: nothing can match") }
            var seen = Set<String>()
            let alts = values.map { $0.serialized() }.filter { seen.insert($0).inserted }.map { SchemaCompiler.lit($0) }
            return try b.choice(alts)
        }
        var alts: [[Symbol]] = []
        for t in JSONType.allCases where types.contains(t) {
            if t == .integer && types.contains(.number) { continue }  // number covers it
            switch t {
            case .null: alts.append(SchemaCompiler.lit("null"))
            case .boolean: alts += [SchemaCompiler.lit("true"), SchemaCompiler.lit("false")]
            case .string: alts.append(try string(s, path, &b))
            case .integer: alts += try integer(s, path, &b)
            case .number: alts.append(try number(s, path, &b))
            case .object: alts.append(try object(s, path, &b))
            case .array: alts.append(try array(s, path, &b))
            }
        }
        return try b.choice(alts)
    }

    /// The types a schema object allows: its `type`, or the ones its keywords imply, or all.
    func types(_ s: OrderedJSON, _ keys: Set<String>, _ path: String) throws(GrammarError) -> Set<JSONType> {
        if let t = s["type"] {
            let names: [OrderedJSON]
            switch t {
            case .string: names = [t]
            case .array(let a) where !a.isEmpty: names = a
            default:
                throw .invalid("'type' at \(path) must be a type name or a non-empty array of them, found \(t.serialized())")
            }
            var out = Set<JSONType>()
            for n in names {
                guard let str = n.string, let jt = JSONType(rawValue: str) else {
                    throw .invalid("'type' at \(path) has \(n.serialized()); the types are \(JSONType.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                out.insert(jt)
            }
            return out
        }
        var out = Set<JSONType>()
        if !keys.isDisjoint(with: SchemaCompiler.objectKeywords) { out.insert(.object) }
        if !keys.isDisjoint(with: SchemaCompiler.arrayKeywords) { out.insert(.array) }
        if !keys.isDisjoint(with: SchemaCompiler.stringKeywords) { out.insert(.string) }
        if !keys.isDisjoint(with: SchemaCompiler.numberKeywords) { out.insert(.number) }
        return out.isEmpty ? Set(JSONType.allCases) : out
    }

    static func matches(_ v: OrderedJSON, _ t: JSONType) -> Bool {
        switch (v, t) {
        case (.null, .null), (.bool, .boolean), (.string, .string), (.array, .array), (.object, .object): return true
        case (.int, .integer), (.int, .number), (.double, .number): return true
        case (.double(let d), .integer): return d == d.rounded()
        default: return false
        }
    }

    // MARK: $ref

    mutating func ref(_ r: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        guard let target = r.string else { throw .invalid("'$ref' at \(path) must be a string") }
        if let id = refs[target] { return [.rule(id)] }
        let schema = try resolve(target, path)
        let name = target == "#" ? "ref-root" : "ref-" + (target.split(separator: "/").last.map(String.init) ?? "def")
        let id = try b.reserve(name)
        refs[target] = id
        let body = try value(schema, target, &b)
        try b.define(id, [body])
        return [.rule(id)]
    }

    func resolve(_ target: String, _ path: String) throws(GrammarError) -> OrderedJSON {
        guard target == "#" || target.hasPrefix("#/") else {
            throw .unsupported("'$ref' '\(target)' at \(path) is not supported: only references inside the document ('#', '#/$defs/…', '#/definitions/…') are")
        }
        var node = root
        for raw in target.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) where target != "#" {
            let key = String(raw).replacingOccurrences("~1", "/").replacingOccurrences("~0", "~")
            if case .array(let a) = node, let i = Int(key), a.indices.contains(i) {
                node = a[i]
            } else if let next = node[key] {
                node = next
            } else {
                throw .invalid("'$ref' '\(target)' at \(path) points to nothing: '\(key)' is not defined there")
            }
        }
        return node
    }

    // MARK: oneOf

    /// Throws unless the branches are provably disjoint (then oneOf = anyOf).
    func checkDisjoint(_ branches: [OrderedJSON], _ path: String) throws(GrammarError) {
        let resolved = try branches.map { br throws(GrammarError) in try follow(br, path) }
        var typeSets: [Set<JSONType>] = []
        for br in resolved {
            var t = try possibleTypes(br, path, 0)
            if t.contains(.number) { t.insert(.integer) }
            if t.contains(.integer) { t.insert(.number) }
            typeSets.append(t)
        }
        var disjoint = true
        for i in 0..<typeSets.count {
            for j in (i + 1)..<max(i + 1, typeSets.count) where !typeSets[i].isDisjoint(with: typeSets[j]) { disjoint = false }
        }
        if disjoint { return }
        // A discriminator: a property required in every branch with a distinct const in each.
        if resolved.allSatisfy({ typeSetIsObject($0) }), let first = resolved.first?["properties"]?.members {
            for candidate in first.map(\.key) {
                var seen = Set<String>()
                let ok = resolved.allSatisfy { br in
                    guard let req = br["required"]?.array, req.contains(.string(candidate)),
                          let p = br["properties"]?[candidate] else { return false }
                    let c = p["const"] ?? (p["enum"]?.array?.count == 1 ? p["enum"]?.array?.first : nil)
                    guard let c else { return false }
                    return seen.insert(c.serialized()).inserted
                }
                if ok { return }
            }
        }
        throw .unsupported("'oneOf' at \(path): its branches may overlap, and a grammar cannot enforce 'exactly one of'; use 'anyOf' if a value matching several branches is acceptable, or make the branches disjoint (different types, or a required property with a different 'const' in each)")
    }

    func typeSetIsObject(_ s: OrderedJSON) -> Bool {
        if let t = s["type"] { return t == .string("object") }
        return s["properties"] != nil
    }

    /// Follows `$ref`s (a bounded number of hops).
    func follow(_ s: OrderedJSON, _ path: String) throws(GrammarError) -> OrderedJSON {
        var cur = s
        for _ in 0..<32 {
            guard let r = cur["$ref"]?.string else { return cur }
            cur = try resolve(r, path)
        }
        throw .invalid("'$ref' chain at \(path) does not end")
    }

    func possibleTypes(_ s0: OrderedJSON, _ path: String, _ level: Int) throws(GrammarError) -> Set<JSONType> {
        let s = try follow(s0, path)
        guard level < 16, case .object(let ms) = s else { return s == .bool(false) ? [] : Set(JSONType.allCases) }
        if let c = s["const"] { return Set(JSONType.allCases.filter { SchemaCompiler.matches(c, $0) }) }
        if let e = s["enum"]?.array { return Set(JSONType.allCases.filter { t in e.contains { SchemaCompiler.matches($0, t) } }) }
        for k in ["anyOf", "oneOf", "allOf"] {
            if let brs = s[k]?.array {
                var out = Set<JSONType>()
                for br in brs { out.formUnion(try possibleTypes(br, path, level + 1)) }
                return out
            }
        }
        let keys = Set(ms.map(\.key)).subtracting(SchemaCompiler.annotations)
        return try types(s, keys, path)
    }

    // MARK: Strings

    static func nonNegativeInt(_ s: OrderedJSON, _ key: String, _ path: String) throws(GrammarError) -> Int? {
        guard let v = s[key] else { return nil }
        guard let i = v.int, i >= 0 else {
            throw .invalid("'\(key)' at \(path) must be a non-negative integer, found \(v.serialized())")
        }
        return i
    }

    mutating func string(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let minL = try SchemaCompiler.nonNegativeInt(s, "minLength", path)
        let maxL = try SchemaCompiler.nonNegativeInt(s, "maxLength", path)
        let q = SchemaCompiler.lit("\"")
        if let pv = s["pattern"] {
            guard let p = pv.string else { throw .invalid("'pattern' at \(path) must be a string") }
            guard minL == nil, maxL == nil, s["format"] == nil else {
                throw .unsupported("'pattern' at \(path) together with minLength/maxLength/format is not supported; put the length into the pattern (e.g. ^[a-z]{2,8}$)")
            }
            return q + (try RegexGrammar.addJSONStringPattern(p, to: &b, path: SchemaCompiler.pointer(path, "pattern"))) + q
        }
        if let fv = s["format"] {
            guard let f = fv.string else { throw .invalid("'format' at \(path) must be a string") }
            guard minL == nil, maxL == nil else {
                throw .unsupported("'format' at \(path) together with minLength/maxLength is not supported; remove the length bounds")
            }
            return q + (try format(f, SchemaCompiler.pointer(path, "format"), &b)) + q
        }
        if let minL, let maxL, minL > maxL {
            throw .invalid("minLength (\(minL)) is greater than maxLength (\(maxL)) at \(path): no string can match")
        }
        if minL == nil && maxL == nil { return try SchemaCompiler.anyString(&b) }
        let c = try SchemaCompiler.stringChar(&b)
        do {
            return q + (try b.repeat(c, min: minL ?? 0, max: maxL)) + q
        } catch {
            throw .tooLarge("string length bounds at \(path) (minLength \(minL ?? 0), maxLength \(maxL.map(String.init) ?? "none")): \(error)")
        }
    }

    func format(_ f: String, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let d = SchemaCompiler.digit()
        func set(_ s: String) -> Symbol { .bytes(ByteSet(bytes: Array(s.utf8))) }
        func range(_ a: Character, _ z: Character) -> Symbol {
            .bytes(ByteSet((a.asciiValue ?? 0)...(z.asciiValue ?? 0)))
        }
        switch f {
        case "uuid":
            let hex = set("0123456789abcdefABCDEF")
            let dash = SchemaCompiler.lit("-")
            let g = { (n: Int) in [Symbol](repeating: hex, count: n) }
            return g(8) + dash + g(4) + dash + g(4) + dash + g(4) + dash + g(12)
        case "date":
            // YYYY-MM-DD, years 0001-9999, each month's days, 29 February in leap years only.
            let year = try b.choice([[range("1", "9"), d, d, d], [set("0"), range("1", "9"), d, d],
                                     [set("0"), set("0"), range("1", "9"), d], [set("0"), set("0"), set("0"), range("1", "9")]])
            let month = try b.choice([[set("0"), range("1", "9")], [set("1"), range("0", "2")]])
            let day28 = try b.choice([[set("0"), range("1", "9")], [set("1"), d], [set("2"), range("0", "8")]])
            let month30 = try b.choice([[set("0"), set("13456789")], [set("1"), range("0", "2")]])
            let month31 = try b.choice([[set("0"), set("13578")], [set("1"), set("02")]])
            // Two digits divisible by 4 other than 00.
            let by4 = try b.choice([[set("02468"), set("48")], [set("13579"), set("26")], [set("2468"), set("0")]])
            let leap = try b.choice([[d, d] + by4, by4 + SchemaCompiler.lit("00")])
            let dash = SchemaCompiler.lit("-")
            return try b.choice([year + dash + month + dash + day28,
                                 year + dash + month30 + dash + (try b.choice([SchemaCompiler.lit("29"), SchemaCompiler.lit("30")])),
                                 year + dash + month31 + SchemaCompiler.lit("-31"),
                                 leap + SchemaCompiler.lit("-02-29")])
        default:
            throw .unsupported("'format': '\(f)' at \(path) is not supported (supported: date, uuid); remove it or use a 'pattern'")
        }
    }

    // MARK: Numbers

    /// A bound as an integer: `ceil` for lower bounds, `floor` for upper ones.
    static func bound(_ s: OrderedJSON, _ key: String, _ path: String, lower: Bool) throws(GrammarError) -> Int? {
        guard let v = s[key] else { return nil }
        let limit = 9.0e18
        switch v {
        case .int(let i):
            if key.hasPrefix("exclusive") {
                if lower { guard i < Int.max else { throw .invalid("'\(key)' at \(path) leaves no integer") }; return i + 1 }
                guard i > Int.min else { throw .invalid("'\(key)' at \(path) leaves no integer") }
                return i - 1
            }
            return i
        case .double(let d) where d.isFinite && abs(d) < limit:
            let r = lower ? d.rounded(.up) : d.rounded(.down)
            if key.hasPrefix("exclusive") && r == d { return Int(r) + (lower ? 1 : -1) }
            return Int(r)
        case .bool:
            throw .unsupported("boolean '\(key)' at \(path) is draft-04 syntax; write the bound itself (\"\(key)\": 5)")
        default:
            throw .unsupported("'\(key)' at \(path) must be a number within ±9e18, found \(v.serialized())")
        }
    }

    mutating func integer(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [[Symbol]] {
        var lo: Int?, hi: Int?
        for k in ["minimum", "exclusiveMinimum"] { if let v = try SchemaCompiler.bound(s, k, path, lower: true) { lo = max(lo ?? v, v) } }
        for k in ["maximum", "exclusiveMaximum"] { if let v = try SchemaCompiler.bound(s, k, path, lower: false) { hi = min(hi ?? v, v) } }
        if let lo, let hi, lo > hi { throw .invalid("the bounds at \(path) leave no integer (lowest \(lo), highest \(hi))") }
        var alts: [[Symbol]] = []
        // Non-negative part: [max(lo, 0), hi].
        if hi.map({ $0 >= 0 }) ?? true {
            let a = UInt64(max(lo ?? 0, 0))
            alts += try SchemaCompiler.digitRange(SchemaCompiler.digits(a), hi.map { SchemaCompiler.digits(UInt64($0)) }, &b)
        }
        // Negative part: "-" and a magnitude in [max(1, -hi), -lo].
        if lo.map({ $0 < 0 }) ?? true {
            let a: UInt64 = hi.map { $0 < 0 ? UInt64($0.magnitude) : 1 } ?? 1
            let z: UInt64? = lo.map { UInt64($0.magnitude) }
            for alt in try SchemaCompiler.digitRange(SchemaCompiler.digits(a), z.map(SchemaCompiler.digits), &b) {
                alts.append(SchemaCompiler.lit("-") + alt)
            }
        }
        return alts
    }

    static func digits(_ v: UInt64) -> [UInt8] { Array(String(v).utf8).map { $0 - 48 } }

    /// Decimal numerals (no leading zeros) of the integers in [a, z] (`z` nil: unbounded).
    static func digitRange(_ a: [UInt8], _ z: [UInt8]?, _ b: inout GrammarBuilder) throws(GrammarError) -> [[Symbol]] {
        var alts: [[Symbol]] = []
        let top = z?.count ?? a.count
        for len in a.count...max(a.count, top) {
            let low = len == a.count ? a : [1] + [UInt8](repeating: 0, count: len - 1)
            let high = z.flatMap { $0.count == len ? $0 : nil } ?? [UInt8](repeating: 9, count: len)
            if let z, len == z.count, low.lexicographicallyPrecedes(z) == false, low != z { continue }
            alts += try sameLength(low, high, &b)
        }
        if z == nil {
            // Longer than `a`: any numeral with more digits.
            alts.append([.bytes(ByteSet(UInt8(ascii: "1")...UInt8(ascii: "9")))] + [Symbol](repeating: digit(), count: a.count) + (try b.star([digit()])))
        }
        return alts
    }

    /// Digit strings of one length between x and y (x ≤ y).
    static func sameLength(_ x: [UInt8], _ y: [UInt8], _ b: inout GrammarBuilder) throws(GrammarError) -> [[Symbol]] {
        guard let x0 = x.first, let y0 = y.first else { return [[]] }
        func d(_ lo: UInt8, _ hi: UInt8) -> Symbol { .bytes(ByteSet((lo + 48)...(hi + 48))) }
        let xt = Array(x.dropFirst()), yt = Array(y.dropFirst())
        if x0 == y0 {
            return [[d(x0, x0)] + (try b.choice(try sameLength(xt, yt, &b)))]
        }
        let any = [Symbol](repeating: d(0, 9), count: xt.count)
        let xZeros = xt.allSatisfy { $0 == 0 }, yNines = yt.allSatisfy { $0 == 9 }
        var alts: [[Symbol]] = []
        if !xZeros { alts.append([d(x0, x0)] + (try b.choice(try sameLength(xt, [UInt8](repeating: 9, count: xt.count), &b)))) }
        let lo = xZeros ? x0 : x0 + 1, hi = yNines ? y0 : y0 - 1
        if lo <= hi { alts.append([d(lo, hi)] + any) }
        if !yNines { alts.append([d(y0, y0)] + (try b.choice(try sameLength([UInt8](repeating: 0, count: yt.count), yt, &b)))) }
        return alts
    }

    mutating func number(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let bounds = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"].filter { s[$0] != nil }
        if bounds.isEmpty { return try SchemaCompiler.number(&b) }
        // Bounded numbers are written in plain decimal notation (no exponent): the bound is then
        // a comparison of digit strings, built exactly (see `DecimalRange`).
        var lo: DecimalBound?, hi: DecimalBound?
        for k in bounds {
            let strict = k.hasPrefix("exclusive")
            guard let v = s[k], let d = Decimal10(v) else {
                throw .unsupported("'\(k)' at \(path) must be a finite number, found \(s[k]?.serialized() ?? "")")
            }
            let bound = DecimalBound(value: d, strict: strict)
            if k.hasSuffix("inimum") { lo = lo.map { $0.tighterLower(bound) } ?? bound } else { hi = hi.map { $0.tighterUpper(bound) } ?? bound }
        }
        var range = DecimalRange(builder: b)
        let alts = try range.numbers(lo: lo, hi: hi)
        b = range.builder
        guard !alts.isEmpty else { throw .invalid("the bounds at \(path) leave no number") }
        return try b.choice(alts)
    }

    // MARK: Objects

    mutating func object(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        var props: [(name: String, schema: OrderedJSON, required: Bool)] = []
        let pp = SchemaCompiler.pointer(path, "properties")
        if let p = s["properties"] {
            guard let ms = p.members else { throw .invalid("'properties' at \(path) must be an object") }
            var seen = Set<String>()
            for m in ms.reversed() where seen.insert(m.key).inserted { props.insert((m.key, m.value, false), at: 0) }
        }
        var required: [String] = []
        if let r = s["required"] {
            guard let a = r.array else { throw .invalid("'required' at \(path) must be an array of property names") }
            for v in a {
                guard let name = v.string else { throw .invalid("'required' at \(path) must hold strings, found \(v.serialized())") }
                if !required.contains(name) { required.append(name) }
            }
        }
        // Undeclared properties: nil = none allowed.
        let extra: OrderedJSON?
        switch s["additionalProperties"] {
        case .none: extra = options.closedObjects && s["properties"] != nil ? nil : .bool(true)
        case .some(.bool(false)): extra = nil
        case .some(let v): extra = v
        }
        for name in required {
            if let i = props.firstIndex(where: { $0.name == name }) { props[i].required = true; continue }
            guard let extra else {
                throw .invalid("property '\(name)' is required at \(path) but not declared in 'properties', and undeclared properties are not allowed: no object can match; declare it")
            }
            props.append((name, extra, true))
        }
        // A property whose schema is false can only be absent.
        for p in props where p.schema == .bool(false) && p.required {
            throw .invalid("property '\(p.name)' is required at \(path) but its schema is false: no object can match")
        }
        props.removeAll { $0.schema == .bool(false) }

        let w = try ws(&b), sep = try comma(&b), col = try colon(&b)
        var kvs: [[Symbol]] = []
        for p in props {
            let v = try value(p.schema, SchemaCompiler.pointer(pp, p.name), &b)
            kvs.append(SchemaCompiler.lit(OrderedJSON.quoted(p.name)) + col + v)
        }
        // Undeclared key/value pairs after the declared ones, under keys other than the declared
        // names. (Two undeclared pairs may still share a key: that is not enforced.)
        var tailFirst: [Symbol] = [], tailMore: [Symbol] = []
        if let extra {
            let v: [Symbol]
            if extra == .bool(true) { v = [.rule(try anyLevels(&b).value)] } else {
                v = try value(extra, SchemaCompiler.pointer(path, "additionalProperties"), &b)
            }
            let key = props.isEmpty ? try SchemaCompiler.anyString(&b) : try SchemaCompiler.keyExcluding(props.map(\.name), &b)
            var kv = key + col + v
            kv = [.rule(try b.sharedRule("extra-member", [kv]))]
            tailMore = try b.star(sep + kv)
            tailFirst = try b.optional(kv + tailMore)
        }
        // rest(i, first): the members from the i-th declared one on; `first`: nothing written yet
        // (so no comma before the next member).
        var restFirst = tailFirst, restMore = tailMore
        for i in stride(from: props.count - 1, through: 0, by: -1) {
            let kv = kvs[i]
            var f: [Symbol], m: [Symbol]
            if props[i].required {
                f = kv + restMore
                m = sep + kv + restMore
            } else {
                f = try b.choice([kv + restMore, restFirst])
                m = try b.choice([sep + kv + restMore, restMore])
            }
            if f.count > 8 { f = [.rule(try b.sharedRule("members", [f]))] }
            if m.count > 8 { m = [.rule(try b.sharedRule("members", [m]))] }
            restFirst = f
            restMore = m
        }
        return SchemaCompiler.lit("{") + w + restFirst + w + SchemaCompiler.lit("}")
    }

    // MARK: Arrays

    mutating func array(_ s: OrderedJSON, _ path: String, _ b: inout GrammarBuilder) throws(GrammarError) -> [Symbol] {
        let minI = try SchemaCompiler.nonNegativeInt(s, "minItems", path) ?? 0
        let maxI = try SchemaCompiler.nonNegativeInt(s, "maxItems", path)
        if let maxI, minI > maxI {
            throw .invalid("minItems (\(minI)) is greater than maxItems (\(maxI)) at \(path): no array can match")
        }
        if let u = s["uniqueItems"], u != .bool(false) {
            throw .unsupported("'uniqueItems' at \(path) is not supported by constrained decoding; remove it")
        }
        var prefix: [OrderedJSON] = []
        if let p = s["prefixItems"] {
            guard let a = p.array else { throw .invalid("'prefixItems' at \(path) must be an array of schemas") }
            prefix = a
        }
        let items = s["items"] ?? .bool(true)
        if case .array = items {
            throw .unsupported("'items' as an array (draft 2019 tuple form) at \(path) is not supported; use 'prefixItems'")
        }
        let w = try ws(&b), sep = try comma(&b)
        // Items past the prefix: how many at least/at most.
        let k = prefix.count
        var restMax = maxI.map { max(0, $0 - k) }
        if items == .bool(false) { restMax = 0 }
        let restMin = max(0, minI - k)
        if let restMax, restMin > restMax {
            throw .invalid("minItems (\(minI)) at \(path) needs more items than prefixItems/items allow: no array can match")
        }
        var rest: [Symbol] = []
        var restFirst: [Symbol] = []   // when the prefix is empty: no comma before the first item
        if restMax != 0 {
            var item = try value(items, SchemaCompiler.pointer(path, "items"), &b)
            if item.count > 1 { item = [.rule(try b.sharedRule("item", [item]))] }
            do {
                rest = try b.repeat(sep + item, min: restMin, max: restMax)
                let more = try b.repeat(sep + item, min: max(0, restMin - 1), max: restMax.map { $0 - 1 })
                restFirst = restMin > 0 ? item + more : (try b.optional(item + more))
            } catch {
                throw .tooLarge("array bounds at \(path) (minItems \(minI), maxItems \(maxI.map(String.init) ?? "none")): \(error)")
            }
        }
        // body(i): items from the i-th prefix item on.
        var body: [Symbol] = k == 0 ? restFirst : rest
        for i in stride(from: k - 1, through: 0, by: -1) {
            if let maxI, i >= maxI { continue }  // never reached
            let v = try value(prefix[i], SchemaCompiler.pointer(SchemaCompiler.pointer(path, "prefixItems"), String(i)), &b)
            let el = (i > 0 ? sep : []) + v
            var next = body
            if let maxI, i + 1 >= maxI { next = [] }
            body = i >= minI ? (try b.optional(el + next)) : el + next
            if body.count > 8 { body = [.rule(try b.sharedRule("items", [body]))] }
        }
        return SchemaCompiler.lit("[") + w + body + w + SchemaCompiler.lit("]")
    }
}

extension String {
    /// JSON pointer escaping of one reference token.
    func replacingTilde() -> String {
        var out = ""
        for c in self {
            switch c {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.append(c)
            }
        }
        return out
    }

    func replacingOccurrences(_ a: String, _ b: String) -> String {
        guard !a.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound]
            out += b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
