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
    /// Prompt tokens whose keys/values were already in the cache from earlier turns.
    public var reusedTokens: Int
    /// Prompt tokens computed this turn.
    public var prefilledTokens: Int
    public var generatedTokens: Int
    public var finishReason: FinishReason
    public var droppedMessages: Int
}

/// A multi-turn conversation over one model: renders the whole conversation with the model's
/// chat template each turn, but keeps the KV cache across turns and computes only the tokens
/// after the longest prefix already cached (no re-prefill of the conversation).
///
/// Ownership: one session per caller thread; it owns its cache.
public final class ChatSession {
    public let model: LoadedModel
    let template: ChatTemplate
    public private(set) var system: String?
    public private(set) var messages: [ChatMessage] = []
    let cache: KVCache
    /// The tokens whose keys/values are in `cache`, in order.
    private(set) var cachedTokens: [Int32] = []

    public init(model: LoadedModel, templateSource: String? = nil, system: String? = nil, context: Int? = nil) throws {
        self.model = model
        guard let source = templateSource ?? model.tokenizer.chatTemplate else {
            throw ChatError.noTemplate(path: model.file.path)
        }
        do { template = try ChatTemplate(source: source) } catch { throw ChatError.template(error) }
        self.system = system
        cache = model.model.makeCache(maxPositions: context)
    }

    public var contextSize: Int { cache.maxPositions }

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
                        shouldStop: () -> Bool = { false }, onText: (String) -> Void) throws -> ChatTurnStats {
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
        var common = 0
        while common < min(ids.count - 1, cachedTokens.count), ids[common] == cachedTokens[common] { common += 1 }
        cache.truncate(to: common)
        let delta = Array(ids[common...])
        var detok = StreamingDetokenizer(tokenizer: model.tokenizer)
        let eog = model.tokenizer.endOfGenerationIDs
        var reply: [Int32] = []
        let result = try model.generate(promptIDs: delta, maxTokens: min(maxTokens, contextSize - ids.count),
                                        sampling: sampling, cache: cache) { id in
            if eog.contains(id) { return true }
            reply.append(id)
            onText(detok.append(id))
            return !shouldStop()
        }
        onText(detok.flush())
        let all = ids + result.generatedIDs
        cachedTokens = Array(all.prefix(cache.count))
        messages = history + [ChatMessage(role: "assistant", model.tokenizer.decode(reply))]
        return ChatTurnStats(reusedTokens: common, prefilledTokens: delta.count, generatedTokens: reply.count,
                             finishReason: result.finishReason, droppedMessages: dropped)
    }
}
