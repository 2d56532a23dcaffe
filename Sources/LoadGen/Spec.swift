import Foundation

/// How requests arrive.
public enum LoadShape: Sendable, Codable, Equatable {
    /// `concurrency` clients, each sending its next request as soon as the last one ends.
    case closed(concurrency: Int)
    /// Poisson arrivals at `ratePerSecond` (exponential gaps from the seeded generator), however many are in flight.
    case open(ratePerSecond: Double)
}

/// A distribution of token counts, sampled per request from the run's seeded generator.
public enum LengthDist: Sendable, Codable, Equatable {
    case fixed(Int)
    /// Uniform over `lo...hi`.
    case uniform(Int, Int)
    /// Normal, rounded, clamped to `min...max`.
    case normal(mean: Double, sd: Double, min: Int, max: Int)

    public func sample(_ rng: inout SplitMix64) -> Int {
        switch self {
        case .fixed(let n): return n
        case .uniform(let lo, let hi): return Int.random(in: lo...hi, using: &rng)
        case .normal(let mean, let sd, let lo, let hi):
            // Box–Muller.
            let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &rng)
            let u2 = Double.random(in: 0..<1, using: &rng)
            let z = (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
            let v = (mean + sd * z).rounded()
            return Swift.min(hi, Swift.max(lo, v.isFinite ? Int(Swift.max(-1e9, Swift.min(1e9, v))) : lo))
        }
    }

    /// The smallest value this distribution can produce.
    public var lowerBound: Int {
        switch self {
        case .fixed(let n): return n
        case .uniform(let lo, _): return lo
        case .normal(_, _, let lo, _): return lo
        }
    }

    func check(_ name: String, minimum: Int) throws(LoadGenError) {
        switch self {
        case .fixed(let n):
            guard n >= minimum else { throw .invalidSpec("\(name) must be ≥ \(minimum) (got \(n))") }
        case .uniform(let lo, let hi):
            guard lo >= minimum, hi >= lo else {
                throw .invalidSpec("\(name) uniform(\(lo), \(hi)) needs \(minimum) ≤ lo ≤ hi")
            }
        case .normal(let mean, let sd, let lo, let hi):
            guard mean.isFinite, sd.isFinite, sd >= 0, lo >= minimum, hi >= lo else {
                throw .invalidSpec("\(name) normal(mean \(mean), sd \(sd), min \(lo), max \(hi)) needs finite mean, sd ≥ 0 and \(minimum) ≤ min ≤ max")
            }
        }
    }
}

/// Latency targets in milliseconds; a request meets the SLO when it meets every one that is set.
public struct SLO: Sendable, Codable, Equatable {
    public var ttftMs: Double?
    public var tpotMs: Double?
    public var e2eMs: Double?

    public init(ttftMs: Double? = nil, tpotMs: Double? = nil, e2eMs: Double? = nil) {
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
        self.e2eMs = e2eMs
    }

    /// Whether one request's timings (seconds) meet every target that is set. A request with
    /// no TTFT (no content) misses a TTFT target; one with a single token has no TPOT and meets it.
    public func isMet(by t: RequestTimings) -> Bool {
        if let lim = ttftMs {
            guard let v = t.ttft, v * 1000 <= lim else { return false }
        }
        if let lim = tpotMs, let v = t.tpot, v * 1000 > lim { return false }
        if let lim = e2eMs, t.e2e * 1000 > lim { return false }
        return true
    }
}

/// A multi-turn chat workload: `count` conversations run at once (one client each), each of
/// `turns` requests. Every conversation starts with the same system prompt of about
/// `systemTokens` tokens; each turn appends a user message of about `userTokens` tokens (its own
/// words, opening with the conversation and turn number) and, once answered, the answer as the
/// assistant's message — so each request repeats the whole conversation so far, as chat clients do.
/// A failed turn ends its conversation. Lengths are calibrated from the server's `usage`.
public struct Conversations: Sendable, Codable, Equatable {
    public var count: Int
    public var turns: Int
    public var systemTokens: Int
    public var userTokens: Int
    public init(count: Int, turns: Int, systemTokens: Int, userTokens: Int) {
        self.count = count; self.turns = turns; self.systemTokens = systemTokens; self.userTokens = userTokens
    }
}

