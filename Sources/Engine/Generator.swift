import Foundation
import GGUF
import Kernels
import Models
import Tokenizers

/// Errors of the generation layer.
public enum EngineError: Error, CustomStringConvertible {
    case emptyPrompt
    case promptTooLong(tokens: Int, context: Int)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty: give at least one token (or allow BOS)"
        case .promptTooLong(let t, let c):
            return "the prompt has \(t) tokens but the context holds \(c); shorten it or raise --ctx"
        }
    }
}

/// A loaded model with its tokenizer and worker threads: what `generate`, `bench` and the
/// server run on. The thread pool is owned here; compute never runs on other threads.
public final class LoadedModel: @unchecked Sendable {
    public let file: GGUFFile
    public let model: any LanguageModel
    public let tokenizer: Tokenizer
    public let pool: ThreadPool

    public init(path: String, threads: Int? = nil) throws {
        let f = try GGUFFile(path: path)
        file = f
        model = try ModelFactory.load(f)
        tokenizer = try Tokenizer.load(from: f)
        pool = ThreadPool(threads: max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount))
    }

    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }
}

/// Why a generation ended.
public enum FinishReason: String, Sendable, Codable {
    case stop      // end-of-generation token or stop condition
    case length    // max tokens reached
    case cancelled
}

public struct GenerationResult: Sendable {
    public var promptIDs: [Int32]
    public var generatedIDs: [Int32]
    public var finishReason: FinishReason
    public var prefillSeconds: Double
    public var decodeSeconds: Double
    /// Time from start to the first generated token.
    public var firstTokenSeconds: Double
}

extension LoadedModel {
    /// Runs prompt prefill (in chunks of `chunk` tokens) then decodes up to `maxTokens`,
    /// calling `onToken` for each generated id (return false to stop). End-of-generation
    /// tokens stop the sequence and are included in `generatedIDs` unless `ignoreEOS`.
    public func generate(promptIDs: [Int32], maxTokens: Int, sampling: SamplingParams,
                         ignoreEOS: Bool = false, cache: KVCache? = nil, chunk: Int = 256,
                         onToken: (Int32) -> Bool = { _ in true }) throws -> GenerationResult {
        guard !promptIDs.isEmpty else { throw EngineError.emptyPrompt }
        let kv = cache ?? model.makeCache()
        guard kv.count + promptIDs.count <= kv.maxPositions else {
            throw EngineError.promptTooLong(tokens: kv.count + promptIDs.count, context: kv.maxPositions)
        }
        var sampler = Sampler(sampling)
        let clock = ContinuousClock()
        let t0 = clock.now
        var logits: [Float] = []
        var i = 0
        while i < promptIDs.count {
            let end = min(promptIDs.count, i + chunk)
            let out = try model.forward([SequenceInput(cache: kv, tokens: Array(promptIDs[i..<end]),
                                                       logits: end == promptIDs.count ? .last : .none)], pool: pool)
            logits = out[0]
            i = end
        }
        let t1 = clock.now
        var generated: [Int32] = []
        var history = promptIDs
        var reason = FinishReason.length
        var firstToken = 0.0
        let eog = tokenizer.endOfGenerationIDs
        while generated.count < maxTokens {
            let next = sampler.sample(&logits, history: history)
            generated.append(next)
            history.append(next)
            if generated.count == 1 { firstToken = seconds(clock.now - t0) }
            if !ignoreEOS && eog.contains(next) { reason = .stop; break }
            if !onToken(next) { reason = .cancelled; break }
            if generated.count >= maxTokens { break }
            if kv.count >= kv.maxPositions { reason = .length; break }
            logits = try model.forward([SequenceInput(cache: kv, tokens: [next])], pool: pool)[0]
        }
        let t2 = clock.now
        return GenerationResult(promptIDs: promptIDs, generatedIDs: generated, finishReason: reason,
                                prefillSeconds: seconds(t1 - t0), decodeSeconds: seconds(t2 - t1),
                                firstTokenSeconds: firstToken)
    }
}

@inline(__always) func seconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}
