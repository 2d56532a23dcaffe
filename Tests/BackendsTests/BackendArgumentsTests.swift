import Backends
import Core
import Foundation
import Optimizer
import Spec
import Testing

@Suite struct BackendArgumentsTests {
    /// `backend.prefixCache` means the same on every engine: on by default, `false` turns each
    /// engine's own prefix caching off; backend openai notes it as the upstream's business.
    @Test func prefixCacheOffReachesEveryEngine() throws {
        let head = "apiVersion: autoglm/v1\nname: t\nmodel:\n  ref: gemma3-270m\nbackend:\n"
        func spec(_ backend: String) throws -> Spec {
            try SpecLoader.load(yaml: head + backend + "  prefixCache: false\n", file: "t.yaml", variables: [:]).spec
        }
        let native = try spec("  type: native\n")
        #expect(native.backend.prefixCache == false)
        #expect(NativeBackend.serveArguments(backend: native.backend, modelPath: "/m.gguf", servedModelName: "m", port: 1)
            .contains("--no-prefix-cache"))
        #expect(!NativeBackend.serveArguments(backend: BackendSpec(), modelPath: "/m.gguf", servedModelName: "m", port: 1)
            .contains("--no-prefix-cache"))
        let llama = try spec("  type: llamacpp\n")
        #expect(LlamaCppBackend.serveArguments(backend: llama.backend, gpus: 0, modelPath: "/m.gguf", servedModelName: "m", port: 1)
            .contains("--no-cache-prompt"))
        // (A vllm spec also needs a GPU in resources; the backend section alone decides the flag.)
        var vllm = BackendSpec()
        vllm.type = .vllm
        vllm.prefixCache = false
        #expect(VLLMBackend.serveArguments(model: ModelSpec(ref: "THUDM/glm-4-9b-chat-hf"), backend: vllm, gpus: 1, servedModelName: "m",
                                           host: "0.0.0.0", port: 8000).contains("--no-enable-prefix-caching"))
        let printed = SpecEncoder.yaml(native)
        #expect(printed.contains("prefixCache: false"))
        #expect(try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec == native)
        let notes = try SpecLoader.load(yaml: head + "  type: openai\n  url: http://up:8000/v1\n  prefixCache: false\n",
                                        file: "t.yaml", variables: [:]).notes.map(\.message)
        #expect(notes.contains("backend.prefixCache is ignored by backend openai (the upstream owns its engine settings)"))
        let bad = SpecLoader.validate(yaml: head + "  prefixCache: sometimes\n", file: "t.yaml", variables: [:])
        #expect(bad.errors.map(\.description).contains { $0.contains("backend.prefixCache must be true or false, got 'sometimes'") }, "\(bad.errors)")
    }

    /// `backend.speculative` / `speculativeK`: native only, carried to `serve` (and so to `up`,
    /// whose replicas get serve's flags, and to `deploy`, whose pods read the spec); `draft` and
    /// unknown methods refused with the allowed values; k range-checked; other backends refused.
    @Test func speculativeDecodingKeys() throws {
        let head = "apiVersion: autoglm/v1\nname: t\nmodel:\n  ref: gemma3-270m\nbackend:\n"
        let spec = try SpecLoader.load(yaml: head + "  speculative: ngram\n  speculativeK: 8\n", file: "t.yaml", variables: [:]).spec
        #expect(spec.backend.speculative == .ngram && spec.backend.speculativeK == 8)
        let args = NativeBackend.serveArguments(backend: spec.backend, modelPath: "/m.gguf", servedModelName: "m", port: 1)
        #expect(Self.value(args, "--speculative") == "ngram" && Self.value(args, "--speculative-k") == "8")
        #expect(!NativeBackend.serveArguments(backend: BackendSpec(), modelPath: "/m.gguf", servedModelName: "m", port: 1)
            .contains("--speculative"))
        let printed = SpecEncoder.yaml(spec)
        #expect(printed.contains("speculative: ngram") && printed.contains("speculativeK: 8"))
        #expect(try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec == spec)
        // Native trials of `optimize` run the spec's setting; the written-back backend keeps it.
        let native = NativeBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextLength: 256,
                                   speculative: .ngram, speculativeK: 8)
        let d = native.defaults(cores: 2)
        let trial = native.settings(Config(names: Array(d.keys), values: Array(d.values)))
        #expect(trial.backend.speculative == .ngram && trial.backend.speculativeK == 8)
        func errors(_ backend: String) -> [String] {
            SpecLoader.validate(yaml: head + backend, file: "t.yaml", variables: [:]).errors.map(\.description)
        }
        #expect(errors("  speculative: draft\n").contains { $0.contains("backend.speculative: speculative decoding 'draft' (a draft model) is not available yet; use 'ngram'") })
        #expect(errors("  speculative: fast\n").contains { $0.contains("'fast' is not a method; use one of off, ngram, draft") })
        #expect(errors("  speculativeK: 0\n").contains { $0.contains("backend.speculativeK (0) must be between 1 and 32") })
        #expect(errors("  type: llamacpp\n  speculative: ngram\n").contains { $0.contains("backend.speculative is a native-engine setting") })
        #expect(errors("  speculative: off\n").isEmpty)
    }

    static let facts = ModelFacts(weightBytes: 200 << 20, kvElementsPerToken: 18 * 1024, contextLength: 32768)

    /// Value following `flag` in an argument list.
    static func value(_ args: [String], _ flag: String) -> String? {
        guard let i = args.firstIndex(of: flag), i + 1 < args.count else { return nil }
        return args[i + 1]
    }

    @Test func llamaServerGetsEveryKnobAndAContextPerSlot() throws {
        let b = LlamaCppBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextPerSlot: 208)
        let c = Config([LlamaCppKnob.threads: .int(2), LlamaCppKnob.parallel: .int(4), LlamaCppKnob.batch: .int(256),
                        LlamaCppKnob.ubatch: .int(64), LlamaCppKnob.cacheType: .category("q8_0"),
                        LlamaCppKnob.flashAttention: .category("on"), LlamaCppKnob.replicas: .int(1)])
        let a = b.arguments(c, port: 4321)
        #expect(Self.value(a, "-m") == "/m.gguf")
        #expect(Self.value(a, "--port") == "4321")
        #expect(Self.value(a, "--host") == "127.0.0.1")
        #expect(Self.value(a, "-t") == "2")
        #expect(Self.value(a, "-np") == "4")
        #expect(Self.value(a, "-c") == "832", "llama-server splits -c across the slots: 4 × 208")
        #expect(Self.value(a, "-b") == "256")
        #expect(Self.value(a, "-ub") == "64")
        #expect(Self.value(a, "-ctk") == "q8_0" && Self.value(a, "-ctv") == "q8_0")
        #expect(Self.value(a, "-fa") == "on")
        let s = b.settings(c)
        #expect(s.backend.type == .llamacpp && s.backend.threads == 2 && s.backend.maxSeqs == 4 && s.backend.maxBatchedTokens == 256)
        #expect(s.backend.ubatchTokens == 64 && s.backend.kvCacheType == .q8_0 && s.backend.flashAttention == true && s.backend.contextLength == 208)
        #expect(s.replicas == 1)
    }

    @Test func nativeServeGetsEveryKnobAndReplicasBecomeProcesses() throws {
        let b = NativeBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextLength: 224)
        let c = Config([NativeKnob.threads: .int(1), NativeKnob.maxSeqs: .int(6), NativeKnob.maxBatchedTokens: .int(128),
                        NativeKnob.kvCacheMB: .int(96), NativeKnob.kvCacheType: .category("f32"),
                        NativeKnob.batchWaitMs: .int(20), NativeKnob.replicas: .int(2)])
        let a = b.arguments(c, port: 5000)
        #expect(a.first == "serve")
        #expect(Self.value(a, "--threads") == "1")
        #expect(Self.value(a, "--max-seqs") == "6")
        #expect(Self.value(a, "--max-batched-tokens") == "128")
        #expect(Self.value(a, "--kv-cache-mb") == "96")
        #expect(Self.value(a, "--kv-type") == "f32")
        #expect(Self.value(a, "--batch-wait-ms") == "20")
        #expect(Self.value(a, "--ctx") == "224")
        #expect(!a.contains("--replicas"), "replicas are separate processes, not a serve flag")
        let s = b.settings(c)
        #expect(s.replicas == 2 && s.backend.kvCacheType == .f32 && s.backend.batchWaitMs == 20 && s.backend.kvCacheMB == 96)
    }

    /// A trial launches its server with the flags `serve --config` would give the trial's backend
    /// section, under the name "trial".
    @Test func trialFlagsAreTheServeRuleForTheTrialsBackendSection() throws {
        let llama = LlamaCppBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextPerSlot: 208)
        let lc = Config([LlamaCppKnob.threads: .int(3), LlamaCppKnob.parallel: .int(2), LlamaCppKnob.batch: .int(512),
                         LlamaCppKnob.ubatch: .int(128), LlamaCppKnob.cacheType: .category("f16"),
                         LlamaCppKnob.flashAttention: .category("off"), LlamaCppKnob.replicas: .int(2)])
        let la = llama.arguments(lc, port: 4000)
        #expect(la == LlamaCppBackend.serveArguments(backend: llama.settings(lc).backend, gpus: 0, modelPath: "/m.gguf",
                                                     servedModelName: "trial", port: 4000))
        #expect(Self.value(la, "--alias") == "trial")
        #expect(Self.value(la, "-c") == "416", "slots × tokens per sequence: 2 × 208")
        #expect(Self.value(la, "-fa") == "off" && Self.value(la, "-ctk") == "f16")
        #expect(!la.contains("-ngl"), "trials run on the CPU")

        let native = NativeBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextLength: 224)
        let nc = Config([NativeKnob.threads: .int(2), NativeKnob.maxSeqs: .int(4), NativeKnob.maxBatchedTokens: .int(256),
                         NativeKnob.kvCacheMB: .int(64), NativeKnob.kvCacheType: .category("f16"),
                         NativeKnob.batchWaitMs: .int(0), NativeKnob.replicas: .int(1)])
        let na = native.arguments(nc, port: 4001)
        #expect(na == NativeBackend.serveArguments(backend: native.settings(nc).backend, modelPath: "/m.gguf",
                                                   servedModelName: "trial", port: 4001))
        #expect(Self.value(na, "--served-model-name") == "trial" && Self.value(na, "--model") == "/m.gguf")
        #expect(Self.value(na, "--ctx") == "224" && Self.value(na, "--threads") == "2")
        // An unset field keeps serve's default: no flag.
        #expect(!NativeBackend.serveArguments(backend: BackendSpec(), modelPath: "/m.gguf", servedModelName: "x", port: 1)
            .contains("--kv-type"))
    }

    @Test func upstreamURLIsNormalisedAndUnreachableUpstreamTimesOut() async throws {
        let u = UpstreamBackend(url: "http://127.0.0.1:9/v1/", apiKey: nil)
        #expect(u.url == "http://127.0.0.1:9")
        let space = try u.searchSpace(machine: MachineLimits(cores: 2, memoryBytes: 1 << 30), tokensPerSequence: 64)
        #expect(space.grid()?.count == 1)
        do {
            _ = try await u.launch(Config([UpstreamBackend.knob: .category(u.url)]), startupTimeout: 1)
            Issue.record("an upstream on the discard port answered")
        } catch {
            #expect(error.reason == .timeout)
        }
    }

    @Test func explicitLlamaServerPathMustBeExecutable() {
        #expect(LlamaCppBackend.locate(explicit: "/nonexistent/llama-server") == nil)
        #expect(LlamaCppBackend.locate(explicit: "/bin/true") == "/bin/true")
    }

    @Test func everyKnobHasADefaultAndUnsearchedKnobsKeepIt() throws {
        let machine = MachineLimits(cores: 2, memoryBytes: 4 << 30)
        let native = NativeBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextLength: 224)
        let llama = LlamaCppBackend(executable: "/bin/false", modelPath: "/m.gguf", facts: Self.facts, contextPerSlot: 208)
        #expect(Set(native.defaults(cores: 2).keys) == Set(NativeKnob.all))
        #expect(Set(llama.defaults(cores: 2).keys) == Set(LlamaCppKnob.all))
        // serve's own defaults: 2 threads here, 8 sequences, 512 batched tokens, 512 MiB f16 KV, no wait, 1 process.
        let space = try native.searchSpace(machine: machine, tokensPerSequence: 208).discretized(levels: 4)
        let pinned = try space.searching(only: [NativeKnob.maxSeqs], defaults: native.defaults(cores: 2))
        var rng = SeededRNG(seed: 3)
        var seqs = Set<Int>()
        for _ in 0..<40 {
            let c = pinned.decode(try pinned.randomFeasible(&rng))
            #expect(c.int(NativeKnob.threads) == 2 && c.int(NativeKnob.replicas) == 1 && c.int(NativeKnob.batchWaitMs) == 0)
            #expect(c.string(NativeKnob.kvCacheType) == "f16")
            // Discretised knobs take the level nearest the default.
            let mbt = try #require(c.int(NativeKnob.maxBatchedTokens))
            let levels: [Int] = { if case .ordinal(let xs) = space.knobs[2].kind { return xs } else { return [] } }()
            #expect(mbt == levels.min { abs($0 - 512) < abs($1 - 512) })
            seqs.insert(try #require(c.int(NativeKnob.maxSeqs)))
        }
        #expect(seqs.count > 1, "the searched knob still varies")
    }
}
