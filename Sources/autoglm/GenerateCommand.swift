import Core
import ArgumentParser
import Engine
import Foundation
import Tokenizers
import GGUF

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt with the native engine (streams to stdout).",
        discussion: "Runs through the same continuous-batching scheduler as `serve` (one sequence).")

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "Prompt text.") var prompt: String
    @Option(name: [.short, .customLong("max-tokens")], help: "Tokens to generate.") var n: Int = 128
    @OptionGroup var sampling: SamplingOptions
    @Flag(name: .customLong("no-bos"), help: "Do not add the BOS token.") var noBOS = false
    @Flag(name: .long, help: "Parse special-token text such as <|im_start|> in the prompt.") var special = false
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-generation tokens.") var ignoreEOS = false
    @Flag(name: .long, help: "Print one JSON object with prompt_ids, generated_ids, text, decode speed and speculative counts.") var json = false
    @Option(name: .customLong("speculative"), help: "Speculative decoding: ngram (prompt-lookup drafts verified in one forward pass; greedy output identical) or off (default; draft is not available yet).") var speculative: String?
    @Option(name: .customLong("speculative-k"), help: "Most draft tokens per step, 1...32 (default: 5).") var speculativeK: Int?

    func validate() throws {
        try FlagRange.check("-n", n, 0...16_777_216)
        _ = try SpeculativeFlags.config(speculative, k: speculativeK, spec: nil)
    }

    func run() async throws {
        let model = try options.modelPath()
        let lm = try LoadedModel(path: model, threads: options.effectiveThreads())
        let ids = lm.tokenizer.encode(prompt, addBOS: !noBOS, parseSpecial: special)
        guard !ids.isEmpty else { throw EngineError.emptyPrompt }
        // One sequence: a KV budget of exactly its prompt and answer (never preempted), plus room
        // for one step's drafts when speculating.
        let spec = try SpeculativeFlags.config(speculative, k: speculativeK, spec: nil)
        let context = lm.model.config.contextLength
        let maxTokens = max(0, min(n, context - ids.count))
        let positions = min(context, ids.count + maxTokens + (spec?.k ?? 0))
        let engine = EngineSession(model: lm, config: SchedulerConfig(
            maxSeqs: 1, kvCacheBlocks: SchedulerConfig().kvBlocks(holding: positions), speculative: spec))
        defer { engine.close() }
        let request = try engine.fittingContext(GenerationRequest(
            promptIDs: ids, maxTokens: n, sampling: sampling.params, ignoreEOS: ignoreEOS))
        var detok = StreamingDetokenizer(tokenizer: lm.tokenizer)
        let eog = lm.tokenizer.endOfGenerationIDs
        let result = try await engine.run(request) { t in
            if !json && !eog.contains(t.id) { writeOut(detok.append(t.id)) }
            return true
        }
        if json {
            let textIDs = result.generatedIDs.filter { ignoreEOS || !eog.contains($0) }
            printJSON([
                "prompt_ids": result.promptIDs.map(Int.init),
                "generated_ids": result.generatedIDs.map(Int.init),
                "text": lm.tokenizer.decode(textIDs),
                "finish_reason": result.finishReason.rawValue,
                "decode_tokens_per_second": result.decodeTokensPerSecond,
                "spec_draft_tokens": result.draftTokens,
                "spec_accepted_tokens": result.acceptedDraftTokens,
            ])
        } else {
            writeOut(detok.flush() + "\n")
            FileHandle.standardError.write(Data(String(
                format: "\n[%d prompt tokens, %.1f tok/s prefill; %d generated, %.1f tok/s decode; %@]\n",
                result.promptIDs.count, result.prefillTokensPerSecond,
                result.generatedIDs.count, result.decodeTokensPerSecond, result.finishReason.rawValue).utf8))
        }
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text as JSON.")

    @Option(name: .long, help: "Path to a GGUF model file.") var model: String
    @Flag(name: .customLong("no-bos"), help: "Do not add the BOS token.") var noBOS = false
    @Flag(name: .long, help: "Parse special-token text such as <|im_start|>.") var special = false
    @Argument(help: "Text to tokenize.") var text: String

    func run() throws {
        let f = try GGUF.GGUFFile(path: model)
        let tok = try Tokenizer.load(from: f)
        printJSON(tok.encode(text, addBOS: !noBOS, parseSpecial: special).map(Int.init))
    }
}
