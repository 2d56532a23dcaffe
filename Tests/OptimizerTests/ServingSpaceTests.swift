import Foundation
import Optimizer
import Testing

@Suite struct ServingSpaceTests {
    @Test func nativeSpaceNeverProposesWhatCannotFit() async throws {
        // 4 cores, 1 GiB for the trial; 200 MiB of weights; 36 KiB of KV per token; 512-token sequences.
        let machine = MachineLimits(cores: 4, memoryBytes: 1 << 30)
        let model = ModelFacts(weightBytes: 200 << 20, kvBytesPerToken: 36 * 1024, contextLength: 2048)
        let space = try ServingSpaces.native(machine: machine, model: model, tokensPerSequence: 512)
        let perSeq = Int64(36 * 1024 * 512)
        let budget = Int64(1 << 30) - (200 << 20) - ServingSpaces.processOverheadBytes
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
            #expect((1...4).contains(threads))
            #expect(kv >= Int64(seqs) * perSeq, "KV \(kv) for \(seqs) sequences")
            #expect(kv <= budget)
        }
    }

    @Test func impossibleWorkloadIsRejectedUpFront() {
        let machine = MachineLimits(cores: 2, memoryBytes: 300 << 20)
        let model = ModelFacts(weightBytes: 200 << 20, kvBytesPerToken: 1 << 20, contextLength: 2048)
        #expect(throws: SearchSpaceError.self) {
            try ServingSpaces.native(machine: machine, model: model, tokensPerSequence: 512)
        }
        let roomy = MachineLimits(cores: 2, memoryBytes: 64 << 30)
        #expect(throws: SearchSpaceError.self) {
            try ServingSpaces.native(machine: roomy, model: model, tokensPerSequence: 4096)
        }
    }
}
