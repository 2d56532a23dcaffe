import ArgumentParser
import Engine
import Foundation
import Models

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed (tokens/s) of the native engine on a model.")

    @OptionGroup var options: ModelOptions
    @Option(name: .customLong("prompt-tokens"), help: "Prompt length in tokens.") var promptTokens: Int = 128
    @Option(name: .customLong("gen-tokens"), help: "Tokens to decode.") var genTokens: Int = 128
    @Option(name: .long, help: "Timed repetitions (the median is reported).") var repeats: Int = 3
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        try FlagRange.check("--prompt-tokens", promptTokens, 1...1_048_576)
        try FlagRange.check("--gen-tokens", genTokens, 2...1_048_576)
        try FlagRange.check("--repeats", repeats, 1...1000)
    }

    func run() throws {
        let model = try options.modelPath()
        let lm = try LoadedModel(path: model, threads: options.effectiveThreads())
        guard promptTokens + genTokens <= lm.model.config.contextLength else {
            throw ValidationError("--prompt-tokens + --gen-tokens (\(promptTokens + genTokens)) exceeds the model context (\(lm.model.config.contextLength))")
        }
        // A deterministic prompt of ordinary text, repeated to the requested length.
        let text = String(repeating: "The quick brown fox jumps over the lazy dog while the committee reviews the annual budget in detail. ", count: promptTokens / 8 + 2)
        var ids = lm.tokenizer.encode(text, addBOS: true, parseSpecial: false)
        ids = Array(ids.prefix(promptTokens))
        // Warm-up: touch every weight page once.
        _ = try lm.generate(promptIDs: Array(ids.prefix(8)), maxTokens: 2, sampling: .greedy, ignoreEOS: true)
        var prefill: [Double] = [], decode: [Double] = []
        for _ in 0..<repeats {
            let r = try lm.generate(promptIDs: ids, maxTokens: genTokens, sampling: .greedy, ignoreEOS: true)
            prefill.append(Double(ids.count) / r.prefillSeconds)
            decode.append(Double(r.generatedIDs.count - 1) / r.decodeSeconds)
        }
        let pf = median(prefill), dc = median(decode)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let rssMB = Double(usage.ru_maxrss) / 1024
        if json {
            printJSON([
                "model": model, "threads": lm.pool.threadCount, "prompt_tokens": ids.count,
                "gen_tokens": genTokens, "repeats": repeats, "prefill_tok_s": pf, "decode_tok_s": dc,
                "prefill_runs": prefill, "decode_runs": decode, "peak_rss_mb": rssMB,
            ])
        } else {
            print(String(format: "model %@  threads %d  prompt %d  gen %d  (median of %d)",
                         model as NSString, lm.pool.threadCount, ids.count, genTokens, repeats))
            print(String(format: "prefill %8.1f tok/s", pf))
            print(String(format: "decode  %8.1f tok/s", dc))
            print(String(format: "peak RSS %.0f MiB", rssMB))
        }
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
