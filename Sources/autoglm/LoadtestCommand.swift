import Spec
import ArgumentParser
import Foundation
import LoadGen

struct Loadtest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive an OpenAI-compatible server with streaming requests; report TTFT/TPOT/ITL/e2e percentiles, throughput and goodput.")

    @Option(name: .long, help: "Server base URL, e.g. http://127.0.0.1:8080; repeat it for replicas of one model (requests go round-robin).") var url: [String]
    @Option(name: .customLong("api-key"), help: "Bearer API key.") var apiKey: String?
    @Option(name: .long, help: "Model name to request (default: the first id from GET /v1/models).") var model: String?
    @Option(name: .long, help: "Closed loop: clients each keeping one request in flight.") var concurrency: Int?
    @Option(name: .long, help: "Open loop: Poisson arrivals, requests per second.") var rate: Double?
    @Option(name: .long, help: "Measured requests.") var requests: Int?
    @Option(name: .customLong("prompt-tokens"), help: "Prompt length in tokens.") var promptTokens: Int?
    @Option(name: .long, help: "Multi-turn chat: this many conversations at once (one client each), instead of --concurrency/--rate, --requests and --prompt-tokens.") var conversations: Int?
    @Option(name: .long, help: "Turns per conversation (with --conversations; default 4).") var turns: Int = 4
    @Option(name: .customLong("system-tokens"), help: "The system prompt all conversations share, in tokens (default 1000).") var systemTokens: Int = 1000
    @Option(name: .customLong("user-tokens"), help: "Each user message, in tokens (default 32).") var userTokens: Int = 32
    @Option(name: .customLong("max-tokens"), help: "Output tokens per request (EOS ignored unless --no-ignore-eos).") var maxTokens: Int
    @Option(name: .customLong("max-tokens-to"), help: "Mixed lengths: each request's output is drawn uniformly from --max-tokens...this.") var maxTokensTo: Int?
    @Flag(name: .long, help: "Use /v1/chat/completions (prompt length calibrated from usage.prompt_tokens).") var chat = false
    @Option(name: .long, help: "Latency targets in ms for goodput, e.g. ttft=500,tpot=50,e2e=10000.") var slo: String?
    @Flag(name: .long, help: "Print the report as JSON.") var json = false
    @Option(name: .long, help: "Random seed (prompts, lengths, arrivals).") var seed: UInt64 = 0
    @Option(name: .long, help: "Unmeasured requests sent first.") var warmup: Int = 0
    @Option(name: .long, help: "Per-request timeout in seconds.") var timeout: Double = 600
    @Flag(name: .customLong("no-ignore-eos"), help: "Let the model stop at EOS.") var noIgnoreEOS = false

    func validate() throws {
        _ = try spec()
    }

    static func parseSLO(_ s: String) throws -> SLO {
        var slo = SLO()
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        guard !s.isEmpty else { throw ValidationError("--slo is empty; give e.g. ttft=500,tpot=50") }
        for p in parts {
            let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let v = Double(kv[1]), v.isFinite, v > 0 else {
                throw ValidationError("--slo entry '\(p)' must be NAME=MS with a positive number, e.g. ttft=500,tpot=50")
            }
            switch kv[0].lowercased() {
            case "ttft": slo.ttftMs = v
            case "tpot": slo.tpotMs = v
            case "e2e": slo.e2eMs = v
            default: throw ValidationError("--slo knows ttft, tpot and e2e (got '\(kv[0])')")
            }
        }
        return slo
    }

    func spec() throws -> LoadSpec {
        let shape: LoadShape
        if let n = conversations {
            try FlagRange.check("--conversations", n, 1...10_000)
            try FlagRange.check("--turns", turns, 1...1_000)
            try FlagRange.check("--system-tokens", systemTokens, 1...1_048_576)
            try FlagRange.check("--user-tokens", userTokens, 1...1_048_576)
            if concurrency != nil || rate != nil || requests != nil || promptTokens != nil || warmup != 0 {
                throw ValidationError("--conversations runs its own clients and prompts: drop --concurrency, --rate, --requests, --prompt-tokens and --warmup")
            }
            shape = .closed(concurrency: n)
        } else {
            guard requests != nil else { throw ValidationError("give --requests N (or --conversations for multi-turn chat)") }
            guard promptTokens != nil else { throw ValidationError("give --prompt-tokens N (or --conversations for multi-turn chat)") }
            switch (concurrency, rate) {
            case (let c?, nil):
                guard c >= 1 else { throw ValidationError("--concurrency must be ≥ 1 (got \(c))") }
                shape = .closed(concurrency: c)
            case (nil, let r?):
                guard r.isFinite, r > 0 else { throw ValidationError("--rate must be a positive number of requests per second (got \(r))") }
                shape = .open(ratePerSecond: r)
            case (.some, .some): throw ValidationError("give either --concurrency (closed loop) or --rate (open loop), not both")
            case (nil, nil): throw ValidationError("give --concurrency C (closed loop) or --rate R (open loop, requests/s)")
            }
        }
        try FlagRange.check("--concurrency", concurrency, 1...100_000)
        try FlagRange.check("--rate", rate, 0.000_001...1_000_000, unit: " requests/s")
        try FlagRange.check("--requests", requests, 1...10_000_000)
        try FlagRange.check("--prompt-tokens", promptTokens, 1...1_048_576)
        try FlagRange.check("--max-tokens", maxTokens, 1...1_048_576)
        try FlagRange.check("--max-tokens-to", maxTokensTo, maxTokens...1_048_576)
        try FlagRange.check("--warmup", warmup, 0...1_000_000)
        try FlagRange.check("--timeout", timeout, 0.001...86_400, unit: " s")
        guard let first = url.first else { throw ValidationError("give --url, e.g. --url http://127.0.0.1:8080") }
        for url in url {
            guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme),
                  let host = u.host, !host.isEmpty else {
                throw ValidationError("--url must be an http(s) base URL such as http://127.0.0.1:8080 (got '\(url)')")
            }
        }
        let count = conversations.map { $0 * turns } ?? requests ?? 1
        var s = LoadSpec(url: first, apiKey: apiKey, model: model, chat: chat || conversations != nil, load: shape, requests: count,
                         promptTokens: .fixed(promptTokens ?? userTokens),
                         maxTokens: maxTokensTo.map { .uniform(maxTokens, $0) } ?? .fixed(maxTokens), ignoreEOS: !noIgnoreEOS,
                         warmupRequests: warmup, timeoutSeconds: timeout, slo: try slo.map(Self.parseSLO), seed: seed)
        s.replicaURLs = Array(url.dropFirst())
        s.conversations = conversations.map { Conversations(count: $0, turns: turns, systemTokens: systemTokens, userTokens: userTokens) }
        do { try s.validate() } catch { throw ValidationError(error.description) }
        return s
    }

    func run() async throws {
        let s = try spec()
        let tty = isatty(STDERR_FILENO) == 1
        let progress: (@Sendable (LiveStats) -> Void)? = tty ? Self.printProgress : nil
        let report: LoadReport
        do {
            report = try await LoadGen.run(s, progress: progress)
        } catch let e as LoadGenError {
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            throw ValidationError(e.description)
        }
        if tty { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        print(Self.table(report, spec: s))
    }

    @Sendable static func printProgress(_ st: LiveStats) {
        let line: String = String(format: "\r%d/%d done  %d failed  %d in flight  %.1f s  TTFT p50 %.0f ms  TPOT p50 %.1f ms   ",
                                  st.completed, st.total, st.failed, st.inFlight, st.elapsedSeconds, st.ttft.p50, st.tpot.p50)
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func table(_ r: LoadReport, spec s: LoadSpec) -> String {
        var out: [String] = []
        let shape: String
        switch s.load {
        case .closed(let c): shape = "concurrency \(c)"
        case .open(let r): shape = String(format: "rate %.2f req/s (Poisson)", r)
        }
        out.append("model \(r.model)  \(shape)  \(r.completed) completed  \(r.failed) failed  in \(String(format: "%.2f", r.durationSeconds)) s\(r.aborted ? "  (aborted)" : "")")
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + fill : fill + s
        }
        out.append(pad("ms", 6, left: true) + ["p50", "p90", "p99", "mean", "max"].map { pad($0, 11) }.joined())
        for (n, l) in [("TTFT", r.ttft), ("TPOT", r.tpot), ("ITL", r.itl), ("e2e", r.e2e)] {
            out.append(pad(n, 6, left: true) + [l.p50, l.p90, l.p99, l.mean, l.max].map { pad(String(format: "%.1f", $0), 11) }.joined())
        }
        out.append(String(format: "output %.1f tok/s   requests %.2f req/s   tokens out %d, prompt %d",
                          r.outputTokensPerSecond, r.requestsPerSecond, r.outputTokens, r.promptTokens))
        if let g = r.goodput { out.append(String(format: "goodput %.2f req/s meeting the SLO", g)) }
        if let turns = r.ttftByTurn {
            out.append("TTFT p50 by turn (ms): " + turns.enumerated().map { String(format: "%d: %.1f", $0.offset + 1, $0.element.p50) }.joined(separator: "  "))
        }
        if r.errors.isEmpty {
            out.append("errors: none")
        } else {
            out.append("errors: " + r.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for (k, m) in r.errorExamples.sorted(by: { $0.key < $1.key }) { out.append("  \(k): \(m)") }
        }
        return out.joined(separator: "\n")
    }
}
