import Foundation
import Kernels
import Models
import Tokenizers

/// Errors of a chat session.
public enum ChatError: Error, CustomStringConvertible {
    case noTemplate(path: String)
    case template(ChatTemplateError)
    case conversationTooLong(tokens: Int, context: Int)

    public var description: String {
        switch self {
        case .noTemplate(let p):
            return "\(p) has no chat template (tokenizer.chat_template); pass one with --template FILE"
        case .template(let e):
            return "chat template: \(e)"
        case .conversationTooLong(let t, let c):
            return "the message alone needs \(t) tokens but the context holds \(c); shorten it or raise --ctx"
        }
    }
}

/// What one chat turn cost.
public struct ChatTurnStats: Sendable {
    /// Prompt tokens the scheduler's prefix cache supplied (earlier turns' keys and values).
    public var reusedTokens: Int
    /// Prompt tokens computed this turn (prompt − reused).
    public var prefilledTokens: Int
    public var generatedTokens: Int
    public var finishReason: FinishReason
    public var droppedMessages: Int
}

/// A multi-turn conversation over one model: each turn renders the whole conversation with the
/// model's chat template and submits it as one request through the session's scheduler, the
/// path `serve` takes. The session keeps no KV cache of its own: what an earlier turn computed
/// is reused only through the scheduler's prefix cache (`ChatTurnStats.reusedTokens`).
///
/// Ownership: one session per caller task; it owns its engine (`close()` stops it).
public final class ChatSession {
    public let engine: EngineSession
    let template: ChatTemplate
    public private(set) var system: String?
    public private(set) var messages: [ChatMessage] = []

    /// `context`: most prompt + answer tokens of one turn (default and upper bound: the model's).
    public init(model: LoadedModel, templateSource: String? = nil, system: String? = nil, context: Int? = nil) throws {
        guard let source = templateSource ?? model.tokenizer.chatTemplate else {
            throw ChatError.noTemplate(path: model.file.path)
        }
        do { template = try ChatTemplate(source: source) } catch { throw ChatError.template(error) }
        self.system = system
        let c = model.model.config
        let ctx = min(context ?? c.contextLength, c.contextLength)
        // One conversation at a time; the KV budget holds one whole context.
        engine = EngineSession(model: model, config: SchedulerConfig(
            maxSeqs: 1, contextLength: ctx, kvCacheBlocks: SchedulerConfig().kvBlocks(holding: ctx)))
    }

    public var model: LoadedModel { engine.model }
    public var contextSize: Int { engine.contextLength }

    /// Stops the session's engine.
    public func close() { engine.close() }

    /// Forgets the conversation (the system prompt stays).
    public func reset() {
        messages = []
    }

    /// Sets or clears the system prompt; the conversation goes on.
    public func setSystem(_ text: String?) {
        system = text.flatMap { $0.isEmpty ? nil : $0 }
    }

    func promptTokens(_ msgs: [ChatMessage]) throws -> [Int32] {
        var all = msgs
        if let system { all.insert(ChatMessage(role: "system", system), at: 0) }
        let tok = model.tokenizer
        let text: String
        do {
            text = try template.render(messages: all, addGenerationPrompt: true, bosToken: tok.bosText,
                                       eosToken: tok.eosText)
        } catch { throw ChatError.template(error) }
        var ids = tok.encode(text, addBOS: true, parseSpecial: true)
        // Templates that write the BOS text themselves would otherwise get it twice.
        if let bos = tok.bosID, ids.count >= 2, ids[0] == bos, ids[1] == bos { ids.removeFirst() }
        return ids
    }

    /// Adds the user's message, answers it streaming text through `onText`, and records the
    /// answer (or the part produced before `shouldStop` returned true) in the conversation.
    public func respond(to user: String, maxTokens: Int, sampling: SamplingParams,
                        shouldStop: () -> Bool = { false }, onText: (String) -> Void) async throws -> ChatTurnStats {
        var history = messages + [ChatMessage(role: "user", user)]
        var ids = try promptTokens(history)
        var dropped = 0
        // Keep room for the answer; drop the oldest turns when the conversation outgrows the context.
        let budget = contextSize - min(maxTokens, contextSize / 2)
        while ids.count > budget && history.count > 1 {
            history.removeFirst(min(2, history.count - 1))
            dropped += 1
            ids = try promptTokens(history)
        }
        guard ids.count < contextSize else { throw ChatError.conversationTooLong(tokens: ids.count, context: contextSize) }
        var detok = StreamingDetokenizer(tokenizer: model.tokenizer)
        let eog = model.tokenizer.endOfGenerationIDs
        var reply: [Int32] = []
        let request = GenerationRequest(promptIDs: ids, maxTokens: min(maxTokens, contextSize - ids.count),
                                        sampling: sampling)
        let result = try await engine.run(request) { t in
            if eog.contains(t.id) { return true }
            reply.append(t.id)
            onText(detok.append(t.id))
            return !shouldStop()
        }
        onText(detok.flush())
        messages = history + [ChatMessage(role: "assistant", model.tokenizer.decode(reply))]
        return ChatTurnStats(reusedTokens: result.cachedTokens, prefilledTokens: result.prefilledTokens,
                             generatedTokens: reply.count, finishReason: result.finishReason,
                             droppedMessages: dropped)
    }
}
