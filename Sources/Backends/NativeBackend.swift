import Core
import Foundation
import Optimizer
import Spec

/// The built-in engine, launched as `autoglm serve` (the given executable, normally this same
/// binary) on 127.0.0.1: `replicas` processes of `threads` threads each.
public struct NativeBackend: ServingBackend {
    public let executable: String
    public let modelPath: String
    public let facts: ModelFacts
    /// Context per sequence the servers are started with.
    public let contextLength: Int
    /// The spec's speculative decoding (`backend.speculative`, `speculativeK`): not searched,
    /// carried into every trial so a study measures the engine the spec will run.
    public let speculative: SpeculativeMethod?
    public let speculativeK: Int?
    public var name: String { "native" }
    /// `serve`'s sequences decoded together when neither the flag nor the spec sets them.
    public static let defaultMaxSeqs = 8

    public init(executable: String, modelPath: String, facts: ModelFacts, contextLength: Int,
                speculative: SpeculativeMethod? = nil, speculativeK: Int? = nil) {
        self.executable = executable; self.modelPath = modelPath; self.facts = facts; self.contextLength = contextLength
        self.speculative = speculative; self.speculativeK = speculativeK
    }

    /// `serve`'s defaults on a machine of `cores` cores, for the knobs a study pins instead of searching.
    public func defaults(cores: Int) -> [String: KnobValue] {
        [NativeKnob.threads: .int(max(cores, 1)), NativeKnob.maxSeqs: .int(Self.defaultMaxSeqs), NativeKnob.maxBatchedTokens: .int(512),
         NativeKnob.kvCacheMB: .int(512), NativeKnob.kvCacheType: .category("f16"), NativeKnob.batchWaitMs: .int(0),
         NativeKnob.replicas: .int(1)]
    }

    public func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace {
        try Self.space(machine: machine, model: facts, tokensPerSequence: tokensPerSequence)
    }

    public func settings(_ c: Config) -> ServingSettings {
        var b = BackendSpec()
        b.type = .native
        b.threads = c.int(NativeKnob.threads)
        b.maxSeqs = c.int(NativeKnob.maxSeqs)
        b.maxBatchedTokens = c.int(NativeKnob.maxBatchedTokens)
        b.kvCacheMB = c.int(NativeKnob.kvCacheMB)
        b.kvCacheType = c.string(NativeKnob.kvCacheType).flatMap { KVCacheType(rawValue: $0) }
        b.batchWaitMs = c.int(NativeKnob.batchWaitMs)
        b.contextLength = contextLength
        b.speculative = speculative
        b.speculativeK = speculativeK
        return ServingSettings(backend: b, replicas: c.int(NativeKnob.replicas))
    }

    /// `autoglm serve` arguments for `config` on `port`: the configuration's backend section as
    /// `serve` flags (`serveArguments`), served as "trial".
    public func arguments(_ c: Config, port: Int) -> [String] {
        Self.serveArguments(backend: settings(c).backend, modelPath: modelPath, servedModelName: "trial", port: port)
    }

    /// `autoglm serve` arguments that serve the spec's backend section on 127.0.0.1:`port` under
    /// `servedModelName`: one flag per field that is set (unset fields keep serve's defaults).
    public static func serveArguments(backend b: BackendSpec, modelPath: String, servedModelName: String, port: Int) -> [String] {
        var a = ["serve", "--model", modelPath, "--host", "127.0.0.1", "--port", String(port), "--served-model-name", servedModelName]
        if let v = b.threads { a += ["--threads", String(v)] }
        if let v = b.maxSeqs { a += ["--max-seqs", String(v)] }
        if let v = b.maxBatchedTokens { a += ["--max-batched-tokens", String(v)] }
        if let v = b.kvCacheMB { a += ["--kv-cache-mb", String(v)] }
        if let v = b.contextLength { a += ["--ctx", String(v)] }
        if let t = b.kvCacheType { a += ["--kv-type", t.rawValue] }
        if let w = b.batchWaitMs { a += ["--batch-wait-ms", String(w)] }
        if b.prefixCache == false { a += ["--no-prefix-cache"] }
        if let m = b.speculative { a += ["--speculative", m.rawValue] }
        if let k = b.speculativeK { a += ["--speculative-k", String(k)] }
        return a
    }

