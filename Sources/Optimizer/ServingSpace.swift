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
    /// KV-cache elements per token position (all layers, K and V); bytes = elements × the cache
    /// type's bytes per element.
    public var kvElementsPerToken: Int
    public var contextLength: Int
    public init(weightBytes: Int64, kvElementsPerToken: Int, contextLength: Int) {
        self.weightBytes = weightBytes; self.kvElementsPerToken = kvElementsPerToken; self.contextLength = contextLength
    }

    /// KV bytes of one position in a cache of `type` (`f32`, `f16`, `q8_0`: 34-byte blocks of 32).
    public func kvBytesPerToken(_ type: String) -> Int64 {
        let e = Int64(max(kvElementsPerToken, 1))
        switch type {
        case "f32": return e * 4
        case "q8_0": return (e * 34 + 31) / 32
        default: return e * 2
        }
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

/// Knob names of llama.cpp's `llama-server` space (its command-line options).
public enum LlamaCppKnob {
    /// `-t`
    public static let threads = "threads"
    /// `-np`: parallel slots (sequences decoded together).
    public static let parallel = "parallel"
    /// `-b`: logical batch (tokens per decode call).
    public static let batch = "batch"
    /// `-ub`: physical micro-batch.
    public static let ubatch = "ubatch"
    /// `-ctk`/`-ctv`: KV cache element type.
    public static let cacheType = "cacheType"
    /// `-fa on|off`.
    public static let flashAttention = "flashAttention"
    /// llama-server processes sharing the machine, as for the native engine.
    public static let replicas = "replicas"
    public static let all = [threads, parallel, batch, ubatch, cacheType, flashAttention, replicas]
}

public enum ServingSpaces {
    /// Fixed overhead of a server process besides weights and KV cache (runtime, buffers).
    public static let processOverheadBytes: Int64 = 256 << 20
    /// Batch-wait choices (ms): none, and a few queue delays that let arrivals share a prefill.
    public static let batchWaitChoices = [0, 5, 20, 100]

    /// The native engine's space for a workload whose sequences need `tokensPerSequence` positions
    /// (longest prompt + max output). Bounds come from the machine (threads ≤ cores, memory) and the
    /// model (context, KV bytes per token); the constraints keep every proposal launchable:
    /// replicas × threads ≤ cores, the KV cache holds maxSeqs full sequences of the chosen KV type,
    /// and every replica's weights + KV + overhead fit in memory together.
    public static func native(machine: MachineLimits, model: ModelFacts, tokensPerSequence: Int,
                              maxSeqsCap: Int = 64) throws -> SearchSpace {
        let tokens = Int64(max(tokensPerSequence, 16))
        let perSeq: @Sendable (String) -> Int64 = { model.kvBytesPerToken($0) * tokens }
        let minPerSeq = perSeq("f16")
        let kvBudget = machine.memoryBytes - model.weightBytes - processOverheadBytes
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
            Knob(NativeKnob.batchWaitMs, .ordinal(batchWaitChoices)),
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
                return replicas * (model.weightBytes + kv + processOverheadBytes) <= machine.memoryBytes
            },
        ])
    }

    /// llama.cpp server's space: `-t`, `-np`, `-b`, `-ub`, cache type, flash attention. The context
    /// (`-c`) is parallel × `tokensPerSequence`, so every slot holds a whole sequence. Constraints:
    /// ubatch ≤ batch; a quantized V cache needs flash attention (llama.cpp refuses it otherwise);
    /// replicas × threads ≤ cores; every replica's weights + KV + overhead fit in memory together.
    public static func llamaCpp(machine: MachineLimits, model: ModelFacts, tokensPerSequence: Int,
                                maxParallelCap: Int = 64) throws -> SearchSpace {
        let tokens = Int64(max(tokensPerSequence, 16))
        let kvBudget = machine.memoryBytes - model.weightBytes - processOverheadBytes
        let minPerSeq = model.kvBytesPerToken("q8_0") * tokens
        guard kvBudget >= minPerSeq, tokensPerSequence <= model.contextLength else {
            throw SearchSpaceError.noFeasibleConfig(tried: 0)
        }
        let parallelThatFits = Int(min(kvBudget / minPerSeq, Int64(maxParallelCap)))
        let cores = max(machine.cores, 1)
        return try SearchSpace(knobs: [
            Knob(LlamaCppKnob.threads, .int(1...cores)),
            Knob(LlamaCppKnob.parallel, .logInt(1...max(parallelThatFits, 1))),
            Knob(LlamaCppKnob.batch, .logInt(32...2048)),
            Knob(LlamaCppKnob.ubatch, .logInt(32...2048)),
            Knob(LlamaCppKnob.cacheType, .categorical(["f16", "q8_0"])),
            Knob(LlamaCppKnob.flashAttention, .categorical(["on", "off"])),
            Knob(LlamaCppKnob.replicas, .int(1...cores)),
        ], constraints: [
            SpaceConstraint("replicas × threads ≤ \(cores) cores") { c in
                (c.int(LlamaCppKnob.replicas) ?? 1) * (c.int(LlamaCppKnob.threads) ?? 1) <= cores
            },
            SpaceConstraint("ubatch ≤ batch") { c in
                (c.int(LlamaCppKnob.ubatch) ?? 0) <= (c.int(LlamaCppKnob.batch) ?? 0)
            },
            SpaceConstraint("a q8_0 V cache needs flash attention") { c in
                c.string(LlamaCppKnob.cacheType) != "q8_0" || c.string(LlamaCppKnob.flashAttention) == "on"
            },
            SpaceConstraint("replicas × (weights + KV cache) fit in \(machine.memoryBytes >> 20) MiB") { c in
                let kv = Int64(c.int(LlamaCppKnob.parallel) ?? Int.max >> 40) * tokens
                    * model.kvBytesPerToken(c.string(LlamaCppKnob.cacheType) ?? "f16")
                let replicas = Int64(c.int(LlamaCppKnob.replicas) ?? 1)
                return replicas * (model.weightBytes + kv + processOverheadBytes) <= machine.memoryBytes
            },
        ])
    }
}

