import Tokenizers

/// Renders chat messages into a prompt. Until the Jinja `ChatTemplate` renderer lands in
/// Tokenizers, the server recognises the two prompt formats of the test models from the
/// vocabulary: Gemma turns (`<start_of_turn>`) and ChatML (`<|im_start|>`, Qwen).
/// Swap `render` for `ChatTemplate(source:).render(...)` when it is available.
struct ChatFormat: Sendable {
    enum Kind: Sendable { case gemma, chatml }
    let kind: Kind?

    init(tokenizer: Tokenizer) {
        if tokenizer.tokenID("<start_of_turn>") != nil { kind = .gemma }
        else if tokenizer.tokenID("<|im_start|>") != nil { kind = .chatml }
        else { kind = nil }
    }

    var available: Bool { kind != nil }

    func render(_ messages: [ChatMessageInput]) throws(APIError) -> String {
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
                out += "<start_of_turn>\(role)\n\(content.trimmingSpaces())<end_of_turn>\n"
            }
            if !pendingSystem.isEmpty { out += "<start_of_turn>user\n\(pendingSystem.trimmingSpaces())<end_of_turn>\n" }
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

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
