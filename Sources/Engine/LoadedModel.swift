import Foundation
import GGUF
import Grammar
import Kernels
import Models
import Synchronization
import Tokenizers

/// Errors of the generation layer (`EngineSession`).
public enum EngineError: Error, CustomStringConvertible {
    case emptyPrompt
    case promptTooLong(tokens: Int, context: Int)
    /// The scheduler refused the request (context, KV budget, shutdown); its message names the fix.
    case rejected(SchedulerError)
    /// A forward pass failed on the engine thread.
    case engineFailed(String)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty: give at least one token (or allow BOS)"
        case .promptTooLong(let t, let c):
            return "the prompt has \(t) tokens but the context holds \(c), leaving no room for an answer; shorten the prompt"
        case .rejected(let e): return e.description
        case .engineFailed(let m): return "\(m); check the model file (autoglm inspect) or report the failing prompt"
        }
    }
}

/// A loaded model with its tokenizer and worker threads: what `generate`, `chat`, `bench` and
/// the server run on, always through a `Scheduler` (directly, or via `EngineSession`), whose
/// engine thread is the only one that drives the pool.
public final class LoadedModel: @unchecked Sendable {
    public let file: GGUFFile
    public let model: any LanguageModel
    public let tokenizer: Tokenizer
    public let pool: ThreadPool
    private let vocabularyOnce = Mutex<TokenVocabulary?>(nil)

    public init(path: String, threads: Int? = nil) throws {
        let f = try GGUFFile(path: path)
        file = f
        model = try ModelFactory.load(f)
        tokenizer = try Tokenizer.load(from: f)
        pool = ThreadPool(threads: max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The vocabulary as bytes for grammar masks, built on first use (a sort of the whole
    /// vocabulary: call it off the engine thread, when a constrained request is prepared).
    public var tokenVocabulary: TokenVocabulary {
        vocabularyOnce.withLock { v in
            if let v { return v }
            let t = tokenizer
            let built = TokenVocabulary(pieces: (0..<t.vocabularySize).map { t.piece(Int32($0)) },
                                        endOfGeneration: t.endOfGenerationIDs)
            v = built
            return built
        }
    }

    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }
}

/// Why a generation ended.
public enum FinishReason: String, Sendable, Codable {
    case stop      // end-of-generation token or stop condition
    case length    // max tokens reached
    case cancelled
}
