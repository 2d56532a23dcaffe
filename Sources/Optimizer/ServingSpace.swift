import Foundation

/// What the machine offers a trial.
public struct MachineLimits: Sendable, Equatable, Codable {
    public var cores: Int
    /// Bytes a trial may use in total (model weights + KV cache + overhead).
    public var memoryBytes: Int64
    public init(cores: Int, memoryBytes: Int64) { self.cores = cores; self.memoryBytes = memoryBytes }

    /// This machine: active cores and MemAvailable from /proc/meminfo (physical memory elsewhere),
    /// keeping 20% in reserve.
    public static func current() -> MachineLimits {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var available = Int64(ProcessInfo.processInfo.physicalMemory)
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let parts = line.split(separator: " ")
                if parts.count >= 2, let kb = Int64(parts[1]) { available = kb * 1024 }
            }
        }
        // Rounded down to 256 MiB so that small fluctuations do not change the space's bounds.
        let usable = available / 10 * 8
        return MachineLimits(cores: max(cores, 1), memoryBytes: (usable >> 28) << 28)
    }
}

/// What the model needs.
public struct ModelFacts: Sendable, Equatable, Codable {
    public var weightBytes: Int64
    /// KV-cache bytes per token position (all layers, K and V).
    public var kvBytesPerToken: Int
    public var contextLength: Int
    public init(weightBytes: Int64, kvBytesPerToken: Int, contextLength: Int) {
        self.weightBytes = weightBytes; self.kvBytesPerToken = kvBytesPerToken; self.contextLength = contextLength
    }
}

/// Knob names of the native engine's space (the spec's backend fields).
public enum NativeKnob {
    public static let threads = "threads"
    public static let maxSeqs = "maxSeqs"
    public static let maxBatchedTokens = "maxBatchedTokens"
    public static let kvCacheMB = "kvCacheMB"
}

public enum ServingSpaces {
    /// Fixed overhead of a server process besides weights and KV cache (runtime, buffers).
    public static let processOverheadBytes: Int64 = 256 << 20

    /// The native engine's space for a workload whose sequences need `tokensPerSequence` positions
    /// (longest prompt + max output). Bounds come from the machine (threads ≤ cores, memory) and the
    /// model (context, KV bytes per token); the constraints keep every proposal launchable:
    /// the KV cache holds maxSeqs full sequences, and weights + KV + overhead fit in memory.
    public static func native(machine: MachineLimits, model: ModelFacts, tokensPerSequence: Int,
                              maxSeqsCap: Int = 64) throws -> SearchSpace {
        let perSeqBytes = Int64(max(model.kvBytesPerToken, 1)) * Int64(max(tokensPerSequence, 16))
        let kvBudget = machine.memoryBytes - model.weightBytes - processOverheadBytes
        guard kvBudget >= perSeqBytes, tokensPerSequence <= model.contextLength else {
            throw SearchSpaceError.noFeasibleConfig(tried: 0)
        }
        let seqsThatFit = Int(min(kvBudget / perSeqBytes, Int64(maxSeqsCap)))
        let minKVMB = Int((perSeqBytes + (1 << 20) - 1) >> 20)
        let maxKVMB = max(minKVMB, Int(min(kvBudget >> 20, Int64(minKVMB) * Int64(seqsThatFit) * 2)))
        let cores = max(machine.cores, 1)
        return try SearchSpace(knobs: [
            Knob(NativeKnob.threads, .int(1...cores)),
            Knob(NativeKnob.maxSeqs, .logInt(1...max(seqsThatFit, 1))),
            Knob(NativeKnob.maxBatchedTokens, .logInt(16...2048)),
            Knob(NativeKnob.kvCacheMB, .logInt(minKVMB...maxKVMB)),
        ], constraints: [
            SpaceConstraint("KV cache holds maxSeqs sequences of \(tokensPerSequence) tokens") { c in
                let kv = Int64(c.int(NativeKnob.kvCacheMB) ?? 0) << 20
                return kv >= Int64(c.int(NativeKnob.maxSeqs) ?? Int.max) * perSeqBytes
            },
            SpaceConstraint("weights + KV cache fit in \(machine.memoryBytes >> 20) MiB") { c in
                let kv = Int64(c.int(NativeKnob.kvCacheMB) ?? Int.max >> 21) << 20
                return model.weightBytes + kv + processOverheadBytes <= machine.memoryBytes
            },
        ])
    }
}