/// One load run against an OpenAI-compatible server.
public struct LoadSpec: Sendable, Codable {
    /// Base URL, e.g. http://127.0.0.1:8080 (a trailing `/v1` is accepted too).
    public var url: String
    /// More base URLs serving the same model (replicas); requests go round-robin over `url` and these.
    public var replicaURLs: [String] = []
    public var apiKey: String?
    /// The request's "model" field; nil: the first id from GET /v1/models.
    public var model: String?
    /// /v1/chat/completions instead of /v1/completions.
    public var chat: Bool
    public var load: LoadShape
    /// Measured requests.
    public var requests: Int
    public var promptTokens: LengthDist
    public var maxTokens: LengthDist
    public var ignoreEOS: Bool
    /// Requests sent before the measured run, not counted.
    public var warmupRequests: Int
    /// Per-request limit (whole request, stream included).
    public var timeoutSeconds: Double
    public var slo: SLO?
    public var seed: UInt64
    /// Token ids drawn (uniformly, seeded) for /v1/completions prompts; must lie in the model's vocabulary.
    public var promptTokenIDs: ClosedRange<Int>
    /// Called with live statistics after every finished request; returning true stops the run
    /// (in-flight requests are cancelled and not counted) and marks the report `aborted`. Not coded.
    public var abortWhen: (@Sendable (LiveStats) -> Bool)?
    /// Multi-turn chat instead of independent requests (then `chat`, `load`, `requests`,
    /// `promptTokens` and `warmupRequests` do not apply: count × turns chat requests, count at once).
    public var conversations: Conversations?

    enum CodingKeys: String, CodingKey {
        case url, replicaURLs, apiKey, model, chat, load, requests, promptTokens, maxTokens, ignoreEOS, warmupRequests,
             timeoutSeconds, slo, seed, promptTokenIDs, conversations
    }

    public init(url: String, apiKey: String? = nil, model: String? = nil, chat: Bool = false,
                load: LoadShape = .closed(concurrency: 1), requests: Int = 1,
                promptTokens: LengthDist = .fixed(64), maxTokens: LengthDist = .fixed(64),
                ignoreEOS: Bool = true, warmupRequests: Int = 0, timeoutSeconds: Double = 600,
                slo: SLO? = nil, seed: UInt64 = 0, promptTokenIDs: ClosedRange<Int> = 1000...9999,
                abortWhen: (@Sendable (LiveStats) -> Bool)? = nil) {
        self.url = url
        self.apiKey = apiKey
        self.model = model
        self.chat = chat
        self.load = load
        self.requests = requests
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.ignoreEOS = ignoreEOS
        self.warmupRequests = warmupRequests
        self.timeoutSeconds = timeoutSeconds
        self.slo = slo
        self.seed = seed
        self.promptTokenIDs = promptTokenIDs
        self.abortWhen = abortWhen
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(url: try c.decode(String.self, forKey: .url))
        replicaURLs = try c.decodeIfPresent([String].self, forKey: .replicaURLs) ?? []
        apiKey = try c.decodeIfPresent(String.self, forKey: .apiKey)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        chat = try c.decodeIfPresent(Bool.self, forKey: .chat) ?? chat
        load = try c.decodeIfPresent(LoadShape.self, forKey: .load) ?? load
        requests = try c.decodeIfPresent(Int.self, forKey: .requests) ?? requests
        promptTokens = try c.decodeIfPresent(LengthDist.self, forKey: .promptTokens) ?? promptTokens
        maxTokens = try c.decodeIfPresent(LengthDist.self, forKey: .maxTokens) ?? maxTokens
        ignoreEOS = try c.decodeIfPresent(Bool.self, forKey: .ignoreEOS) ?? ignoreEOS
        warmupRequests = try c.decodeIfPresent(Int.self, forKey: .warmupRequests) ?? warmupRequests
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? timeoutSeconds
        slo = try c.decodeIfPresent(SLO.self, forKey: .slo)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        promptTokenIDs = try c.decodeIfPresent(ClosedRange<Int>.self, forKey: .promptTokenIDs) ?? promptTokenIDs
        conversations = try c.decodeIfPresent(Conversations.self, forKey: .conversations)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(url, forKey: .url)
        if !replicaURLs.isEmpty { try c.encode(replicaURLs, forKey: .replicaURLs) }
        try c.encodeIfPresent(apiKey, forKey: .apiKey)
        try c.encodeIfPresent(model, forKey: .model)
        try c.encode(chat, forKey: .chat)
        try c.encode(load, forKey: .load)
        try c.encode(requests, forKey: .requests)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(maxTokens, forKey: .maxTokens)
        try c.encode(ignoreEOS, forKey: .ignoreEOS)
        try c.encode(warmupRequests, forKey: .warmupRequests)
        try c.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try c.encodeIfPresent(slo, forKey: .slo)
        try c.encode(seed, forKey: .seed)
        try c.encode(promptTokenIDs, forKey: .promptTokenIDs)
        try c.encodeIfPresent(conversations, forKey: .conversations)
    }

