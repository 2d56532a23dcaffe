import Foundation
import JSON

// MARK: - Public values

/// A JSON-like value handed to a chat template (tools, tool calls, extra variables).
/// Objects keep their key order, as Python dicts do, so `tojson` renders byte-exactly.
public enum TemplateValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    /// Key/value pairs in insertion order (later duplicates replace earlier values in place).
    case object([(String, TemplateValue)])

    public static func == (a: TemplateValue, b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Looks up a key of an object value.
    public subscript(key: String) -> TemplateValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.last(where: { $0.0 == key })?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

extension TemplateValue {
    /// Bridges an object produced by Foundation's `JSONSerialization` (NSDictionary keys have no order:
    /// they are sorted here; use `TemplateValue.parseJSON` to keep the document's key order).
    public init(jsonObject: Any) throws(ChatTemplateError) {
        switch jsonObject {
        case is NSNull:
            self = .null
        case let s as String:
            self = .string(s)
        case let n as NSNumber:
            let type = String(cString: n.objCType)
            if type == "c" || type == "B" {
                self = .bool(n.boolValue)
            } else if type == "d" || type == "f" {
                self = .double(n.doubleValue)
            } else {
                self = .int(n.intValue)
            }
        case let b as Bool:
            self = .bool(b)
        case let i as Int:
            self = .int(i)
        case let d as Double:
            self = .double(d)
        case let a as [Any]:
            var out: [TemplateValue] = []
            out.reserveCapacity(a.count)
            for e in a { out.append(try TemplateValue(jsonObject: e)) }
            self = .array(out)
        case let d as [String: Any]:
            var pairs: [(String, TemplateValue)] = []
            for k in d.keys.sorted() {
                if let v = d[k] { pairs.append((k, try TemplateValue(jsonObject: v))) }
            }
            self = .object(pairs)
        default:
            throw ChatTemplateError.invalidJSON("unsupported JSON object of type \(type(of: jsonObject))")
        }
    }

    /// Parses JSON text, keeping object key order.
    public static func parseJSON(_ text: String) throws(ChatTemplateError) -> TemplateValue {
        do { return TemplateValue(try OrderedJSON.parse(text)) } catch {
            throw .invalidJSON(error.description)
        }
    }

    /// Parses JSON bytes (UTF-8), keeping object key order.
    public static func parseJSON(_ data: Data) throws(ChatTemplateError) -> TemplateValue {
        try parseJSON(String(decoding: data, as: UTF8.self))
    }
}

// MARK: - Messages

/// One part of a message's content given as a list (`{"type": "text", "text": ...}`).
public struct ChatContentPart: Sendable, Equatable {
    public var type: String
    public var text: String?
    /// Further keys of the part (e.g. `image_url`), in order.
    public var fields: [(String, TemplateValue)]

    public init(type: String, text: String? = nil, fields: [(String, TemplateValue)] = []) {
        self.type = type
        self.text = text
        self.fields = fields
    }

    public static func text(_ s: String) -> ChatContentPart { ChatContentPart(type: "text", text: s) }

    public static func == (a: ChatContentPart, b: ChatContentPart) -> Bool {
        a.type == b.type && a.text == b.text && TemplateValue.object(a.fields) == TemplateValue.object(b.fields)
    }

    var templateValue: TemplateValue {
        var pairs: [(String, TemplateValue)] = [("type", .string(type))]
        if let text { pairs.append(("text", .string(text))) }
        pairs.append(contentsOf: fields)
        return .object(pairs)
    }
}

/// A message's content: a string, a list of parts, or absent (`null`, e.g. an assistant turn with tool calls).
public enum ChatContent: Sendable, Equatable {
    case text(String)
    case parts([ChatContentPart])
    case none

    var templateValue: TemplateValue {
        switch self {
        case .text(let s): return .string(s)
        case .parts(let p): return .array(p.map(\.templateValue))
        case .none: return .null
        }
    }
}

/// A chat message as templates see it: a dict with `role`, `content` and optional keys.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: ChatContent
    public var name: String?
    /// OpenAI-style tool calls (`[{"type": "function", "function": {"name", "arguments"}}]`).
    public var toolCalls: [TemplateValue]?
    public var toolCallId: String?
    /// Any further keys (e.g. `reasoning_content`, GLM's `metadata`), in order.
    public var fields: [(String, TemplateValue)]

    public init(role: String, content: ChatContent, name: String? = nil, toolCalls: [TemplateValue]? = nil,
                toolCallId: String? = nil, fields: [(String, TemplateValue)] = []) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallId = toolCallId
        self.fields = fields
    }

    public init(role: String, _ text: String) {
        self.init(role: role, content: .text(text))
    }

    /// Builds a message from a JSON object (`{"role": ..., "content": ..., "tool_calls": ...}`).
    public init(json: TemplateValue) throws(ChatTemplateError) {
        guard case .object(let pairs) = json else { throw .invalidMessage("a message must be a JSON object") }
        guard let role = json["role"]?.stringValue else { throw .invalidMessage("a message needs a string \"role\"") }
        var content: ChatContent = .none
        var name: String?
        var toolCalls: [TemplateValue]?
        var toolCallId: String?
        var fields: [(String, TemplateValue)] = []
        for (k, v) in pairs {
            switch k {
            case "role": continue
            case "content":
                switch v {
                case .string(let s): content = .text(s)
                case .null: content = .none
                case .array(let items):
                    var parts: [ChatContentPart] = []
                    for item in items {
                        guard case .object(let ip) = item, let type = item["type"]?.stringValue else {
                            throw .invalidMessage("content parts must be objects with a string \"type\"")
                        }
                        var text: String?
                        var extra: [(String, TemplateValue)] = []
                        for (pk, pv) in ip where pk != "type" {
                            if pk == "text", case .string(let t) = pv { text = t } else { extra.append((pk, pv)) }
                        }
                        parts.append(ChatContentPart(type: type, text: text, fields: extra))
                    }
                    content = .parts(parts)
                default: throw .invalidMessage("\"content\" must be a string, a list of parts or null")
                }
            case "name":
                guard case .string(let s) = v else { fields.append((k, v)); continue }
                name = s
            case "tool_calls":
                guard case .array(let a) = v else { fields.append((k, v)); continue }
                toolCalls = a
            case "tool_call_id":
                guard case .string(let s) = v else { fields.append((k, v)); continue }
                toolCallId = s
            default:
                fields.append((k, v))
            }
        }
        self.init(role: role, content: content, name: name, toolCalls: toolCalls, toolCallId: toolCallId, fields: fields)
    }

    public static func == (a: ChatMessage, b: ChatMessage) -> Bool {
        a.templateValue == b.templateValue
    }

    /// The dict a template sees: role, content, then name, tool_calls, tool_call_id and the other fields.
    public var templateValue: TemplateValue {
        var pairs: [(String, TemplateValue)] = [("role", .string(role)), ("content", content.templateValue)]
        if let name { pairs.append(("name", .string(name))) }
        if let toolCalls { pairs.append(("tool_calls", .array(toolCalls))) }
        if let toolCallId { pairs.append(("tool_call_id", .string(toolCallId))) }
        pairs.append(contentsOf: fields)
        return .object(pairs)
    }
}

