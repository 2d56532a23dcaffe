import Foundation
import GGUF
import Testing
@testable import Tokenizers

@Suite("Tokenizer behaviour")
struct TokenizerTests {
    @Test func gemmaMetadata() throws {
        let tok = try TestModels.tokenizer(TestModels.gemma)
        #expect(tok.vocabularySize == 262144)
        #expect(tok.bosID == 2)
        #expect(tok.eosID == 1)
        #expect(tok.addBOS)
        #expect(tok.endOfGenerationIDs == [1, 106, 212])
        #expect(tok.isControl(106))
        #expect(!tok.isControl(9259))
        #expect(tok.tokenText(106) == "<end_of_turn>")
        #expect(tok.tokenText(-1) == nil)
        #expect(tok.tokenText(Int32(tok.vocabularySize)) == nil)
    }

    @Test func qwenMetadata() throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        #expect(tok.vocabularySize == 151936)
        #expect(tok.bosID == 151643)
        #expect(tok.eosID == 151645)
        #expect(!tok.addBOS)
        #expect(tok.endOfGenerationIDs == [128247, 151643, 151645, 151662, 151663, 151664])
        #expect(tok.isControl(151644))
    }

    @Test func decodeSkipsOutOfRangeIDs() throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        let ids = tok.encode("Hello world")
        #expect(tok.decode([-5] + ids + [Int32.max, 999_999_999]) == "Hello world")
        let g = try TestModels.tokenizer(TestModels.gemma)
        #expect(g.decode([Int32.min, 2, 9259, 1902, 262144]) == "Hello world")
    }

    @Test func renderSpecial() throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", parseSpecial: true)
        #expect(ids.first == 151644)
        #expect(tok.decode(ids) == "user\nhi")
        #expect(tok.decode(ids, renderSpecial: true) == "<|im_start|>user\nhi<|im_end|>")
    }

    func streamed(_ tok: Tokenizer, _ ids: [Int32]) -> (String, [String]) {
        var sd = StreamingDetokenizer(tokenizer: tok)
        var parts: [String] = []
        for id in ids { parts.append(sd.append(id)) }
        parts.append(sd.flush())
        return (parts.joined(), parts)
    }

    @Test func streamingHoldsIncompleteUTF8_BPE() throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        let text = "I love pizza 🍕😀👍 你好，世界！ 👨‍👩‍👧‍👦"
        let ids = tok.encode(text)
        let (joined, parts) = streamed(tok, ids)
        #expect(joined == text)
        #expect(!parts.contains { $0.contains("\u{FFFD}") })
        // " 🍕" is split over several byte-level tokens: the partial ones yield nothing.
        let pizza = tok.encode(" 🍕")
        #expect(pizza.count > 1)
        var sd = StreamingDetokenizer(tokenizer: tok)
        let outs = pizza.map { sd.append($0) }
        // The space is complete after the first token; the emoji only after the last.
        #expect(outs.first == " ")
        #expect(outs.last == "🍕")
        #expect(outs.dropFirst().dropLast().allSatisfy { $0.isEmpty })
        #expect(sd.flush() == "")
    }

    @Test func streamingHoldsIncompleteUTF8_SPMByteTokens() throws {
        let tok = try TestModels.tokenizer(TestModels.gemma)
        // 你 = E4 BD A0, 😀 = F0 9F 98 80 as byte-fallback tokens.
        let bytes: [UInt8] = [0xE4, 0xBD, 0xA0, 0xF0, 0x9F, 0x98, 0x80]
        let ids = try bytes.map { b -> Int32 in
            try #require(tok.tokenID(String(format: "<0x%02X>", b)))
        }
        var sd = StreamingDetokenizer(tokenizer: tok)
        let out = ids.map { sd.append($0) }
        #expect(out == ["", "", "你", "", "", "", "😀"])
        #expect(sd.flush() == "")
        // Whole text through the real vocabulary as well.
        let text = "こんにちは、世界。 🇺🇸 \u{10FFFF} 𝔘𝔫𝔦"
        let (joined, _) = streamed(tok, tok.encode(text, addBOS: true))
        #expect(joined == text)
    }

    @Test func streamingFlushRepairsTruncatedSequence() throws {
        let tok = try TestModels.tokenizer(TestModels.gemma)
        let e4 = try #require(tok.tokenID("<0xE4>"))
        var sd = StreamingDetokenizer(tokenizer: tok)
        #expect(sd.append(9259) == "Hello")
        #expect(sd.append(e4) == "")
        #expect(sd.flush() == "\u{FFFD}")
    }

    @Test func userDefinedTokensMatchWithoutParseSpecial() throws {
        let tok = try TestModels.tokenizer(TestModels.gemma)
        // Gemma: runs of spaces/newlines are user-defined pieces.
        #expect(tok.encode("a\n\n\nb", addBOS: false) == tok.encode("a", addBOS: false) + [109] + tok.encode("b", addBOS: false))
        // Control tokens are plain text without parseSpecial.
        #expect(!tok.encode("<end_of_turn>", addBOS: false).contains(106))
        #expect(tok.encode("<end_of_turn>", addBOS: false, parseSpecial: true) == [106])
    }

    @Test func largeInputIsFast() throws {
        let base = "The quick brown fox, 你好世界! 12345 \t\n  😀 func f(x: Int) -> Int { x * 2 }\r\n"
        let text = String(repeating: base, count: 100_000 / base.count + 1)
        for model in [TestModels.qwen, TestModels.gemma] {
            let tok = try TestModels.tokenizer(model)
            let t0 = Date()
            let ids = tok.encode(text, addBOS: false, parseSpecial: true)
            let dt = Date().timeIntervalSince(t0)
            print("[perf] \(model): \(text.unicodeScalars.count) scalars -> \(ids.count) tokens in \(String(format: "%.3f", dt)) s")
            #expect(tok.decode(ids) == text)
        }
    }

    @Test func loadTime() throws {
        for model in [TestModels.gemma, TestModels.qwen] {
            let f = try GGUFFile(path: try TestModels.path(model))
            let t0 = Date()
            _ = try Tokenizer.load(from: f)
            print("[perf] load \(model): \(String(format: "%.3f", Date().timeIntervalSince(t0))) s")
        }
    }
}

