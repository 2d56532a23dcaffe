import Foundation
import Testing
@testable import Deploy

/// The spec loader under hostile input: anchors/aliases are refused without being expanded.
/// Time is only ever bounded generously (a hang guard), never compared with a tight figure.
@Suite struct SpecHardeningTests {
    static func anchorError(_ pos: String, _ token: String, file: String = "t.yaml") -> String {
        "\(file):\(pos): YAML anchors/aliases (&name, *name) are not supported in autoglm.yaml (found '\(token)'); write the value out or use 'environments' overlays"
    }

    /// The classic "billion laughs": `a` holds 9 strings, `b` 9 aliases of `a`, … `i` 9 aliases
    /// of `h`: expanded, 9^9 (387 million) strings from about half a kilobyte of text.
    static func aliasBomb(levels: Int = 9, width: Int = 9) -> String {
        let names = (0..<levels).map { String(UnicodeScalar(UInt8(97 + $0))) }
        var lines = ["apiVersion: autoglm/v1", "name: demo", "model: {ref: gemma3-270m}"]
        lines.append("\(names[0]): &\(names[0]) [" + Array(repeating: "\"lol\"", count: width).joined(separator: ", ") + "]")
        for i in 1..<levels {
            lines.append("\(names[i]): &\(names[i]) [" + Array(repeating: "*\(names[i - 1])", count: width).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func aliasBombIsRefusedWithoutExpansion() {
        let bomb = Self.aliasBomb()
        #expect(bomb.utf8.count < 1_300)
        var found: [String] = []
        var validated: (errors: [Diagnostic], notes: [Diagnostic]) = ([], [])
        let elapsed = ContinuousClock().measure {
            found = errors(bomb)
            validated = SpecLoader.validate(yaml: bomb, file: "t.yaml", variables: [:])
        }
        #expect(found == [Self.anchorError("4:4", "&a")])
        #expect(validated.errors.map(\.description) == [Self.anchorError("4:4", "&a")])
        #expect(validated.notes.isEmpty)
        // Expanding would take minutes and gigabytes; refusing takes milliseconds.
        #expect(elapsed < .seconds(10), "alias bomb took \(elapsed)")
        print("alias bomb (\(bomb.utf8.count) bytes): load + validate in \(elapsed)")
    }

    @Test func aliasesAsKeysAreNotHashedEither() {
        // Yams' duplicate-key check hashes every key of a mapping: with `*i` as a key that
        // would walk all 9^8 expanded copies. The key is refused before that can happen.
        let keyBomb = Self.aliasBomb() + "? *i\n: x\n"
        let bigger = Self.aliasBomb(levels: 12, width: 12) + "? [*l, *l]\n: x\n"
        let elapsed = ContinuousClock().measure {
            #expect(errors(keyBomb) == [Self.anchorError("4:4", "&a")])
            #expect(errors(bigger) == [Self.anchorError("4:4", "&a")])
        }
        #expect(elapsed < .seconds(10), "alias keys took \(elapsed)")
    }

    @Test func everyAnchorOrAliasFormIsRefusedAtItsPosition() {
        // An alias whose anchor does not exist is refused the same way (not "undefined alias").
        #expect(errors(minimal + "replicas: *count\n") == [Self.anchorError("5:11", "*count")])
        #expect(errors(minimal + "replicas: &count 2\n") == [Self.anchorError("5:11", "&count")])
        #expect(errors("apiVersion: autoglm/v1\nname: demo\nmodel: &m {ref: x}\n") == [Self.anchorError("3:8", "&m")])
        #expect(errors(minimal + "server:\n  <<: *defaults\n") == [Self.anchorError("6:7", "*defaults")])
        #expect(errors(minimal + "environments:\n  prod: *base\n") == [Self.anchorError("6:9", "*base")])
        #expect(errors(minimal + "*key : 1\n") == [Self.anchorError("5:1", "*key")])
        #expect(errors(minimal + "rollout: {maxSurge: *s}\n") == [Self.anchorError("5:21", "*s")])
        // Only the first one in the file is reported: one line, not one per use.
        #expect(errors(minimal + "a: &x 1\nb: *x\nc: *x\n") == [Self.anchorError("5:4", "&x")])
    }

    @Test func starsThatAreNotAliasesAreKeptAsWritten() throws {
        let yaml = """
        apiVersion: autoglm/v1   # *not an alias, &not an anchor
        name: demo
        model:
          ref: "models/*.gguf"
        image: registry.example/a*b:latest

        """
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(spec.model.ref == "models/*.gguf")
        #expect(spec.image == "registry.example/a*b:latest")
        let forms: [(String, String)] = [
            ("'*single'", "*single"),
            ("\"*double\"", "*double"),
            (">-\n    *folded\n    *text", "*folded *text"),
            ("|-\n    *literal", "*literal"),
            ("part-one\n    *part-two", "part-one *part-two"),
            ("\"\u{E000}*private\"", "\u{E000}*private"),
            ("\"a*b&c\"", "a*b&c"),
            ("${MODEL:-*default}", "*default"),
        ]
        #expect(YAMLTree.aliasMarker(for: "a: b") == .notNeeded)
        #expect(YAMLTree.aliasMarker(for: "a: \"*\u{E000}\"") == .use("\u{E001}"))
        for (written, expected) in forms {
            let text = "apiVersion: autoglm/v1\nname: demo\nmodel:\n  ref: \(written)\n"
            let loaded = try SpecLoader.load(yaml: text, file: "t.yaml", variables: [:])
            #expect(loaded.spec.model.ref == expected, "ref: \(written)")
        }
    }
}
