import ArgumentParser
import Engine
import Foundation

@main
struct AutoGLM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm",
        abstract: "Fetch, serve, tune and deploy GLM-family LLMs from one binary.",
        subcommands: [Generate.self, Chat.self, Serve.self, Tokenize.self, Inspect.self, Bench.self, Logits.self,
                      Validate.self, Deploy.self, Pull.self, Models.self, Loadtest.self, Optimize.self,
                      RegistryCommand.self, Up.self, FleetCommand.self])
}

/// Options shared by commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A GGUF path, a registered ID[@VERSION|:CHANNEL], a catalog alias or any `autoglm pull` reference (pulled on demand).")
    var model: String?

    @Option(name: .long, help: "Worker threads, 1...512 (default: the number of cores; more than the cores is capped to them).")
    var threads: Int?

    @Flag(name: .customLong("force-threads"), help: "Keep a --threads above the number of cores.")
    var forceThreads = false

    func validate() throws {
        try FlagRange.check("--threads", threads, 1...512)
    }

    /// `--threads` (or the spec's value) after the core cap.
    func effectiveThreads(_ fallback: Int? = nil) -> Int? {
        FlagRange.threads(threads ?? fallback, force: forceThreads)
    }
}

/// Sampling options shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Temperature (0 = greedy).") var temp: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Top-k (0 = off).") var topK: Int = 40
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).") var topP: Float = 0.95
    @Option(name: .customLong("min-p"), help: "Min-p relative threshold (0 = off).") var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1 = off).") var repeatPenalty: Float = 1
    @Option(name: .long, help: "Random seed for reproducible sampling.") var seed: UInt64?

    func validate() throws {
        try FlagRange.check("--temp", temp, 0...100)
        try FlagRange.check("--top-k", topK, 0...1_000_000)
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1] (got \(topP))") }
        guard minP >= 0, minP < 1 else { throw ValidationError("--min-p must be in [0, 1) (got \(minP))") }
        guard repeatPenalty > 0 else { throw ValidationError("--repeat-penalty must be > 0 (got \(repeatPenalty))") }
        try FlagRange.check("--repeat-penalty", repeatPenalty, 0...100)
    }

    var params: SamplingParams {
        var p = SamplingParams()
        p.temperature = temp
        p.topK = topK
        p.topP = topP
        p.minP = minP
        p.repetitionPenalty = repeatPenalty
        p.seed = seed
        return p
    }
}

/// JSON printing helper: stable key order, no escaping of slashes.
func printJSON(_ object: Any) {
    do {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    } catch {
        print("{\"error\": \"could not encode JSON\"}")
    }
}

/// Writes to stdout immediately (streaming output).
func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}