@Suite("Tokenizer errors")
struct TokenizerErrorTests {
    static func base(model: String = "gpt2") -> [String: GGUFValue] {
        let toks = ["a", "b", "ab", "Ġ", "<|endoftext|>"]
        return [
            "tokenizer.ggml.model": .string(model),
            "tokenizer.ggml.pre": .string("qwen2"),
            "tokenizer.ggml.tokens": .array(.string, toks.map { .string($0) }),
            "tokenizer.ggml.token_type": .array(.int32, [1, 1, 1, 1, 3].map { .int32($0) }),
            "tokenizer.ggml.merges": .array(.string, [.string("a b")]),
            "tokenizer.ggml.eos_token_id": .uint32(4),
        ]
    }

    @Test func missingModelKey() {
        var md = Self.base()
        md["tokenizer.ggml.model"] = nil
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.model")) { try Tokenizer.load(metadata: md) }
        #expect(TokenizerError.missingKey("tokenizer.ggml.model").description.contains("tokenizer.ggml.model"))
    }

    @Test func missingTokens() {
        var md = Self.base()
        md["tokenizer.ggml.tokens"] = nil
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.tokens")) { try Tokenizer.load(metadata: md) }
    }

    @Test func missingMerges() {
        var md = Self.base()
        md["tokenizer.ggml.merges"] = nil
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.merges")) { try Tokenizer.load(metadata: md) }
    }

    @Test func unsupportedModel() {
        let md = Self.base(model: "bert")
        #expect(throws: TokenizerError.unsupportedModel("bert")) { try Tokenizer.load(metadata: md) }
        #expect(TokenizerError.unsupportedModel("bert").description.contains("'bert'"))
    }

    @Test func unsupportedPre() {
        var md = Self.base()
        md["tokenizer.ggml.pre"] = .string("mystery-pre")
        #expect(throws: TokenizerError.unsupportedPreTokenizer("mystery-pre")) { try Tokenizer.load(metadata: md) }
    }

    @Test func badTypeArrayLength() {
        var md = Self.base()
        md["tokenizer.ggml.token_type"] = .array(.int32, [.int32(1)])
        #expect(throws: TokenizerError.lengthMismatch(key: "tokenizer.ggml.token_type", expected: 5, actual: 1)) {
            try Tokenizer.load(metadata: md)
        }
    }

    @Test func specialIDOutOfRange() {
        var md = Self.base()
        md["tokenizer.ggml.eos_token_id"] = .uint32(99)
        #expect(throws: TokenizerError.tokenIDOutOfRange(key: "tokenizer.ggml.eos_token_id", id: 99, vocabularySize: 5)) {
            try Tokenizer.load(metadata: md)
        }
    }

    @Test func tinyBPEWorks() throws {
        let tok = try Tokenizer.load(metadata: Self.base())
        #expect(tok.encode("ab") == [2])
        #expect(tok.encode("ba") == [1, 0])
        #expect(tok.encode("ab<|endoftext|>", parseSpecial: true) == [2, 4])
        #expect(tok.endOfGenerationIDs == [4])
        #expect(tok.decode([2, 4, 7, -1]) == "ab")
        // Bytes absent from the alphabet are dropped, never crash.
        #expect(tok.encode("xyz").isEmpty)
    }
}

@Suite("Tokenizer round trips")
struct RoundTripTests {
    static let alphabet: [String] = [
        "a", "Z", "é", "e\u{0301}", "中", "こ", "한", "ش", "1", "٣", " ", "  ", "\t", "\n", "\r\n", "\u{00A0}",
        "'s", "'LL", ".", "!", "<", ">", "/", "<div>", "😀", "👨‍👩‍👧", "🇺🇸", "\u{0}", "\u{FEFF}", "\u{10FFFF}", "\u{FFFD}",
        "<|im_start|>", "<start_of_turn>", "<bos>",
    ]

    @Test(arguments: [TestModels.gemma, TestModels.qwen])
    func randomTextRoundTrips(model: String) throws {
        let tok = try TestModels.tokenizer(model)
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        for _ in 0..<300 {
            let len = Int.random(in: 0...40, using: &rng)
            let text = (0..<len).map { _ in Self.alphabet.randomElement(using: &rng) ?? "a" }.joined()
            let ids = tok.encode(text, addBOS: false, parseSpecial: false)
            #expect(ids.allSatisfy { $0 >= 0 && Int($0) < tok.vocabularySize })
            let back = tok.decode(ids)
            if Array(back.utf8) != Array(text.utf8) {
                failures += 1
                if failures < 5 { Issue.record("\(model): \(text.debugDescription) -> \(back.debugDescription)") }
            }
        }
        #expect(failures == 0)
    }

    @Test func concurrentEncodeIsConsistent() async throws {
        let tok = try TestModels.tokenizer(TestModels.qwen)
        let text = "Concurrency check: 你好 😀 \n\n def f(x): return x"
        let expected = tok.encode(text)
        let results = await withTaskGroup(of: [Int32].self) { group in
            for _ in 0..<8 { group.addTask { tok.encode(text) } }
            var all: [[Int32]] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.allSatisfy { $0 == expected })
    }
}