    /// Throws `LoadGenError.invalidSpec` naming the first bad field.
    public func validate() throws(LoadGenError) {
        for url in [url] + replicaURLs {
            guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme),
                  let host = u.host, !host.isEmpty else {
                throw .invalidSpec("url must be an http(s) base URL such as http://127.0.0.1:8080 (got '\(url)')")
            }
        }
        switch load {
        case .closed(let c):
            guard c >= 1 else { throw .invalidSpec("concurrency must be ≥ 1 (got \(c))") }
        case .open(let r):
            guard r.isFinite, r > 0 else { throw .invalidSpec("rate must be a positive number of requests per second (got \(r))") }
        }
        guard requests >= 1 else { throw .invalidSpec("requests must be ≥ 1 (got \(requests))") }
        guard warmupRequests >= 0 else { throw .invalidSpec("warmup requests must be ≥ 0 (got \(warmupRequests))") }
        guard timeoutSeconds.isFinite, timeoutSeconds > 0 else {
            throw .invalidSpec("timeoutSeconds must be > 0 (got \(timeoutSeconds))")
        }
        try promptTokens.check("prompt tokens", minimum: 1)
        try maxTokens.check("max tokens", minimum: 1)
        guard promptTokenIDs.lowerBound >= 0, promptTokenIDs.upperBound <= Int(Int32.max) else {
            throw .invalidSpec("promptTokenIDs must lie in 0...\(Int32.max)")
        }
        if let c = conversations {
            guard (1...10_000).contains(c.count) else { throw .invalidSpec("conversations must be in 1...10000 (got \(c.count))") }
            guard (1...1_000).contains(c.turns) else { throw .invalidSpec("turns must be in 1...1000 (got \(c.turns))") }
            guard (1...1_048_576).contains(c.systemTokens) else { throw .invalidSpec("system prompt tokens must be in 1...1048576 (got \(c.systemTokens))") }
            guard (1...1_048_576).contains(c.userTokens) else { throw .invalidSpec("user message tokens must be in 1...1048576 (got \(c.userTokens))") }
        }
        if let s = slo {
            for (n, v) in [("ttft", s.ttftMs), ("tpot", s.tpotMs), ("e2e", s.e2eMs)] {
                if let v, !(v.isFinite && v > 0) { throw .invalidSpec("SLO \(n) must be a positive number of ms (got \(v))") }
            }
        }
    }
}

public enum LoadGenError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidSpec(String)
    /// GET /v1/models failed or listed no model.
    case modelDiscovery(String)
    /// The chat prompt calibration request failed.
    case calibration(String)

    public var description: String {
        switch self {
        case .invalidSpec(let m): return "invalid load spec: \(m)"
        case .modelDiscovery(let m): return "could not find the model to ask for: \(m); check the URL and API key, or name the model explicitly"
        case .calibration(let m): return "could not calibrate the chat prompt length: \(m); check the server, or use completions (not chat)"
        }
    }
}

/// SplitMix64: a small, fast, seedable generator (Steele, Lea & Flood 2014), so runs repeat.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