    public func launch(_ c: Config, startupTimeout: Double) async throws(TrialFailure) -> TrialHandle {
        let exe = executable
        let procs = try await launchReplicas(count: c.int(NativeKnob.replicas) ?? 1, startupTimeout: startupTimeout,
                                             readyPath: "/readyz") { port in (exe, self.arguments(c, port: port)) }
        return TrialHandle(baseURLs: procs.map(\.baseURL), processes: procs, modelName: "trial")
    }

    /// Batch-wait choices (ms): none, and a few queue delays that let arrivals share a prefill.
    public static let batchWaitChoices = [0, 5, 20, 100]

    /// The native engine's space for a workload whose sequences need `tokensPerSequence` positions
    /// (longest prompt + max output). Bounds come from the machine (threads ≤ cores, memory) and the
    /// model (context, KV bytes per token); the constraints keep every proposal launchable:
    /// replicas × threads ≤ cores, the KV cache holds maxSeqs full sequences of the chosen KV type,
    /// and every replica's weights + KV + overhead fit in memory together.
    public static func space(machine: MachineLimits, model: ModelFacts, tokensPerSequence: Int,
                              maxSeqsCap: Int = 64) throws -> SearchSpace {
        let tokens = Int64(max(tokensPerSequence, 16))
        let perSeq: @Sendable (String) -> Int64 = { model.kvBytesPerToken($0) * tokens }
        let minPerSeq = perSeq("f16")
        let kvBudget = machine.memoryBytes - model.weightBytes - ModelFacts.processOverheadBytes
        guard kvBudget >= minPerSeq, tokensPerSequence <= model.contextLength else {
            throw SearchSpaceError.noFeasibleConfig(tried: 0)
        }
        let seqsThatFit = Int(min(kvBudget / minPerSeq, Int64(maxSeqsCap)))
        let minKVMB = Int((minPerSeq + (1 << 20) - 1) >> 20)
        // Up to twice what maxSeqs full f32 sequences need, within the budget.
        let maxKVMB = max(minKVMB, Int(min(kvBudget >> 20, Int64(minKVMB) * Int64(seqsThatFit) * 4)))
        let cores = max(machine.cores, 1)
        return try SearchSpace(knobs: [
            Knob(NativeKnob.threads, .int(1...cores)),
            Knob(NativeKnob.maxSeqs, .logInt(1...max(seqsThatFit, 1))),
            Knob(NativeKnob.maxBatchedTokens, .logInt(16...2048)),
            Knob(NativeKnob.kvCacheMB, .logInt(minKVMB...maxKVMB)),
            Knob(NativeKnob.kvCacheType, .categorical(["f16", "f32"])),
            Knob(NativeKnob.batchWaitMs, .ordinal(Self.batchWaitChoices)),
            Knob(NativeKnob.replicas, .int(1...cores)),
        ], constraints: [
            SpaceConstraint("replicas × threads ≤ \(cores) cores") { c in
                (c.int(NativeKnob.replicas) ?? 1) * (c.int(NativeKnob.threads) ?? 1) <= cores
            },
            SpaceConstraint("KV cache holds maxSeqs sequences of \(tokensPerSequence) tokens") { c in
                let kv = Int64(c.int(NativeKnob.kvCacheMB) ?? 0) << 20
                return kv >= Int64(c.int(NativeKnob.maxSeqs) ?? Int.max) * perSeq(c.string(NativeKnob.kvCacheType) ?? "f16")
            },
            SpaceConstraint("replicas × (weights + KV cache) fit in \(machine.memoryBytes >> 20) MiB") { c in
                let kv = Int64(c.int(NativeKnob.kvCacheMB) ?? Int.max >> 21) << 20
                let replicas = Int64(c.int(NativeKnob.replicas) ?? 1)
                return replicas * (model.weightBytes + kv + ModelFacts.processOverheadBytes) <= machine.memoryBytes
            },
        ])
    }
}

/// Knob names of the native engine's space (the spec's backend fields, plus `replicas`).
public enum NativeKnob {
    public static let threads = "threads"
    public static let maxSeqs = "maxSeqs"
    public static let maxBatchedTokens = "maxBatchedTokens"
    public static let kvCacheMB = "kvCacheMB"
    public static let kvCacheType = "kvCacheType"
    public static let batchWaitMs = "batchWaitMs"
    /// Server processes sharing the machine (each with `threads` threads), requests spread over them.
    public static let replicas = "replicas"
    public static let all = [threads, maxSeqs, maxBatchedTokens, kvCacheMB, kvCacheType, batchWaitMs, replicas]
}
