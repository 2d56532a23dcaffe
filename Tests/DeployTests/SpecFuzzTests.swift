import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// Seeded fuzzing of the spec YAML surface: the two examples and the fleet fixture mutated line- and byte-wise
/// (deleted, duplicated and swapped lines, indentation changes, hostile scalars spliced into
/// values, random bytes, anchors and aliases). `SpecLoader.validate` must answer every input with
/// a result (diagnostics or a spec): never a crash or a hang, and every diagnostic carries a
/// position inside the file.
@Suite("spec YAML fuzz")
struct SpecFuzzTests {
    static let scalars = ["0", "-1", "1e999", ".inf", "-.inf", ".nan", "NaN", "99999999999999999999", "0x10", "0o7",
                          "~", "null", "yes", "no", "true", "''", "\"\"", "[]", "{}", "[1, [2, [3]]]", "!!binary aGk=",
                          "&a x", "*a", "<<: *a", "${UNSET}", "${", "\"\\u0000\"", "'\u{202E}'", "|", ">-", "- - -",
                          String(repeating: "x", count: 5000), "🙂", "k: v: w", "? complex", "%YAML 1.1", "---", "..."]

    @Test func mutatedExamplesAlwaysGetAnAnswer() throws {
        // The examples, and the fleet keys (gateway, rules, predictive, rollout.analysis).
        let texts = try ["gemma3-cpu.yaml", "glm-4-9b-gpu.yaml"].map {
            try String(contentsOfFile: Fixture.repoRoot + "/examples/" + $0, encoding: .utf8)
        } + [Fixture.text("specs/fleet.yaml")]
        var rng = UInt64(0x59EC)
        func next(_ n: Int) -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int((rng >> 33) % UInt64(max(1, n)))
        }
        var valid = 0, invalid = 0
        for i in 0..<1500 {
            var lines = texts[i % texts.count].components(separatedBy: "\n")
            for _ in 0..<(1 + next(3)) {
                let at = next(lines.count)
                switch next(7) {
                case 0: lines.remove(at: at)
                case 1: lines.insert(lines[at], at: at)
                case 2: lines.swapAt(at, next(lines.count))
                case 3: lines[at] = String(repeating: " ", count: next(6)) + lines[at].trimmingCharacters(in: .whitespaces)
                case 4:
                    if let colon = lines[at].firstIndex(of: ":") {
                        lines[at] = String(lines[at][...colon]) + " " + Self.scalars[next(Self.scalars.count)]
                    }
                case 5:
                    var bytes = Array(lines[at].utf8)
                    if !bytes.isEmpty { bytes[next(bytes.count)] = UInt8(next(128)) }
                    lines[at] = String(decoding: bytes, as: UTF8.self)
                default: lines.insert(Self.scalars[next(Self.scalars.count)], at: at)
                }
                if lines.isEmpty { lines = [""] }
            }
            let text = lines.joined(separator: "\n")
            let r = SpecLoader.validate(yaml: text, file: "fuzz.yaml", environment: next(3) == 0 ? "prod" : nil, variables: [:])
            if r.errors.isEmpty { valid += 1 } else { invalid += 1 }
            let lineCount = lines.count + 1
            for d in r.errors {
                if let pos = d.pos { #expect(pos.line >= 0 && pos.line <= lineCount, "\(d) outside the \(lineCount)-line input") }
                #expect(!d.message.isEmpty)
            }
        }
        print("spec fuzz: \(valid) inputs valid, \(invalid) refused with diagnostics")
        #expect(valid > 0 && invalid > 0)
    }
}
