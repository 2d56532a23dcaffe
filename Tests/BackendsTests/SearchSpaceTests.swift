import Backends
import Foundation
import Optimizer
import Testing

@Suite struct SearchSpaceTests {
    @Test func nativeSpaceNeverProposesWhatCannotFit() async throws {
        // 4 cores, 1 GiB for the trial; 200 MiB of weights; 18 Ki KV elements (36 KiB at F16) per token; 512-token sequences.
        let machine = MachineLimits(cores: 4, memoryBytes: 1 << 30)
        let model = ModelFacts(weightBytes: 200 << 20, kvElementsPerToken: 18 * 1024, contextLength: 2048)
        let space = try NativeBackend.space(machine: machine, model: model, tokensPerSequence: 512)
        let perSeqF16 = Int64(36 * 1024 * 512)
        let budget = Int64(1 << 30) - (200 << 20) - ModelFacts.processOverheadBytes
        var proposals: [Config] = []
        _ = try await Optimizer.run(space: space, direction: .maximize, options: OptimizerOptions(seed: 4, maxTrials: 12)) { c in
            proposals.append(c)
            let t = Double(c.int(NativeKnob.threads) ?? 1), s = Double(c.int(NativeKnob.maxSeqs) ?? 1)
            return .feasible(Measurement(objective: t * s / (s + 4)))
        }
        #expect(proposals.count == 12)
        for c in proposals {
            let threads = try #require(c.int(NativeKnob.threads))
            let seqs = try #require(c.int(NativeKnob.maxSeqs))
            let kv = Int64(try #require(c.int(NativeKnob.kvCacheMB))) << 20
            let replicas = try #require(c.int(NativeKnob.replicas))
            let perSeq = c.string(NativeKnob.kvCacheType) == "f32" ? 2 * perSeqF16 : perSeqF16
            #expect((1...4).contains(threads))
            #expect(replicas * threads <= 4, "\(replicas) replicas × \(threads) threads on 4 cores")
            #expect(kv >= Int64(seqs) * perSeq, "KV \(kv) for \(seqs) sequences of \(c.string(NativeKnob.kvCacheType) ?? "?")")
            #expect(Int64(replicas) * (kv + (200 << 20) + ModelFacts.processOverheadBytes) <= 1 << 30)
            #expect(kv <= budget)
        }
    }

    @Test func impossibleWorkloadIsRejectedUpFront() {
        let machine = MachineLimits(cores: 2, memoryBytes: 300 << 20)
        let model = ModelFacts(weightBytes: 200 << 20, kvElementsPerToken: 1 << 19, contextLength: 2048)
        #expect(throws: SearchSpaceError.self) {
            try NativeBackend.space(machine: machine, model: model, tokensPerSequence: 512)
        }
        let roomy = MachineLimits(cores: 2, memoryBytes: 64 << 30)
        #expect(throws: SearchSpaceError.self) {
            try NativeBackend.space(machine: roomy, model: model, tokensPerSequence: 4096)
        }
    }

    @Test func llamaCppSpaceKeepsUbatchWithinBatchAndQuantizedVWithFlashAttention() async throws {
        let machine = MachineLimits(cores: 2, memoryBytes: 2 << 30)
        let model = ModelFacts(weightBytes: 250 << 20, kvElementsPerToken: 18 * 1024, contextLength: 32768)
        let space = try LlamaCppBackend.space(machine: machine, model: model, tokensPerSequence: 256)
        var proposals: [Config] = []
        _ = try await Optimizer.run(space: space, direction: .maximize, options: OptimizerOptions(seed: 2, maxTrials: 16)) { c in
            proposals.append(c)
            return .feasible(Measurement(objective: Double(c.int(LlamaCppKnob.parallel) ?? 1)))
        }
        #expect(proposals.count == 16)
        for c in proposals {
            let b = try #require(c.int(LlamaCppKnob.batch)), ub = try #require(c.int(LlamaCppKnob.ubatch))
            #expect(ub <= b)
            let replicas = try #require(c.int(LlamaCppKnob.replicas))
            #expect(replicas * (try #require(c.int(LlamaCppKnob.threads))) <= 2)
            if c.string(LlamaCppKnob.cacheType) == "q8_0" { #expect(c.string(LlamaCppKnob.flashAttention) == "on") }
            // q8_0: 34 bytes per 32 elements; f16: 2 bytes per element.
            let perElement = c.string(LlamaCppKnob.cacheType) == "q8_0" ? 34.0 / 32 : 2
            let kv = Double(try #require(c.int(LlamaCppKnob.parallel))) * 256 * 18 * 1024 * perElement
            #expect(Double(replicas) * (kv + Double(250 << 20) + Double(ModelFacts.processOverheadBytes)) <= Double(2 << 30))
        }
        #expect(Set(proposals.compactMap { $0.string(LlamaCppKnob.cacheType) }).count == 2, "both cache types are tried")
    }

    @Test func pinnedKnobsKeepTheirValueAndBadPinsAreRejected() throws {
        let machine = MachineLimits(cores: 4, memoryBytes: 4 << 30)
        let model = ModelFacts(weightBytes: 200 << 20, kvElementsPerToken: 18 * 1024, contextLength: 2048)
        let space = try NativeBackend.space(machine: machine, model: model, tokensPerSequence: 256)
        let pinned = try space.fixing([NativeKnob.kvCacheType: .category("f16"), NativeKnob.replicas: .int(1),
                                       NativeKnob.batchWaitMs: .int(0)])
        // Pinned knobs add nothing to the initial design's size: 8 wide (kvCacheType one-hot) → 4.
        #expect(space.freeDimension == 8 && space.dimension == 8)
        #expect(pinned.freeDimension == 4 && pinned.dimension == 7)
        var rng = SeededRNG(seed: 9)
        for _ in 0..<50 {
            let c = pinned.decode(try pinned.randomFeasible(&rng))
            #expect(c.string(NativeKnob.kvCacheType) == "f16" && c.int(NativeKnob.replicas) == 1 && c.int(NativeKnob.batchWaitMs) == 0)
        }
        #expect(throws: SearchSpaceError.self) { try space.fixing(["nope": .int(1)]) }
        #expect(throws: SearchSpaceError.self) { try space.fixing([NativeKnob.kvCacheType: .category("q4_0")]) }
        #expect(throws: SearchSpaceError.self) { try space.fixing([NativeKnob.threads: .int(99)]) }
        #expect(throws: SearchSpaceError.self) { try space.fixing([NativeKnob.batchWaitMs: .int(7)]) }
    }
}
