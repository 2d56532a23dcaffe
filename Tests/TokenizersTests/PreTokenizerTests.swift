import Foundation
import Testing
@testable import Tokenizers

/// Differential test of the hand-written scanners against the regexes they implement
/// (ICU via NSRegularExpression), on random strings over characters where ICU's `\s`
/// agrees with Unicode White_Space.
@Suite("Pre-tokenizer scanners")
struct PreTokenizerTests {
    static let qwen2 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#

    static let alphabet: [String] = [
        "a", "B", "z", "é", "ß", "中", "文", "こ", "ア", "ä", "\u{0301}", "1", "9", "٣", "½", "Ⅻ",
        " ", " ", " ", "\t", "\n", "\r", "\u{00A0}", "\u{3000}", "'", "s", "S", "t", "r", "e", "v", "l", "L", "d", "m",
        ".", ",", "!", "?", "-", "(", ")", "{", "$", "😀", "🍕", "\u{200D}", "\u{200B}", "\u{FEFF}", "_", "\"",
    ]

    /// Splits with the regex; unmatched gaps become their own pieces (as llama.cpp does).
    static func regexSplit(_ pattern: String, _ text: String) throws -> [String] {
        let re = try NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        var out: [String] = []
        var last = 0
        for m in re.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            if m.range.location > last { out.append(ns.substring(with: NSRange(location: last, length: m.range.location - last))) }
            out.append(ns.substring(with: m.range))
            last = m.range.location + m.range.length
        }
        if last < ns.length { out.append(ns.substring(from: last)) }
        return out
    }

    static func scannerSplit(_ kind: PreTokenizerKind, _ text: String) -> [String] {
        var s = text
        return s.withUTF8 { buf in
            PreTokenizer(kind: kind).split(buf).map { String(decoding: UnsafeBufferPointer(rebasing: buf[$0]), as: UTF8.self) }
        }
    }

    func differential(_ kind: PreTokenizerKind, _ pattern: String) throws {
        var rng = SystemRandomNumberGenerator()
        var fixed = [
            "Hello world", "  leading", "trailing  ", "a  \n\n  b", "x \r\n\r\n y", "I'm you'RE they'll 'LL",
            "1234567 89", "   ", "\n", "a\t\tb", "!!! ?? ...\n\n", "'s's", " 'x", "\u{00A0}\u{00A0}x",
        ]
        for _ in 0..<400 {
            let len = Int.random(in: 1...24, using: &rng)
            fixed.append((0..<len).map { _ in Self.alphabet.randomElement(using: &rng) ?? "a" }.joined())
        }
        var failures = 0
        for text in fixed {
            let want = try Self.regexSplit(pattern, text)
            let got = Self.scannerSplit(kind, text)
            // Compare on scalars (String == would apply canonical equivalence).
            if got.map({ Array($0.unicodeScalars) }) != want.map({ Array($0.unicodeScalars) }) {
                failures += 1
                if failures < 6 { Issue.record("\(text.debugDescription): got \(got) want \(want)") }
            }
        }
        #expect(failures == 0)
    }

    @Test func qwen2MatchesRegex() throws { try differential(.llama3Style(maxDigits: 1, ignoreMerges: false), Self.qwen2) }
    @Test func llama3MatchesRegex() throws { try differential(.llama3Style(maxDigits: 3, ignoreMerges: true), Self.llama3) }
    @Test func gpt2MatchesRegex() throws { try differential(.gpt2, Self.gpt2) }
}
