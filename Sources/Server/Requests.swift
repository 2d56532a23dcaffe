import Engine
import Foundation
import Tokenizers

/// A prompt as given: text or token ids.
enum PromptInput: Sendable {
    case text(String)
    case ids([Int32])
}

/// The fields shared by /v1/completions and /v1/chat/completions, validated.
struct GenerationOptions: Sendable {
    var model: String?
    var maxTokens: Int?
    var sampling = SamplingParams()
    var stop: [String] = []
    var n = 1
    var stream = false
    var includeUsage = false
    var ignoreEOS = false
    /// Top alternatives per token (nil: no logprobs).
    var logprobs: Int?
    var echo = false
    var user: String?
    /// response_format / guided_* / tools (set by `prepare`).
    var structured = StructuredOptions()
}

struct CompletionRequest: Sendable {
    var prompts: [PromptInput]
    var options: GenerationOptions
}

struct ChatMessageInput: Sendable {
    var role: String
    var content: String
    /// An assistant turn's calls, as the template gets them (`arguments` parsed to an object).
    var toolCalls: [TemplateValue]? = nil
    /// A tool result's call id.
    var toolCallId: String? = nil
    var name: String? = nil
}

struct ChatRequest: Sendable {
    var messages: [ChatMessageInput]
    var options: GenerationOptions
}

/// Typed readers over a JSON object that produce OpenAI-style 400s.
struct FieldReader {
    let object: [String: JSONValue]

    init(_ v: JSONValue) throws(APIError) {
        guard case .object(let o) = v else {
            throw APIError.invalid("the request body must be a JSON object, got \(v.typeName)")
        }
        object = o
    }

    func present(_ k: String) -> JSONValue? {
        guard let v = object[k], v != .null else { return nil }
        return v
    }

    func string(_ k: String) throws(APIError) -> String? {
        guard let v = present(k) else { return nil }
        guard case .string(let s) = v else { throw .wrongType(k, expected: "a string", got: v) }
        return s
    }

    func bool(_ k: String) throws(APIError) -> Bool? {
        guard let v = present(k) else { return nil }
        guard case .bool(let b) = v else { throw .wrongType(k, expected: "a boolean", got: v) }
        return b
    }

    func int(_ k: String, _ range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let v = present(k) else { return nil }
        let i: Int
        switch v {
        case .int(let x): i = x
        case .double(let d) where d.rounded() == d && abs(d) < 1e15: i = Int(d)
        default: throw .wrongType(k, expected: "an integer", got: v)
        }
        guard range.contains(i) else {
            throw .outOfRange(k, "must be between \(range.lowerBound) and \(range.upperBound), got \(i)")
        }
        return i
    }