extension SearchSpace {
    /// The same space with some knobs pinned to one value each (the others still searched), e.g.
    /// to search only threads and maxSeqs. Throws for an unknown knob or a value of the wrong kind
    /// or outside the knob's bounds.
    public func fixing(_ values: [String: KnobValue]) throws(SearchSpaceError) -> SearchSpace {
        for name in values.keys where !knobs.contains(where: { $0.name == name }) { throw .unknownKnob(name) }
        let ks = try knobs.map { k throws(SearchSpaceError) -> Knob in
            guard let v = values[k.name] else { return k }
            switch (k.kind, v) {
            case (.int(let r), .int(let x)), (.logInt(let r), .int(let x)):
                guard r.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .ordinal([x]))
            case (.ordinal(let xs), .int(let x)):
                guard xs.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .ordinal([x]))
            case (.categorical(let cs), .category(let s)):
                guard cs.contains(s) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .categorical([s]))
            case (.real(let r), .real(let x)):
                guard r.contains(x) else { throw .wrongValue(knob: k.name, value: v) }
                return Knob(k.name, .real(x...x))
            default:
                throw .wrongValue(knob: k.name, value: v)
            }
        }
        return try SearchSpace(knobs: ks, constraints: constraints)
    }

    /// Parses a knob's value from text the way the knob is typed ("8", "f16", "0.5", "true").
    public func value(of name: String, from text: String) throws(SearchSpaceError) -> KnobValue {
        guard let k = knobs.first(where: { $0.name == name }) else { throw .unknownKnob(name) }
        switch k.kind {
        case .int, .logInt, .ordinal:
            guard let x = Int(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .int(x)
        case .real:
            guard let x = Double(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .real(x)
        case .categorical: return .category(text)
        case .bool:
            guard let b = Bool(text) else { throw .wrongValue(knob: name, value: .category(text)) }
            return .bool(b)
        }
    }
}
