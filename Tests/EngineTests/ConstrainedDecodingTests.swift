import Engine
import Foundation
import Grammar
import Models
import Testing
import Tokenizers

/// Constrained decoding through the scheduler on a real vocabulary (Qwen 2.5, 151k tokens),
/// checked against an oracle that knows nothing of grammars: for a choice list, a token is
/// allowed exactly when the text so far plus its piece is a prefix of some choice, and the end
/// token exactly when the text is a choice. The oracle scans the whole vocabulary every step.
@Suite(.serialized) struct ConstrainedDecodingTests {
    static let choices = ["red", "green", "dark blue", "dark purple", "yellowish"]

    static func choiceGrammar(_ choices: [String]) throws -> Grammar {
        var b = GrammarBuilder()
        let alts = choices.map { GrammarBuilder.literal($0) }
        let root = try b.add("root", alts)
        return try b.build(root: root)
    }

    func prompt(_ lm: LoadedModel) -> [Int32] {
        lm.tokenizer.encode("<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n", addBOS: false, parseSpecial: true)
    }

    /// The plain loop with the brute-force mask: greedy over the allowed tokens.
    func reference(_ lm: LoadedModel, _ prompt: [Int32], maxTokens: Int) throws -> [Int32] {
        let tok = lm.tokenizer
        let pieces = (0..<tok.vocabularySize).map { tok.piece(Int32($0)) }
        let eog = tok.endOfGenerationIDs
        let targets = Self.choices.map { Array($0.utf8) }
        let cache = lm.model.makeCache()
        var logits = try lm.model.forward([SequenceInput(cache: cache, tokens: prompt, logits: .last)], pool: lm.pool)[0]
        var text: [UInt8] = []
        var out: [Int32] = []
        while out.count < maxTokens {
            var best: Int32 = -1
            var bv = -Float.infinity
            for id in 0..<pieces.count where logits[id] > bv {
                let ok: Bool
                if eog.contains(Int32(id)) { ok = targets.contains(text) } else {
                    let t = text + pieces[id]
                    ok = !pieces[id].isEmpty && targets.contains { $0.count >= t.count && Array($0.prefix(t.count)) == t }
                }
                if ok { best = Int32(id); bv = logits[id] }
            }
            guard best >= 0 else { break }
            out.append(best)
            if eog.contains(best) { break }
            text += pieces[Int(best)]
            // Complete: the text is a choice and no longer choice continues it.
            if targets.contains(text) && !targets.contains(where: { $0.count > text.count && Array($0.prefix(text.count)) == text }) { break }
            logits = try lm.model.forward([SequenceInput(cache: cache, tokens: [best])], pool: lm.pool)[0]
        }
        return out
    }

    @Test func greedyChoiceEqualsTheBruteForceOracle() async throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let g = try Self.choiceGrammar(Self.choices)
        let p = prompt(lm)
        let expected = try reference(lm, p, maxTokens: 10)
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256))
        s.start()
        defer { s.terminate() }
        let got = await collect(try s.submit(GenerationRequest(promptIDs: p, maxTokens: 10, grammar: g)))
        #expect(got.ids == expected)
        #expect(Self.choices.contains(got.text), "\(got.text)")
        #expect(got.completion?.reason == .stop)
    }

    /// Sampled at temperature 1.5 (where unconstrained text wanders anywhere), every seed's output
    /// is one of the choices; constrained and unconstrained sequences batched together each get
    /// what they get alone.
    @Test func sampledOutputsStayInTheLanguageAndBatchingKeepsEachResult() async throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let g = try Self.choiceGrammar(Self.choices)
        let p = prompt(lm)
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 8, maxBatchedTokens: 128, kvCacheMB: 64, contextLength: 256))
        s.start()
        defer { s.terminate() }
        func request(_ seed: UInt64, constrained: Bool) -> GenerationRequest {
            var sp = SamplingParams()
            sp.temperature = 1.5
            sp.seed = seed
            return GenerationRequest(promptIDs: p, maxTokens: 10, sampling: sp, grammar: constrained ? g : nil)
        }
        var alone: [String] = []
        for seed in 0..<6 as Range<UInt64> {
            alone.append(await collect(try s.submit(request(seed, constrained: seed % 2 == 0))).text)
        }
        let handles = try (0..<6 as Range<UInt64>).map { try s.submit(request($0, constrained: $0 % 2 == 0)) }
        var together: [String] = []
        for h in handles { together.append(await collect(h).text) }
        #expect(together == alone)
        for seed in stride(from: 0, to: 6, by: 2) { #expect(Self.choices.contains(alone[seed]), "seed \(seed): \(alone[seed])") }
        var outputs = Set<String>()
        for seed in 100..<112 as Range<UInt64> {
            let t = await collect(try s.submit(request(seed, constrained: true))).text
            #expect(Self.choices.contains(t), "seed \(seed): \(t)")
            outputs.insert(t)
        }
        // At this temperature the draw is not stuck on one choice.
        #expect(outputs.count >= 2, "\(outputs)")
    }

    /// A grammar whose sentences are longer than max_tokens ends as `length`, never as `stop`.
    @Test func aCutOutputIsLengthNotStop() async throws {
        guard let lm = try TestModels.load(TestModels.qwen25) else { return }
        let g = try Self.choiceGrammar([String(repeating: "abc ", count: 40)])
        let s = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: 2, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256))
        s.start()
        defer { s.terminate() }
        let got = await collect(try s.submit(GenerationRequest(promptIDs: prompt(lm), maxTokens: 5, grammar: g)))
        #expect(got.completion?.reason == .length)
        #expect(got.ids.count == 5)
        #expect(String(repeating: "abc ", count: 40).hasPrefix(got.text), "\(got.text)")
    }
}
