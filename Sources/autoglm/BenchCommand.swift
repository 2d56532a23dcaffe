import Core
import ArgumentParser
import Engine
import Foundation
import Models

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed (tokens/s) of the native engine on a model.",
        discussion: """
        Runs through the same continuous-batching scheduler as `serve`. --concurrency N submits N \
        requests of the same length together (each prompt opens differently, so none can be served \
        from another's cached prefix) and reports the aggregate decode rate of all N sequences and \
        the rate of one sequence. Decode tok/s of a sequence = (generated − 1) / (finished − first \
        token); prefill tok/s = prompt tokens / (first token − scheduled).
        """)

    @OptionGroup var options: ModelOptions
    @Option(name: .customLong("prompt-tokens"), help: "Prompt length in tokens.") var promptTokens: Int = 128
    @Option(name: .customLong("gen-tokens"), help: "Tokens to decode.") var genTokens: Int = 128
    @Option(name: .long, help: "Timed repetitions (the median is reported).") var repeats: Int = 3
    @Option(name: .long, help: "Requests submitted together, each of --prompt-tokens and --gen-tokens (default: 1).") var concurrency: Int = 1
    @Option(name: .customLong("kv-cache-mb"), help: "KV-cache budget in MiB (default: 512, or what the --concurrency sequences need if more).") var kvCacheMB: Int?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        try FlagRange.check("--prompt-tokens", promptTokens, 1...1_048_576)
        try FlagRange.check("--gen-tokens", genTokens, 2...1_048_576)
        try FlagRange.check("--repeats", repeats, 1...1000)
        try FlagRange.check("--concurrency", concurrency, 1...4096)
        try FlagRange.check("--kv-cache-mb", kvCacheMB, 1...1_048_576, unit: " MiB")
    }

    /// One repetition: all `concurrency` sequences, submitted together.
    struct Round {
        var prefill: Double      // prompt tokens computed / (last first token − first scheduled)
        var decode: Double       // Σ(generated − 1) / (last finished − first first token)
        var decodePerSeq: Double // mean over the sequences of (generated − 1) / (finished − first token)
        var cachedTokens: Int
    }

    func run() async throws {
        let model = try options.modelPath()
        let lm = try LoadedModel(path: model, threads: options.effectiveThreads())
        let context = lm.model.config.contextLength
        guard promptTokens + genTokens <= context else {
            throw ValidationError("--prompt-tokens + --gen-tokens (\(promptTokens + genTokens)) exceeds the model context (\(context))")
        }
        // Every sequence whole in the KV budget, so the measurement never includes a preemption.
        let defaults = SchedulerConfig()
        let perSeq = defaults.kvBlocks(holding: promptTokens + genTokens) * defaults.blockSize
        let needMB = Self.megabytes(positions: concurrency * perSeq,
                                    bytesPerPosition: Scheduler.kvBytesPerPosition(lm.model.config, precision: defaults.kvPrecision))
        if let kvCacheMB, kvCacheMB < needMB {
            throw ValidationError("--kv-cache-mb \(kvCacheMB) cannot hold \(concurrency) sequences of \(promptTokens + genTokens) tokens (they need \(needMB) MiB): raise it or lower --concurrency")
        }
        let kvMB = kvCacheMB ?? max(defaults.kvCacheMB, needMB)
        let engine = EngineSession(model: lm, config: SchedulerConfig(
            maxSeqs: concurrency, maxBatchedTokens: defaults.maxBatchedTokens, kvCacheMB: kvMB))
        defer { engine.close() }

        // Warm-up: touch every weight page once.
        _ = try await engine.run(GenerationRequest(promptIDs: Array(prompt(0, lm).prefix(8)), maxTokens: 2,
                                                   sampling: .greedy, ignoreEOS: true))
        var rounds: [Round] = []
        var promptLength = 0
        for r in 0..<repeats {
            let requests = (0..<concurrency).map {
                GenerationRequest(promptIDs: prompt(1 + r * concurrency + $0, lm), maxTokens: genTokens,
                                  sampling: .greedy, ignoreEOS: true)
            }
            promptLength = requests[0].promptIDs.count
            rounds.append(try Self.measure(try await engine.runAll(requests)))
        }
        let pf = median(rounds.map(\.prefill)), dc = median(rounds.map(\.decode))
        let dcSeq = median(rounds.map(\.decodePerSeq))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let rssMB = Double(usage.ru_maxrss) / 1024
        if json {
            printJSON([
                "model": model, "threads": lm.pool.threadCount, "prompt_tokens": promptLength,
                "gen_tokens": genTokens, "repeats": repeats, "prefill_tok_s": pf, "decode_tok_s": dc,
                "prefill_runs": rounds.map(\.prefill), "decode_runs": rounds.map(\.decode), "peak_rss_mb": rssMB,
                "concurrency": concurrency, "decode_tok_s_per_seq": dcSeq,
                "decode_per_seq_runs": rounds.map(\.decodePerSeq), "kv_cache_mb": kvMB,
                "max_batched_tokens": defaults.maxBatchedTokens, "cached_tokens": rounds.map(\.cachedTokens).reduce(0, +),
            ])
        } else if concurrency == 1 {
            print(String(format: "model %@  threads %d  prompt %d  gen %d  (median of %d)",
                         model as NSString, lm.pool.threadCount, promptLength, genTokens, repeats))
            print(String(format: "prefill %8.1f tok/s", pf))
            print(String(format: "decode  %8.1f tok/s", dc))
            print(String(format: "peak RSS %.0f MiB", rssMB))
        } else {
            print(String(format: "model %@  threads %d  prompt %d  gen %d  concurrency %d  (median of %d)",
                         model as NSString, lm.pool.threadCount, promptLength, genTokens, concurrency, repeats))
            print(String(format: "prefill %8.1f tok/s  (all %d prompts)", pf, concurrency))
            print(String(format: "decode  %8.1f tok/s  (aggregate of %d sequences)", dc, concurrency))
            print(String(format: "decode  %8.1f tok/s  per sequence", dcSeq))
            print(String(format: "peak RSS %.0f MiB", rssMB))
        }
    }

    /// Prompt number `k`: `--prompt-tokens` ids of ordinary text that opens with `k`, so no two
    /// prompts of a run share their first KV block.
    func prompt(_ k: Int, _ lm: LoadedModel) -> [Int32] {
        let text = "\(k). " + String(repeating: "The quick brown fox jumps over the lazy dog while the committee reviews the annual budget in detail. ", count: promptTokens / 8 + 2)
        return Array(lm.tokenizer.encode(text, addBOS: true, parseSpecial: false).prefix(promptTokens))
    }

    static func megabytes(positions: Int, bytesPerPosition: Int) -> Int {
        let (bytes, overflow) = positions.multipliedReportingOverflow(by: bytesPerPosition)
        return overflow ? Int.max : (bytes + 1_048_575) / 1_048_576
    }

    static func measure(_ results: [GenerationResult]) throws -> Round {
        let t = results.map(\.timings)
        guard let scheduled = t.compactMap(\.scheduled).min(),
              let firstFirst = t.compactMap(\.firstToken).min(),
              let lastFirst = t.compactMap(\.firstToken).max(),
              let lastFinished = t.compactMap(\.finished).max(),
              results.allSatisfy({ $0.generatedIDs.count >= 2 && $0.timings.firstToken != nil }) else {
            throw BenchError(description: "a benchmark request ended before its second token (finish reasons \(results.map(\.finishReason.rawValue))): check the model with autoglm generate --ignore-eos")
        }
        let prefilled = results.reduce(0) { $0 + $1.prefilledTokens }
        let decoded = results.reduce(0) { $0 + $1.generatedIDs.count - 1 }
        return Round(prefill: Double(prefilled) / max((lastFirst - scheduled).inSeconds, 1e-9),
                     decode: Double(decoded) / max((lastFinished - firstFirst).inSeconds, 1e-9),
                     decodePerSeq: results.reduce(0) { $0 + $1.decodeTokensPerSecond } / Double(results.count),
                     cachedTokens: results.reduce(0) { $0 + $1.cachedTokens })
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
