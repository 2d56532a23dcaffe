import Foundation
import Optimizer

/// The built-in engine, launched as `autoglm serve` (the given executable, normally this same
/// binary) on 127.0.0.1: `replicas` processes of `threads` threads each.
public struct NativeBackend: ServingBackend {
    public let executable: String
    public let modelPath: String
    public let facts: ModelFacts
    /// Context per sequence the servers are started with.
    public let contextLength: Int
    public var name: String { "native" }

    public init(executable: String, modelPath: String, facts: ModelFacts, contextLength: Int) {
        self.executable = executable; self.modelPath = modelPath; self.facts = facts; self.contextLength = contextLength
    }

    /// `serve`'s defaults on a machine of `cores` cores, for the knobs a study pins instead of searching.
    public func defaults(cores: Int) -> [String: KnobValue] {
        [NativeKnob.threads: .int(max(cores, 1)), NativeKnob.maxSeqs: .int(8), NativeKnob.maxBatchedTokens: .int(512),
         NativeKnob.kvCacheMB: .int(512), NativeKnob.kvCacheType: .category("f16"), NativeKnob.batchWaitMs: .int(0),
         NativeKnob.replicas: .int(1)]
    }

    public func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace {
        try ServingSpaces.native(machine: machine, model: facts, tokensPerSequence: tokensPerSequence)
    }

    public func settings(_ c: Config) -> BackendSettings {
        var s = BackendSettings(type: "native")
        s.threads = c.int(NativeKnob.threads)
        s.maxSeqs = c.int(NativeKnob.maxSeqs)
        s.maxBatchedTokens = c.int(NativeKnob.maxBatchedTokens)
        s.kvCacheMB = c.int(NativeKnob.kvCacheMB)
        s.kvCacheType = c.string(NativeKnob.kvCacheType)
        s.batchWaitMs = c.int(NativeKnob.batchWaitMs)
        s.replicas = c.int(NativeKnob.replicas)
        s.contextLength = contextLength
        return s
    }

    /// `autoglm serve` arguments for `config` on `port`.
    public func arguments(_ c: Config, port: Int) -> [String] {
        var args = ["serve", "--model", modelPath, "--host", "127.0.0.1", "--port", String(port),
                    "--threads", String(c.int(NativeKnob.threads) ?? 1),
                    "--max-seqs", String(c.int(NativeKnob.maxSeqs) ?? 1),
                    "--max-batched-tokens", String(c.int(NativeKnob.maxBatchedTokens) ?? 512),
                    "--kv-cache-mb", String(c.int(NativeKnob.kvCacheMB) ?? 512),
                    "--ctx", String(contextLength), "--served-model-name", "trial"]
        // Only when they differ from serve's defaults (f16, 0), so the command stays minimal.
        if let t = c.string(NativeKnob.kvCacheType), t != "f16" { args += ["--kv-type", t] }
        if let w = c.int(NativeKnob.batchWaitMs), w != 0 { args += ["--batch-wait-ms", String(w)] }
        return args
    }

    public func launch(_ c: Config, startupTimeout: Double) async throws(TrialFailure) -> TrialHandle {
        let exe = executable
        let procs = try await launchReplicas(count: c.int(NativeKnob.replicas) ?? 1, startupTimeout: startupTimeout,
                                             readyPath: "/readyz") { port in (exe, self.arguments(c, port: port)) }
        return TrialHandle(baseURLs: procs.map(\.baseURL), processes: procs, modelName: "trial")
    }
}
