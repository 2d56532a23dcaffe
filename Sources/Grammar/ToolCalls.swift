import Core
import JSON

/// One function a request offers the model (`tools[i].function`).
public struct ToolFunction: Sendable {
    public var name: String
    public var description: String?
    /// The arguments' JSON Schema (nil: any object).
    public var parameters: OrderedJSON?
    public var strict: Bool

    public init(name: String, description: String? = nil, parameters: OrderedJSON? = nil, strict: Bool = false) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
    }
}

/// A tool call read back from the model's text: the function's name and its arguments as the
/// JSON text the model wrote (an object).
public struct ParsedToolCall: Sendable, Equatable {
    public var name: String
    public var arguments: String

    public init(name: String, arguments: String) {
        self.name = name
        self.arguments = arguments
    }
}

/// How a model family writes tool calls in its output, chosen from the model's chat template:
/// - `hermes` (Qwen 2/2.5/3, Hermes, many others): `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`,
///   one block per call;
/// - `glm4` (GLM-4 chat): the function name on the first line, its arguments' JSON object after it;
/// - `llama3` (Llama 3.1+ JSON calls): `{"name": …, "parameters": {…}}`, optionally after `<|python_tag|>`.
public enum ToolCallFormat: String, Sendable, CaseIterable {
    case hermes, glm4, llama3

    /// The format a chat template teaches its model (hermes when the template says nothing).
    public static func detect(template: String?) -> ToolCallFormat {
        guard let t = template else { return .hermes }
        if t.contains("<tool_call>") { return .hermes }
        if t.contains("<|observation|>") { return .glm4 }
        if t.contains("<|python_tag|>") || t.contains("ipython") { return .llama3 }
        return .hermes
    }

    /// Splits a whole output into plain content and tool calls.
    public func parse(_ text: String, tools: [String]) -> (content: String, calls: [ParsedToolCall]) {
        var s = ToolCallStream(format: self, tools: tools)
        var events = s.feed(text)
        events += s.finish()
        var content = ""
        var calls: [ParsedToolCall] = []
        for e in events {
            switch e {
            case .content(let c): content += c
            case .call(let c): calls.append(c)
            }
        }
        return (content, calls)
    }

    /// The grammar of an output that is one or more calls (`parallel`) of the named tool, or of
    /// any of `tools` when `name` is nil: what `tool_choice: required` or a named choice enforces.
    /// Arguments follow each tool's parameter schema.
    public func grammar(tools: [ToolFunction], only name: String? = nil, parallel: Bool,
                        options: JSONSchemaOptions = JSONSchemaOptions()) throws(GrammarError) -> Grammar {
        let chosen = name.map { n in tools.filter { $0.name == n } } ?? tools
        guard !chosen.isEmpty else { throw .invalid("no tool to call: the tool list is empty or does not name '\(name ?? "")'") }
        var b = GrammarBuilder()
        var calls: [[Grammar.Symbol]] = []
        for t in chosen {
            let args: [Grammar.Symbol]
            if let p = t.parameters {
                args = try JSONSchemaGrammar.add(p, to: &b, options: options)
            } else {
                args = try JSONSchemaGrammar.add(.object([Self.member("type", .string("object"))]), to: &b, options: options)
            }
            let nameJSON = Array(OrderedJSON.string(t.name).serialized().utf8)
            switch self {
            case .hermes:
                calls.append(GrammarBuilder.literal("<tool_call>\n{\"name\": ") + GrammarBuilder.literal(nameJSON)
                             + GrammarBuilder.literal(", \"arguments\": ") + args + GrammarBuilder.literal("}\n</tool_call>"))
            case .glm4:
                calls.append(GrammarBuilder.literal(t.name + "\n") + args)
            case .llama3:
                calls.append(GrammarBuilder.literal("{\"name\": ") + GrammarBuilder.literal(nameJSON)
                             + GrammarBuilder.literal(", \"parameters\": ") + args + GrammarBuilder.literal("}"))
            }
        }
        let one = try b.choice(calls)
        var root = one
        // Several calls only where the format can separate them.
        if parallel && self == .hermes { root = one + (try b.star(GrammarBuilder.literal("\n") + one)) }
        let r = try b.add("tool-calls", [root])
        return try b.build(root: r)
    }

    static func member(_ k: String, _ v: OrderedJSON) -> OrderedJSON.Member { OrderedJSON.Member(key: k, value: v) }
}

/// Reads tool calls out of streamed text: content passes through as it comes (holding back only
/// what could be the start of a call marker), a call is reported whole once its text is complete.
/// Text that looks like a call but does not parse as one is given back as content.
public struct ToolCallStream: Sendable {
    public enum Event: Sendable, Equatable {
        case content(String)
        case call(ParsedToolCall)
    }

    let format: ToolCallFormat
    let tools: Set<String>
    /// Text not yet released: a possible marker prefix, or a call being read.
    var pending = ""
    var inCall = false
    /// For glm4/llama3: whether the start of the output was examined yet.
    var decided = false
    /// A call just ended: the whitespace that follows is dropped.
    var afterCall = false

    static let open = "<tool_call>", close = "</tool_call>"

