import ArgumentParser
import Backends
import Foundation
import Logging
import LoadGen
import Registry
import Tracing
import Tuner

struct Optimize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the serving configuration that best meets latency/throughput goals by measuring real runs (constrained Bayesian optimisation).")

    @Argument(help: "A spec (autoglm.yaml) whose model to tune; --write updates its backend section.") var spec: String?
    @Option(name: .long, help: "Model: registry reference (ID, ID@VERSION, ID:TAG) or a GGUF path (instead of SPEC).") var model: String?
    @Option(name: .long, help: "Spec environment overlay to read.") var env: String?
    @Option(name: .long, help: "throughput | goodput | latency | memory.") var objective = "throughput"
    @Option(name: .customLong("max-ttft-ms"), help: "SLO on time to first token (ms).") var maxTTFT: Double?
    @Option(name: .customLong("max-tpot-ms"), help: "SLO on time per output token (ms).") var maxTPOT: Double?
    @Option(name: .customLong("max-latency-ms"), help: "SLO on end-to-end request latency (ms).") var maxLatency: Double?
    @Option(name: .long, help: "Percentile the SLOs apply to: 95 or 99.") var percentile = 95
    @Option(name: .long, help: "chat | code | long-context | FILE (a LoadSpec JSON as loadtest uses).") var workload = "chat"
    @Option(name: .long, help: "Closed-loop concurrency levels, e.g. 1,4,8.") var concurrency: String?
    @Option(name: .long, help: "Open-loop arrival rate (requests/s) instead of --concurrency.") var rate: Double?
    @Option(name: .long, help: "Measured requests per load level (default: the workload's).") var requests: Int?
    @Option(name: .customLong("prompt-tokens"), help: "Override the workload's prompt length (tokens).") var promptTokens: Int?
    @Option(name: .customLong("max-tokens"), help: "Override the workload's output length (tokens).") var maxTokens: Int?
    @Option(name: .long, help: "Unmeasured warm-up requests per trial.") var warmup = 1
    @Option(name: .customLong("max-trials"), help: "Trials to run (counting resumed ones).") var maxTrials = 20
    @Option(name: .customLong("time-budget"), help: "Stop starting trials after this long, e.g. 30m, 90s, 1h.") var timeBudget: String?
    @Option(name: .long, help: "Seed: the same seed proposes the same configurations.") var seed: UInt64 = 0
    @Option(name: .long, help: "bayes (constrained Bayesian optimisation) | grid (every configuration of the discretised space, for comparison).") var strategy = "bayes"
    @Option(name: .customLong("grid-levels"), help: "Discretise each integer knob to this many values (grid default: 3; bayes default: the full integer range).") var gridLevels: Int?
    @Option(name: .long, help: "Backends to tune and compare, comma-separated: native (this engine), llamacpp (llama.cpp's llama-server), openai:URL (an OpenAI-compatible server already running; measured once).") var backends = "native"
    @Option(name: .customLong("llama-server"), help: "Path of llama-server for --backends llamacpp (default: $AUTOGLM_LLAMA_SERVER, the copy bench/build-llama-server.sh builds, then $PATH).") var llamaServer: String?
    @Option(name: .customLong("upstream-api-key"), help: "API key for openai:URL backends (default: $OPENAI_API_KEY).") var upstreamAPIKey: String?
    @Option(name: .long, help: "Search only these knobs (comma-separated names, e.g. threads,maxSeqs); the others keep the backend's defaults.") var knobs: String?
    @Option(name: .customLong("trial-timeout"), help: "Seconds a trial's server may take to become ready.") var startupTimeout: Double = 120
    @Option(name: .customLong("request-timeout"), help: "Per-request timeout in seconds.") var requestTimeout: Double = 300
    @Flag(name: .long, help: "Continue the stored trials of the same study instead of starting over.") var resume = false
    @Flag(name: .long, help: "Write the best configuration into SPEC's backend section.") var write = false
    @Option(name: .long, help: "Write report.json and report.html into this directory.") var report: String?
    @OptionGroup var tracing: TracingOptions

    func validate() throws {
        guard Objectives.all.contains(objective) else {
            throw ValidationError("--objective must be throughput, goodput, latency or memory (got '\(objective)')")
        }
        guard percentile == 95 || percentile == 99 else { throw ValidationError("--percentile must be 95 or 99 (got \(percentile))") }
        guard (spec == nil) != (model == nil) else { throw ValidationError("give a SPEC file or --model REF (exactly one)") }
        try FlagRange.check("--max-trials", maxTrials, 1...100_000)
        guard strategy == "bayes" || strategy == "grid" else { throw ValidationError("--strategy must be bayes or grid (got '\(strategy)')") }
        if let g = gridLevels, !(2...64).contains(g) { throw ValidationError("--grid-levels must be between 2 and 64 (got \(g))") }
        if write && spec == nil { throw ValidationError("--write needs a SPEC file to update") }
        if objective == "goodput" && slo.isEmpty { throw ValidationError("--objective goodput needs an SLO: --max-ttft-ms, --max-tpot-ms or --max-latency-ms") }
        for (n, v) in [("--max-ttft-ms", maxTTFT), ("--max-tpot-ms", maxTPOT), ("--max-latency-ms", maxLatency)] {
            try FlagRange.check(n, v, 0.001...86_400_000, unit: " ms")
        }
        try FlagRange.check("--rate", rate, 0.000_001...1_000_000, unit: " requests/s")
        try FlagRange.check("--requests", requests, 1...10_000_000)
        try FlagRange.check("--prompt-tokens", promptTokens, 1...1_048_576)
        try FlagRange.check("--max-tokens", maxTokens, 1...1_048_576)
        try FlagRange.check("--trial-timeout", startupTimeout, 1...86_400, unit: " s")
        try FlagRange.check("--request-timeout", requestTimeout, 1...86_400, unit: " s")
        _ = try loadLevels()
        _ = try parseDuration()
        let choices = try backendChoices()
        if objective == "memory", choices.contains(where: { if case .openai = $0 { return true } else { return false } }) {
            throw ValidationError("--objective memory needs backends whose processes autoglm starts; an openai:URL upstream's memory is not measurable from here")
        }
        if choices.contains(.llamacpp), LlamaCppBackend.locate(explicit: llamaServer) == nil {
            throw ValidationError(llamaServer.map { "--llama-server \($0) is not an executable file" }
                ?? "--backends llamacpp: llama-server not found; give --llama-server PATH, set AUTOGLM_LLAMA_SERVER, or build it with bash bench/build-llama-server.sh")
        }
    }

    /// The parsed --backends list (distinct, in the order given).
    func backendChoices() throws -> [BackendChoice] {
        var out: [BackendChoice] = []
        for raw in backends.split(separator: ",", omittingEmptySubsequences: false) {
            let b = raw.trimmingCharacters(in: .whitespaces)
            let choice: BackendChoice
            switch b {
            case "native": choice = .native
            case "llamacpp", "llama.cpp": choice = .llamacpp
            default:
                guard b.hasPrefix("openai:") else {
                    throw ValidationError("--backends: unknown backend '\(b)'; use native, llamacpp or openai:URL (e.g. openai:http://127.0.0.1:8000)")
                }
                let url = String(b.dropFirst("openai:".count))
                guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme),
                      let host = u.host, !host.isEmpty else {
                    throw ValidationError("--backends openai:URL needs an http(s) base URL, e.g. openai:http://127.0.0.1:8000 (got '\(url)')")
                }
                choice = .openai(url)
            }
            if out.contains(choice) { throw ValidationError("--backends lists '\(b)' twice") }
            out.append(choice)
        }
        guard !out.isEmpty else { throw ValidationError("--backends is empty; use native, llamacpp or openai:URL") }
        return out
    }

    /// (name, limit) of the SLOs given.
    var slo: [(String, Double)] {
        var out: [(String, Double)] = []
        if let v = maxTTFT { out.append(("ttft", v)) }
        if let v = maxTPOT { out.append(("tpot", v)) }
        if let v = maxLatency { out.append(("e2e", v)) }
        return out
    }

    func parseDuration() throws -> Duration? {
        guard let s = timeBudget else { return nil }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, f) in units where s.hasSuffix(u) {
            if let v = Double(s.dropLast(u.count)), v > 0, v.isFinite { return .milliseconds(Int64(v * f * 1000)) }
        }
        if let v = Double(s), v > 0 { return .seconds(v) }
        throw ValidationError("--time-budget must look like 30m, 90s or 1h (got '\(s)')")
    }

    func loadLevels() throws -> [LoadShape] {
        switch (concurrency, rate) {
        case (let c?, nil):
            let levels = c.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--concurrency must be a comma-separated list of positive integers, e.g. 1,4,8 (got '\(c)')")
            }
            return levels.compactMap { $0 }.map { .closed(concurrency: $0) }
        case (nil, let r?):
            guard r > 0, r.isFinite else { throw ValidationError("--rate must be a positive number of requests per second") }
            return [.open(ratePerSecond: r)]
        case (.some, .some): throw ValidationError("give either --concurrency or --rate, not both")
        case (nil, nil): return [.closed(concurrency: 4)]
        }
    }

    /// The workload's request template (url filled in per trial).
    func workloadSpec() throws -> LoadSpec {
        var w: LoadSpec
        if let preset = Workload.preset(workload) {
            w = preset
        } else {
            guard let data = FileManager.default.contents(atPath: workload) else {
                throw ValidationError("--workload '\(workload)' is neither chat, code, long-context nor a readable LoadSpec JSON file")
            }
            do { w = try JSONDecoder().decode(LoadSpec.self, from: data) } catch {
                throw ValidationError("--workload \(workload): not a LoadSpec JSON (\(error)); see `autoglm loadtest` for the fields")
            }
        }
        if let r = requests { w.requests = r }
        if let p = promptTokens { w.promptTokens = .fixed(p) }
        if let m = maxTokens { w.maxTokens = .fixed(m) }
        w.warmupRequests = warmup
        w.timeoutSeconds = requestTimeout
        w.ignoreEOS = true
        w.seed = seed
        w.model = "trial"
        return w
    }

    func run() async throws {
        let req = TuningRequest(
            model: spec.map { .spec(path: $0, environment: env) } ?? .model(model ?? ""),
            objective: objective, slo: slo, percentile: percentile, workload: try workloadSpec(), workloadName: workload,
            levels: try loadLevels(), backends: try backendChoices(), nativeExecutable: Self.executable,
            llamaServer: llamaServer, upstreamAPIKey: upstreamAPIKey,
            searched: knobs.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            strategy: strategy, gridLevels: gridLevels, seed: seed, maxTrials: maxTrials, timeBudget: try parseDuration(),
            startupTimeout: startupTimeout, resume: resume, write: write, reportDirectory: report)
        let trace = try tracing.start(service: "autoglm-optimize", logger: Logger(label: "autoglm.optimize"))
        do {
            try await withTracing(trace) {
                try await withSpan("optimize") { _ in
                    try await Tuning.run(req, registry: try Registry(), print: { Swift.print($0) }, log: optLog)
                }
            }
        } catch TunerError.invalid(let message) {
            throw ValidationError(message)
        }
    }

    static var executable: String {
        if let p = Bundle.main.executablePath, FileManager.default.isExecutableFile(atPath: p) { return p }
        return CommandLine.arguments[0]
    }
}

@Sendable private func optLog(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
