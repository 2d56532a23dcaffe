import Foundation
import Optimizer
import Spec

/// llama.cpp's `llama-server`, started as `replicas` subprocesses on 127.0.0.1 with `-t -np -b -ub
/// -c -ctk -ctv -fa` from the configuration. The context is parallel × tokens per sequence, so each slot
/// holds a whole sequence of the workload.
public struct LlamaCppBackend: ServingBackend {
    public let executable: String
    public let modelPath: String
    public let facts: ModelFacts
    /// Positions one sequence of the workload needs (the per-slot context).
    public let contextPerSlot: Int
    public var name: String { "llamacpp" }

    public init(executable: String, modelPath: String, facts: ModelFacts, contextPerSlot: Int) {
        self.executable = executable; self.modelPath = modelPath; self.facts = facts; self.contextPerSlot = contextPerSlot
    }

    /// llama-server's own defaults on a machine of `cores` cores, for the knobs a study pins instead of searching.
    public func defaults(cores: Int) -> [String: KnobValue] {
        [LlamaCppKnob.threads: .int(max(cores, 1)), LlamaCppKnob.parallel: .int(1), LlamaCppKnob.batch: .int(2048),
         LlamaCppKnob.ubatch: .int(512), LlamaCppKnob.cacheType: .category("f16"), LlamaCppKnob.flashAttention: .category("off"),
         LlamaCppKnob.replicas: .int(1)]
    }

    /// Finds `llama-server`: the explicit path, then $AUTOGLM_LLAMA_SERVER, then the copy
    /// bench/build-llama-server.sh builds, then $PATH. Nil when none is executable.
    public static func locate(explicit: String?, environment env: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let e = explicit { return fm.isExecutableFile(atPath: e) ? e : nil }
        if let e = env["AUTOGLM_LLAMA_SERVER"], !e.isEmpty { candidates.append(e) }
        let peers = env["AUTOGLM_PEERS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.cache/autoglm/peers")
        candidates.append(peers + "/llama-server/bin/llama-server")
        for dir in (env["PATH"] ?? "").split(separator: ":") { candidates.append(String(dir) + "/llama-server") }
        return candidates.first { fm.isExecutableFile(atPath: $0) }
    }

    public func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace {
        try Self.space(machine: machine, model: facts, tokensPerSequence: tokensPerSequence)
    }

    public func settings(_ c: Config) -> ServingSettings {
        var b = BackendSpec()
        b.type = .llamacpp
        b.threads = c.int(LlamaCppKnob.threads)
        b.maxSeqs = c.int(LlamaCppKnob.parallel)
        b.maxBatchedTokens = c.int(LlamaCppKnob.batch)
        b.ubatchTokens = c.int(LlamaCppKnob.ubatch)
        b.kvCacheType = c.string(LlamaCppKnob.cacheType).flatMap { KVCacheType(rawValue: $0) }
        b.flashAttention = c.string(LlamaCppKnob.flashAttention).map { $0 == "on" }
        b.contextLength = contextPerSlot
        return ServingSettings(backend: b, replicas: c.int(LlamaCppKnob.replicas))
    }

    /// llama-server arguments for `config` on `port`: the rule `serve --config` uses
    /// (`serveArguments`) applied to the configuration's backend section, served as "trial", no GPUs.
    /// `-c` is parallel × the per-slot context, so each slot holds a whole sequence of the workload.
    public func arguments(_ c: Config, port: Int) -> [String] {
        Self.serveArguments(backend: settings(c).backend, gpus: 0, modelPath: modelPath, servedModelName: "trial", port: port)
    }

    /// llama.cpp server's space: `-t`, `-np`, `-b`, `-ub`, cache type, flash attention. The context
    /// (`-c`) is parallel × `tokensPerSequence`, so every slot holds a whole sequence. Constraints:
    /// ubatch ≤ batch; a quantized V cache needs flash attention (llama.cpp refuses it otherwise);
    /// replicas × threads ≤ cores; every replica's weights + KV + overhead fit in memory together.
    public static func space(machine: MachineLimits, model: ModelFacts, tokensPerSequence: Int,
                                maxParallelCap: Int = 64) throws -> SearchSpace {
        let tokens = Int64(max(tokensPerSequence, 16))
        let kvBudget = machine.memoryBytes - model.weightBytes - ModelFacts.processOverheadBytes
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
                return replicas * (model.weightBytes + kv + ModelFacts.processOverheadBytes) <= machine.memoryBytes
            },
        ])
    }

    public func launch(_ c: Config, startupTimeout: Double) async throws(TrialFailure) -> TrialHandle {
        let exe = executable
        // llama-server's /health answers 503 while the model loads and 200 once it can serve.
        let procs = try await launchReplicas(count: c.int(LlamaCppKnob.replicas) ?? 1, startupTimeout: startupTimeout,
                                             readyPath: "/health") { port in
            (exe, self.arguments(c, port: port))
        }
        return TrialHandle(baseURLs: procs.map(\.baseURL), processes: procs, modelName: "trial")
    }
}

extension LlamaCppBackend {
    /// `llama-server` arguments that serve the spec's backend settings on 127.0.0.1:`port` under
    /// `servedModelName`. Unset fields keep llama-server's defaults. `backend.contextLength` is per
    /// sequence and llama-server's `-c` is the whole cache, shared by `-np` slots, so `-c` is their
    /// product. GPU layers: `backend.gpuLayers`, else all of them when the spec requests GPUs.
    public static func serveArguments(backend b: BackendSpec, gpus: Int, modelPath: String,
                                      servedModelName: String, port: Int) -> [String] {
        var a = ["-m", modelPath, "--host", "127.0.0.1", "--port", String(port), "--alias", servedModelName,
                 "--metrics", "--no-webui"]
        if let t = b.threads { a += ["-t", String(t)] }
        if let np = b.maxSeqs { a += ["-np", String(np)] }
        if let c = b.contextLength { a += ["-c", String(c * (b.maxSeqs ?? 1))] }
        if let v = b.maxBatchedTokens { a += ["-b", String(v)] }
        if let v = b.ubatchTokens { a += ["-ub", String(v)] }
        if let k = b.kvCacheType { a += ["-ctk", k.rawValue, "-ctv", k.rawValue] }
        if let fa = b.flashAttention { a += ["-fa", fa ? "on" : "off"] }
        if b.prefixCache == false { a += ["--no-cache-prompt"] }
        if let ngl = b.gpuLayers ?? (gpus > 0 ? BackendSpec.allGPULayers : nil) { a += ["-ngl", String(ngl)] }
        return a
    }
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
