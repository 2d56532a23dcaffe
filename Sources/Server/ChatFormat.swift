import Core
import Tokenizers

/// Renders chat messages into a prompt. Until the Jinja `ChatTemplate` renderer lands in
/// Tokenizers, the server recognises the two prompt formats of the test models from the
/// vocabulary: Gemma turns (`<start_of_turn>`) and ChatML (`<|im_start|>`, Qwen).
/// The model's own `tokenizer.chat_template` is used whenever it parses; these are the fallback.
struct ChatFormat: Sendable {
    enum Kind: Sendable { case gemma, chatml }
    let kind: Kind?
    /// The model's own `tokenizer.chat_template` (Jinja subset), preferred when it parses.
    let template: ChatTemplate?
    let tokenizer: Tokenizer

    init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
        template = tokenizer.chatTemplate.flatMap { try? ChatTemplate(source: $0) }
        if tokenizer.tokenID("<start_of_turn>") != nil { kind = .gemma }
        else if tokenizer.tokenID("<|im_start|>") != nil { kind = .chatml }
        else { kind = nil }
    }

    var available: Bool { template != nil || kind != nil }

    /// Prompt token ids for the messages (BOS once). Special tokens are parsed in the text the
    /// template writes, never in what the messages say: a role marker typed into a message stays
    /// text.
    func encode(_ messages: [ChatMessageInput], tools: [TemplateValue]?) throws(APIError) -> (ids: [Int32], text: String) {
        let text = try render(messages, tools: tools)
        let literal = try contentRanges(messages, in: text)
        var ids = tokenizer.encode(text, addBOS: true, parseSpecial: true, literal: literal)
        // Templates that write the BOS text themselves would otherwise get it twice.
        if let bos = tokenizer.bosID, ids.count >= 2, ids[0] == bos, ids[1] == bos { ids.removeFirst() }
        return (ids, text)
    }

    /// UTF-8 byte ranges of each message's content in the rendered prompt, found in order (as
    /// written, else trimmed, as templates often `trim` it). A content the template changed beyond
    /// that cannot be located; if it holds control-token text it is refused rather than parsed.
    func contentRanges(_ messages: [ChatMessageInput], in text: String) throws(APIError) -> [Range<Int>] {
        let bytes = Array(text.utf8)
        var cursor = 0
        var ranges: [Range<Int>] = []
        for (i, m) in messages.enumerated() where !m.content.isEmpty {
            var found: Range<Int>?
            for candidate in [m.content, m.content.trimmingWhitespace()] where !candidate.isEmpty {
                if let r = bytes[cursor...].firstRange(of: Array(candidate.utf8)) { found = r; break }
            }
            if let found {
                ranges.append(found)
                cursor = found.upperBound
            } else if let marker = tokenizer.controlTokenTexts(in: m.content).first {
                throw APIError.invalid("messages[\(i)].content contains the control token text '\(marker)', which this model's chat template changes beyond recognition; remove it",
                                       param: "messages", code: "invalid_content")
            }
        }
        return ranges
    }

    func render(_ messages: [ChatMessageInput], tools: [TemplateValue]? = nil) throws(APIError) -> String {
        if let template {
            do {
                let values = messages.map {
                    ChatMessage(role: $0.role, content: .text($0.content), name: $0.name, toolCalls: $0.toolCalls,
                                toolCallId: $0.toolCallId)
                }
                return try template.render(messages: values, addGenerationPrompt: true, bosToken: tokenizer.bosText,
                                           eosToken: tokenizer.eosText, tools: tools)
            } catch {
                throw APIError.invalid("the model's chat template could not render these messages: \(error)",
                                       param: "messages", code: "chat_template_error")
            }
        }
        if tools != nil || messages.contains(where: { $0.toolCalls != nil || $0.role == "tool" }) {
            throw APIError.invalid("this model has no chat template that can show tools or tool results; call it without 'tools'",
                                   param: "tools", code: "tools_unsupported")
        }
        switch kind {
        case .gemma:
            // Gemma has no system role: the system text opens the first user turn.
            var out = ""
            var pendingSystem = ""
            for m in messages {
                if m.role == "system" { pendingSystem += m.content + "\n\n"; continue }
                let role = m.role == "assistant" ? "model" : "user"
                var content = m.content
                if role == "user", !pendingSystem.isEmpty { content = pendingSystem + content; pendingSystem = "" }
                out += "<start_of_turn>\(role)\n\(content.trimmingWhitespace())<end_of_turn>\n"
            }
            if !pendingSystem.isEmpty { out += "<start_of_turn>user\n\(pendingSystem.trimmingWhitespace())<end_of_turn>\n" }
            return out + "<start_of_turn>model\n"
        case .chatml:
            var out = ""
            if messages.first?.role != "system" {
                out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            return out + "<|im_start|>assistant\n"
        case nil:
            throw APIError(status: .badRequest,
                           message: "this model has no chat format the server knows; use /v1/completions with a rendered prompt",
                           type: "invalid_request_error", param: "messages", code: "no_chat_template")
        }
    }
}