// MARK: - Errors

public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template text is not valid Jinja.
    case syntax(message: String, line: Int, column: Int)
    /// The template uses a Jinja construct this interpreter does not implement.
    case unsupported(construct: String, line: Int, column: Int)
    /// The template called `raise_exception(message)`.
    case raised(message: String)
    /// An error while rendering (type error, undefined value, ...).
    case runtime(message: String, line: Int, column: Int)
    case invalidJSON(String)
    case invalidMessage(String)

    public var description: String {
        switch self {
        case let .syntax(m, l, c): return "chat template syntax error at line \(l), column \(c): \(m)"
        case let .unsupported(what, l, c): return "chat template uses unsupported construct \(what) at line \(l), column \(c)"
        case let .raised(m): return "chat template raised an exception: \(m)"
        case let .runtime(m, l, c): return "chat template error at line \(l), column \(c): \(m)"
        case let .invalidJSON(m): return "invalid JSON: \(m)"
        case let .invalidMessage(m): return "invalid chat message: \(m)"
        }
    }
}

// MARK: - Template

/// A parsed Jinja chat template (the subset real chat templates use), rendered with the semantics of
/// Hugging Face transformers: jinja2 with `trim_blocks=True`, `lstrip_blocks=True`, loop controls,
/// `raise_exception`, `strftime_now` and its `tojson`.
public struct ChatTemplate: Sendable {
    let program: TemplateProgram

    /// Parses the template once. Throws `ChatTemplateError.syntax` or `.unsupported` with line and column.
    public init(source: String) throws(ChatTemplateError) {
        program = try TemplateParser.parse(source)
    }

    /// Renders a conversation. `tools` is passed as `tools` (none when nil, as transformers does);
    /// `extra` adds variables (e.g. `enable_thinking`, `date_string`); `now` is what `strftime_now` formats.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
                       tools: [TemplateValue]? = nil, extra: [String: TemplateValue] = [:],
                       now: Date? = nil) throws(ChatTemplateError) -> String {
        try render(messageValues: messages.map(\.templateValue), addGenerationPrompt: addGenerationPrompt,
                   bosToken: bosToken, eosToken: eosToken, tools: tools, extra: extra, now: now)
    }

    /// Renders messages given as raw values (each normally an object with `role` and `content`).
    public func render(messageValues: [TemplateValue], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
                       tools: [TemplateValue]? = nil, extra: [String: TemplateValue] = [:],
                       now: Date? = nil) throws(ChatTemplateError) -> String {
        var context: [String: Value] = [:]
        for (k, v) in extra { context[k] = Value(v) }
        context["messages"] = .list(messageValues.map { Value($0) })
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context["bos_token"] = .string(bosToken)
        context["eos_token"] = .string(eosToken)
        context["tools"] = tools.map { .list($0.map { Value($0) }) } ?? Value.none
        if context["documents"] == nil { context["documents"] = Value.none }
        let renderer = Renderer(program: program, now: now ?? Date())
        return try renderer.run(context: context)
    }
}