    public init(format: ToolCallFormat, tools: [String]) {
        self.format = format
        self.tools = Set(tools)
    }

    public mutating func feed(_ text: String) -> [Event] {
        pending += text
        switch format {
        case .hermes: return drainHermes(final: false)
        case .glm4, .llama3: return drainWhole(final: false)
        }
    }

    /// The end of the output: whatever is held is released (a complete call, or content).
    public mutating func finish() -> [Event] {
        switch format {
        case .hermes: return drainHermes(final: true)
        case .glm4, .llama3: return drainWhole(final: true)
        }
    }

    mutating func drainHermes(final: Bool) -> [Event] {
        var out: [Event] = []
        while true {
            if inCall {
                guard let end = pending.range(of: Self.close) else {
                    if final {
                        // An unterminated call: a call when its JSON is complete, else content.
                        if let c = Self.hermesCall(pending, tools: tools) { out.append(.call(c)) } else if !pending.isEmpty {
                            out.append(.content(Self.open + pending))
                        }
                        pending = ""
                        inCall = false
                    }
                    return out
                }
                let body = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                inCall = false
                if let c = Self.hermesCall(body, tools: tools) {
                    out.append(.call(c))
                    afterCall = true
                } else {
                    out.append(.content(Self.open + body + Self.close))
                }
                continue
            }
            // Whitespace after a call (between calls) is not content.
            if afterCall {
                pending = String(pending.drop { $0 == "\n" || $0 == " " })
                if pending.isEmpty { return out }
                afterCall = false
            }
            if let start = pending.range(of: Self.open) {
                let before = String(pending[..<start.lowerBound])
                if !before.isEmpty { out.append(.content(before)) }
                pending = String(pending[start.upperBound...])
                inCall = true
                continue
            }
            // Hold back a suffix that could begin the marker.
            let keep = final ? 0 : heldBackCount(Array(pending.suffix(Self.open.count)), markers: [Array(Self.open)])
            let emit = String(pending.dropLast(keep))
            if !emit.isEmpty { out.append(.content(emit)) }
            pending = String(pending.suffix(keep))
            return out
        }
    }

    /// `{"name": …, "arguments": {…}}` (arguments may also be a JSON string holding the object).
    static func hermesCall(_ body: String, tools: Set<String>) -> ParsedToolCall? {
        let text = body.trimmingWhitespace()
        guard let v = try? OrderedJSON.parse(text), case .string(let name)? = v["name"], tools.contains(name) else { return nil }
        return call(name, v["arguments"] ?? v["parameters"])
    }

    static func call(_ name: String, _ args: OrderedJSON?) -> ParsedToolCall? {
        switch args {
        case nil, .null?: return ParsedToolCall(name: name, arguments: "{}")
        case .object?: return args.map { ParsedToolCall(name: name, arguments: $0.serialized()) }
        case .string(let s)?:
            guard let inner = try? OrderedJSON.parse(s), case .object = inner else { return nil }
            return ParsedToolCall(name: name, arguments: inner.serialized())
        default: return nil
        }
    }

    /// glm4 and llama3 write a call as the whole output: decide from its start whether it may be
    /// one (then hold everything to the end), else stream it as content.
    mutating func drainWhole(final: Bool) -> [Event] {
        if !decided {
            let lead = pending.drop { $0 == " " || $0 == "\n" }
            switch format {
            case .llama3:
                var rest = Substring(lead)
                if rest.hasPrefix("<|python_tag|>") { rest = rest.dropFirst("<|python_tag|>".count) }
                if let f = rest.first { decided = true; inCall = f == "{" }
                else if "<|python_tag|>".hasPrefix(String(lead)) == false { decided = true }
            default:
                if let nl = lead.firstIndex(of: "\n") {
                    decided = true
                    inCall = tools.contains(String(lead[..<nl]).trimmingWhitespace())
                } else if !tools.contains(where: { $0.hasPrefix(String(lead).trimmingWhitespace()) }) {
                    decided = true
                }
            }
            if !decided && !final { return [] }
            decided = true
        }
        if !inCall {
            let out = pending.isEmpty ? [] : [Event.content(pending)]
            pending = ""
            return out
        }
        guard final else { return [] }
        defer { pending = ""; inCall = false }
        if let c = wholeCall(pending) { return [.call(c)] }
        return pending.isEmpty ? [] : [.content(pending)]
    }

    func wholeCall(_ text: String) -> ParsedToolCall? {
        var t = Substring(text.trimmingWhitespace())
        switch format {
        case .llama3:
            if t.hasPrefix("<|python_tag|>") { t = t.dropFirst("<|python_tag|>".count) }
            guard let v = try? OrderedJSON.parse(String(t)), case .string(let name)? = v["name"], tools.contains(name) else { return nil }
            return Self.call(name, v["parameters"] ?? v["arguments"])
        case .glm4:
            guard let nl = t.firstIndex(of: "\n") else { return nil }
            let name = String(t[..<nl]).trimmingWhitespace()
            guard tools.contains(name), let v = try? OrderedJSON.parse(String(t[t.index(after: nl)...])) else { return nil }
            return Self.call(name, v)
        case .hermes:
            return nil
        }
    }
}
