import Foundation
import Grammar
import JSON
import Testing

/// The compilers against an outside oracle: scripts/make-grammar-fixtures.py labels instances with
/// Python's `jsonschema` (Draft 2020-12) and regex texts with `re.fullmatch`; documents generated
/// by random walks over the grammars go back to Python (scripts/check-json-instances.py).
struct SchemaFixtureTests {
    struct Case {
        var name: String
        var schema: OrderedJSON
        var instances: [(json: String, valid: Bool)]
    }

    struct RegexCase {
        var pattern: String
        var texts: [(text: String, match: Bool)]
    }

    static func fixtures() throws -> (schemas: [Case], regexes: [RegexCase]) {
        guard let url = Bundle.module.url(forResource: "schema-cases", withExtension: "json", subdirectory: "Fixtures") else {
            throw FixtureError("Fixtures/schema-cases.json is missing from the test bundle")
        }
        let doc = try OrderedJSON.parse(Array(try Data(contentsOf: url)))
        var schemas: [Case] = []
        for s in doc["schemas"]?.array ?? [] {
            guard let name = s["name"]?.string, let schema = s["schema"], let insts = s["instances"]?.array else {
                throw FixtureError("malformed schema case \(s)")
            }
            schemas.append(Case(name: name, schema: schema, instances: insts.compactMap { i in
                guard let j = i["json"]?.string, let v = i["valid"]?.bool else { return nil }
                return (j, v)
            }))
        }
        var regexes: [RegexCase] = []
        for r in doc["regexes"]?.array ?? [] {
            guard let p = r["pattern"]?.string, let texts = r["texts"]?.array else { throw FixtureError("malformed regex case \(r)") }
            regexes.append(RegexCase(pattern: p, texts: texts.compactMap { t in
                guard let s = t["text"]?.string, let m = t["match"]?.bool else { return nil }
                return (s, m)
            }))
        }
        return (schemas, regexes)
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func matches(_ g: Grammar, _ text: String) -> Bool {
        var m = GrammarMatcher(g)
        return m.advance(Array(text.utf8)) && m.isAccepting
    }

    static var flexible: JSONSchemaOptions {
        var o = JSONSchemaOptions()
        o.whitespace = .flexible
        return o
    }

    /// Every instance jsonschema calls valid is accepted (compact and flexible layouts), every
    /// invalid one refused.
    @Test func labelledInstances() throws {
        let (schemas, _) = try Self.fixtures()
        #expect(schemas.count >= 35)
        for c in schemas {
            let compact = try JSONSchemaGrammar.grammar(c.schema)
            let flexible = try JSONSchemaGrammar.grammar(c.schema, options: Self.flexible)
            for inst in c.instances {
                #expect(Self.matches(compact, inst.json) == inst.valid, "\(c.name) (compact): \(inst.json) is \(inst.valid ? "valid" : "invalid") per jsonschema")
                #expect(Self.matches(flexible, inst.json) == inst.valid, "\(c.name) (flexible): \(inst.json) is \(inst.valid ? "valid" : "invalid") per jsonschema")
            }
        }
    }

    @Test func labelledRegexTexts() throws {
        let (_, regexes) = try Self.fixtures()
        for r in regexes {
            let g = try RegexGrammar.grammar(r.pattern)
            for t in r.texts {
                #expect(Self.matches(g, t.text) == t.match, "/\(r.pattern)/ on \(t.text.debugDescription): re.fullmatch says \(t.match)")
            }
        }
    }

    /// SplitMix64: a seeded generator, so a failing walk can be replayed.
    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// A random document of `g`: bytes drawn from `allowedBytes`; past `soft` bytes it prefers
    /// closing bytes (`}` `]` `"`), avoids opening ones and stops as soon as the input is
    /// complete; past `hard` bytes it takes the shortest way to a complete input (`finish`).
    /// nil when there is none within reach.
    static func walk(_ base: GrammarMatcher, _ rng: inout SplitMix, soft: Int = 24, hard: Int = 96) -> [UInt8]? {
        var m = base
        var out: [UInt8] = []
        let closers = ByteSet(bytes: Array("}]\"".utf8))
        let openers = ByteSet(bytes: Array("{[,\\".utf8))
        while out.count < hard {
            let allowed = m.allowedBytes
            if allowed.isEmpty { break }
            if m.isAccepting && (out.count > soft || rng.below(6) == 0) { break }
            var pool = allowed
            if out.count > soft {
                let close = allowed.subtracting(allowed.subtracting(closers))
                let calm = allowed.subtracting(openers)
                if !close.isEmpty && rng.below(10) < 9 { pool = close } else if !calm.isEmpty { pool = calm }
            }
            let members = pool.members
            let b = members[rng.below(members.count)]
            guard m.advance(b) else { return nil }
            out.append(b)
        }
        if !m.isAccepting {
            guard let tail = finish(m), m.advance(tail) else { return nil }
            out += tail
        }
        return m.isAccepting ? out : nil
    }

    /// The shortest bytes that take `m` to a complete input (breadth-first over matcher states).
    static func finish(_ m: GrammarMatcher, limit: Int = 300) -> [UInt8]? {
        var frontier: [(GrammarMatcher, [UInt8])] = [(m, [])]
        var seen: Set<Int32> = [m.state]
        while !frontier.isEmpty {
            var next: [(GrammarMatcher, [UInt8])] = []
            for (s, path) in frontier {
                if s.isAccepting { return path }
                if path.count >= limit { continue }
                for b in s.allowedBytes.members {
                    var t = s
                    t.advance(b)
                    if seen.insert(t.state).inserted { next.append((t, path + [b])) }
                }
            }
            frontier = next
        }
        return nil
    }

    static func hex(_ b: [UInt8]) -> String {
        let d = Array("0123456789abcdef")
        var s = ""
        for x in b { s.append(d[Int(x >> 4)]); s.append(d[Int(x & 15)]) }
        return s
    }

    /// Random documents from every fixture schema (half compact, half flexible) and regex, checked
    /// by jsonschema / re.fullmatch.
    @Test func randomWalksAreValid() throws {
        let (schemas, regexes) = try Self.fixtures()
        var rng = SplitMix(state: 0x5EED_2026)
        let perCase = 30
        var schemaJobs: [OrderedJSON] = []
        var total = 0
        for c in schemas {
            let bases = [GrammarMatcher(try JSONSchemaGrammar.grammar(c.schema)),
                         GrammarMatcher(try JSONSchemaGrammar.grammar(c.schema, options: Self.flexible))]
            var docs: [OrderedJSON] = []
            for i in 0..<perCase {
                if let d = Self.walk(bases[i % 2], &rng) { docs.append(.string(Self.hex(d))) }
            }
            #expect(docs.count >= perCase / 3, "\(c.name): only \(docs.count) of \(perCase) walks finished")
            total += docs.count
            schemaJobs.append(.object([.init(key: "name", value: .string(c.name)), .init(key: "schema", value: c.schema),
                                       .init(key: "documents", value: .array(docs))]))
        }
        var regexJobs: [OrderedJSON] = []
        for r in regexes {
            let base = GrammarMatcher(try RegexGrammar.grammar(r.pattern))
            var texts: [OrderedJSON] = []
            for _ in 0..<perCase { if let d = Self.walk(base, &rng, soft: 12, hard: 48) { texts.append(.string(Self.hex(d))) } }
            total += texts.count
            regexJobs.append(.object([.init(key: "pattern", value: .string(r.pattern)), .init(key: "texts", value: .array(texts))]))
        }
        #expect(total > 1000)
        let job = OrderedJSON.object([.init(key: "schemas", value: .array(schemaJobs)), .init(key: "regexes", value: .array(regexJobs))])
        let failures = try Self.runChecker(job)
        for f in failures {
            Issue.record("\(f["where"]?.string ?? "?"): generated \(f["document"]?.serialized() ?? "?") — \(f["reason"]?.string ?? "?")")
        }
    }

    /// The Python with jsonschema: $AUTOGLM_FIXTURES_PYTHON, else the fixtures venv that
    /// scripts/make-test-fixtures.sh builds.
    static func python() -> String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["AUTOGLM_FIXTURES_PYTHON"], !p.isEmpty { return p }
        let venv = env["AUTOGLM_FIXTURES_VENV"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache/autoglm/fixtures-venv"
        return venv + "/bin/python"
    }

    static let howToGetPython = "create it with scripts/make-test-fixtures.sh (it builds ~/.cache/autoglm/fixtures-venv from scripts/fixture-requirements.txt, jsonschema included), or set AUTOGLM_FIXTURES_PYTHON to a python that has jsonschema"

    static func runChecker(_ job: OrderedJSON) throws -> [OrderedJSON] {
        let python = Self.python()
        if python.contains("/") && !FileManager.default.isExecutableFile(atPath: python) {
            throw FixtureError("no Python at \(python) to check the generated documents: \(howToGetPython)")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/check-json-instances.py")
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("grammar-walks-\(UUID().uuidString).json")
        try Data(job.serialized().utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, script.path, input.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw FixtureError("\(python) \(script.path) exited with \(p.terminationStatus): \(String(decoding: stderr, as: UTF8.self)) — \(howToGetPython)")
        }
        return try OrderedJSON.parse(Array(stdout)).array ?? []
    }
}