    func number(_ k: String, _ range: ClosedRange<Double>) throws(APIError) -> Double? {
        guard let v = present(k) else { return nil }
        let d: Double
        switch v {
        case .int(let x): d = Double(x)
        case .double(let x): d = x
        default: throw .wrongType(k, expected: "a number", got: v)
        }
        guard d.isFinite, range.contains(d) else {
            throw .outOfRange(k, "must be between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return d
    }
}

enum RequestParser {
    static let maxStops = 4096
    static let maxStopLength = 1024

    static func options(_ r: FieldReader, chat: Bool) throws(APIError) -> GenerationOptions {
        var o = GenerationOptions()
        o.model = try r.string("model")
        let mt = try r.int("max_tokens", 0...Int(Int32.max))
        let mct = try r.int("max_completion_tokens", 0...Int(Int32.max))
        o.maxTokens = mct ?? mt
        try temperatureTopP(r, into: &o)
        if let k = try r.int("top_k", -1...1_000_000) { o.sampling.topK = max(0, k) }
        if let m = try r.number("min_p", 0...1) { o.sampling.minP = Float(m) }
        if let s = try r.int("seed", Int.min...Int.max) { o.sampling.seed = UInt64(bitPattern: Int64(s)) }
        if let p = try r.number("presence_penalty", -2...2) { o.sampling.presencePenalty = Float(p) }
        if let p = try r.number("frequency_penalty", -2...2) { o.sampling.frequencyPenalty = Float(p) }
        if let p = try r.number("repetition_penalty", 0...10) {
            guard p > 0 else { throw .outOfRange("repetition_penalty", "must be > 0, got 0") }
            o.sampling.repetitionPenalty = Float(p)
        }
        if let v = r.present("stop") {
            switch v {
            case .string(let s): o.stop = [s]
            case .array(let a):
                guard a.count <= maxStops else {
                    throw .outOfRange("stop", "may hold at most \(maxStops) strings, got \(a.count)")
                }
                for e in a {
                    guard case .string(let s) = e else { throw .wrongType("stop", expected: "a string or an array of strings", got: e) }
                    o.stop.append(s)
                }
            default: throw .wrongType("stop", expected: "a string or an array of strings", got: v)
            }
            if let long = o.stop.first(where: { $0.utf8.count > maxStopLength }) {
                throw .outOfRange("stop", "strings may be at most \(maxStopLength) bytes, got \(long.utf8.count)")
            }
            o.stop.removeAll { $0.isEmpty }
        }
        o.n = try r.int("n", 1...128) ?? 1
        o.stream = try r.bool("stream") ?? false
        if let so = r.present("stream_options") {
            let sr: FieldReader
            do { sr = try FieldReader(so) } catch { throw .wrongType("stream_options", expected: "an object", got: so) }
            o.includeUsage = try sr.bool("include_usage") ?? false
        }
        o.ignoreEOS = try r.bool("ignore_eos") ?? false
        o.user = try r.string("user")
        if chat {
            let want = try r.bool("logprobs") ?? false
            let top = try r.int("top_logprobs", 0...20)
            if top != nil && !want { throw .invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
            o.logprobs = want ? (top ?? 0) : nil
        } else {
            o.logprobs = try r.int("logprobs", 0...20)
            o.echo = try r.bool("echo") ?? false
        }
        return o
    }

    /// `temperature` (0-2) and `top_p` ((0, 1]), the sampling fields every generation API shares.
    static func temperatureTopP(_ r: FieldReader, into o: inout GenerationOptions) throws(APIError) {
        if let t = try r.number("temperature", 0...2) { o.sampling.temperature = Float(t) }
        if let p = try r.number("top_p", 0...1) {
            guard p > 0 else { throw .outOfRange("top_p", "must be in (0, 1], got 0") }
            o.sampling.topP = Float(p)
        }
    }

    static func completion(_ body: JSONValue) throws(APIError) -> CompletionRequest {
        let r = try FieldReader(body)
        guard let p = r.present("prompt") else { throw .invalid("'prompt' is required", param: "prompt", code: "missing") }
        var prompts: [PromptInput] = []
        switch p {
        case .string(let s): prompts = [.text(s)]
        case .array(let a):
            guard !a.isEmpty else { throw .invalid("'prompt' must not be empty", param: "prompt") }
            if a.allSatisfy({ if case .string = $0 { return true } else { return false } }) {
                for e in a { if case .string(let s) = e { prompts.append(.text(s)) } }
            } else if a.allSatisfy({ if case .int = $0 { return true } else { return false } }) {
                prompts = [.ids(try ids(a))]
            } else if a.allSatisfy({ if case .array = $0 { return true } else { return false } }) {
                for e in a { if case .array(let inner) = e { prompts.append(.ids(try ids(inner))) } }
            } else {
                throw .wrongType("prompt", expected: "a string, an array of strings, or token ids", got: p)
            }
        default: throw .wrongType("prompt", expected: "a string, an array of strings, or token ids", got: p)
        }
        guard prompts.count <= 64 else { throw .outOfRange("prompt", "may hold at most 64 prompts, got \(prompts.count)") }
        return CompletionRequest(prompts: prompts, options: try options(r, chat: false))
    }

    static func ids(_ a: [JSONValue]) throws(APIError) -> [Int32] {
        var out: [Int32] = []
        for e in a {
            guard case .int(let i) = e, let v = Int32(exactly: i) else {
                throw .wrongType("prompt", expected: "token ids (integers)", got: e)
            }
            out.append(v)
        }
        guard !out.isEmpty else { throw .invalid("'prompt' token list must not be empty", param: "prompt") }
        return out
    }

    static func chat(_ body: JSONValue) throws(APIError) -> ChatRequest {
        let r = try FieldReader(body)
        guard let m = r.present("messages") else { throw .invalid("'messages' is required", param: "messages", code: "missing") }
        guard case .array(let arr) = m, !arr.isEmpty else {
            throw .wrongType("messages", expected: "a non-empty array of messages", got: m)
        }
        var messages: [ChatMessageInput] = []
        for (i, e) in arr.enumerated() {
            guard case .object(let o) = e, case .string(let role)? = o["role"] else {
                throw .invalid("'messages[\(i)]' must be an object with a string 'role'", param: "messages")
            }
            guard ["system", "user", "assistant", "developer", "tool"].contains(role) else {
                throw .invalid("'messages[\(i)].role' must be system, user, assistant, developer or tool, got '\(role)'", param: "messages")
            }
            var content = ""
            switch o["content"] ?? .null {
            case .string(let s): content = s
            case .null: content = ""
            case .array(let parts):
                for part in parts {
                    guard case .object(let po) = part, case .string(let t)? = po["text"] else {
                        throw .invalid("'messages[\(i)].content' parts must be {\"type\": \"text\", \"text\": ...}", param: "messages")
                    }
                    content += t
                }
            case let other: throw .wrongType("messages[\(i)].content", expected: "a string or an array of text parts", got: other)
            }
            var msg = ChatMessageInput(role: role == "developer" ? "system" : role, content: content)
            if case .string(let n)? = o["name"] { msg.name = n }
            if role == "tool" {
                guard case .string(let id)? = o["tool_call_id"], !id.isEmpty else {
                    throw .invalid("'messages[\(i)]' has role tool but no 'tool_call_id' (the id of the call it answers)", param: "messages")
                }
                msg.toolCallId = id
            }
            if let tc = o["tool_calls"], tc != .null {
                guard role == "assistant" else { throw .invalid("'messages[\(i)].tool_calls' is only allowed on assistant messages", param: "messages") }
                msg.toolCalls = try toolCalls(tc, message: i)
            }
            messages.append(msg)
        }
        return ChatRequest(messages: messages, options: try options(r, chat: true))
    }

    /// An assistant message's `tool_calls`, checked and made template-ready: each
    /// `{"id", "type": "function", "function": {"name", "arguments": "<JSON object text>"}}`,
    /// with `arguments` parsed (templates write it with `tojson`).
    static func toolCalls(_ v: JSONValue, message i: Int) throws(APIError) -> [TemplateValue] {
        let p = "messages[\(i)].tool_calls"
        guard case .array(let calls) = v else { throw .wrongType(p, expected: "an array of tool calls", got: v) }
        var out: [TemplateValue] = []
        for (k, c) in calls.enumerated() {
            guard case .object(let o) = c, case .object(let f)? = o["function"], case .string(let name)? = f["name"] else {
                throw .invalid("'\(p)[\(k)]' must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", param: "messages")
            }
            let id: String? = if case .string(let id)? = o["id"] { id } else { nil }
            out.append(try templateCall(id: id, name: name, arguments: f["arguments"], path: "\(p)[\(k)].function", param: "messages"))
        }
        return out
    }

    /// One call as the chat template gets it: `{"id", "type": "function", "function": {"name",
    /// "arguments"}}` with `arguments` (JSON object text, or an object) parsed. `path` is where
    /// the call's name and arguments were, for errors.
    static func templateCall(id: String?, name: String, arguments: JSONValue?, path p: String, param: String) throws(APIError) -> TemplateValue {
        var args: TemplateValue = .object([])
        switch arguments ?? .null {
        case .string(let text):
            guard let parsed = try? TemplateValue.parseJSON(text), case .object = parsed else {
                throw .invalid("'\(p).arguments' must be a JSON object encoded as a string, got '\(text.prefix(80))'", param: param)
            }
            args = parsed
        case .object:
            if let parsed = try? TemplateValue.parseJSON((arguments ?? .null).serialized()) { args = parsed }
        case .null: break
        case let other: throw .wrongType("\(p).arguments", expected: "a string of JSON", got: other)
        }
        var call: [(String, TemplateValue)] = []
        if let id { call.append(("id", .string(id))) }
        call.append(("type", .string("function")))
        call.append(("function", .object([("name", .string(name)), ("arguments", args)])))
        return .object(call)
    }
}
