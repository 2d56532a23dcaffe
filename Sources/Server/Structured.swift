import Engine
import Grammar
import JSON
import Tokenizers

/// `tool_choice`: whether, and which, tool the model must call.
enum ToolChoice: Sendable, Equatable {
    case none, auto, required
    case named(String)
}

/// The structured-output and tool fields of a request, validated: what the output is
/// constrained to (`response_format`, vLLM's `guided_*`) and the tools it offers.
struct StructuredOptions: Sendable {
    enum Format: Sendable {
        case text
        case jsonObject
        /// `strict` (OpenAI strict mode): objects take only their declared properties.
        case jsonSchema(OrderedJSON, strict: Bool)
        case regex(String)
        case choice([String])
    }
    var format: Format = .text
    /// Which field set the format (for error messages).
    var formatParam = "response_format"
    var tools: [ToolFunction] = []
    /// The request's `tools`, as the chat template gets them (key order kept).
    var templateTools: [TemplateValue] = []
    var toolChoice: ToolChoice = .auto
    var parallelToolCalls = true

    /// True when tool calls are read back from the output.
    var offersTools: Bool { !tools.isEmpty && toolChoice != .none }
    var toolNames: [String] { tools.map(\.name) }
    /// finish_reason of an answer that called tools: `tool_calls`, except when `tool_choice`
    /// named the function (OpenAI answers `stop` there: the caller asked for exactly that call).
    var callFinishReason: JSONValue {
        if case .named = toolChoice { return "stop" }
        return "tool_calls"
    }
}

extension RequestParser {
    /// Keys whose values need their object key order (schemas): the body is parsed a second time,
    /// order-preserving, only when one of them is present.
    static let orderedKeys = ["response_format", "guided_json", "json_schema", "tools"]

    static func structured(_ body: JSONValue, raw: [UInt8], chat: Bool) throws(APIError) -> StructuredOptions {
        var s = StructuredOptions()
        let r = try FieldReader(body)
        var ordered: OrderedJSON?
        if orderedKeys.contains(where: { r.present($0) != nil }) {
            do { ordered = try OrderedJSON.parse(raw) } catch {
                throw APIError.invalid("the request body is not valid JSON: \(error)", code: "invalid_json")
            }
        }
        var formats: [String] = []
        if let rf = r.present("response_format") {
            guard case .object(let o) = rf else { throw .wrongType("response_format", expected: "an object", got: rf) }
            guard case .string(let type)? = o["type"] else {
                throw .invalid("'response_format.type' is required: text, json_object or json_schema", param: "response_format")
            }
            switch type {
            case "text": break
            case "json_object":
                // llama.cpp's extension: a `schema` beside json_object constrains the object by it.
                if let schema = ordered?["response_format"]?["schema"] {
                    guard schema.isObject || schema.bool != nil else {
                        throw .invalid("'response_format.schema' must be a JSON Schema object", param: "response_format")
                    }
                    s.format = .jsonSchema(schema, strict: false)
                } else {
                    s.format = .jsonObject
                }
                formats.append("response_format")
            case "json_schema":
                guard let js = ordered?["response_format"]?["json_schema"] else {
                    throw .invalid("'response_format.json_schema' is required when type is json_schema: {\"name\": …, \"schema\": {…}}",
                                   param: "response_format")
                }
                s.format = try jsonSchemaFormat(js, path: "response_format.json_schema", param: "response_format")
                formats.append("response_format")
            default:
                throw .invalid("unknown 'response_format.type' '\(type)': use text, json_object or json_schema",
                               param: "response_format", code: "invalid_value")
            }
        }
        // vLLM's guided_json and llama.cpp's top-level json_schema: a schema (or its JSON text).
        for key in ["guided_json", "json_schema"] {
            guard let gj = r.present(key) else { continue }
            var schema = ordered?[key] ?? .null
            if case .string(let text) = gj {
                do { schema = try OrderedJSON.parse(Array(text.utf8)) } catch {
                    throw .invalid("'\(key)' is a string that is not JSON: \(error)", param: key)
                }
            }
            guard schema.isObject || schema.bool != nil else { throw .wrongType(key, expected: "a JSON Schema object", got: gj) }
            s.format = .jsonSchema(schema, strict: false)
            s.formatParam = key
            formats.append(key)
        }
        if let p = try r.string("guided_regex") {
            s.format = .regex(p)
            s.formatParam = "guided_regex"
            formats.append("guided_regex")
        }
        if let gc = r.present("guided_choice") {
            guard case .array(let a) = gc, !a.isEmpty else { throw .wrongType("guided_choice", expected: "a non-empty array of strings", got: gc) }
            var choices: [String] = []
            for e in a {
                guard case .string(let c) = e else { throw .wrongType("guided_choice", expected: "a non-empty array of strings", got: e) }
                choices.append(c)
            }
            s.format = .choice(choices)
            s.formatParam = "guided_choice"
            formats.append("guided_choice")
        }
        for unsupported in ["guided_grammar", "guided_decoding_backend", "guided_whitespace_pattern", "structural_tag"] where r.present(unsupported) != nil {
            throw .invalid("'\(unsupported)' is not supported by this server: use response_format, guided_json, guided_regex or guided_choice",
                           param: unsupported, code: "unsupported_parameter")
        }
        guard formats.count <= 1 else {
            throw .invalid("give at most one of response_format (json), guided_json (or json_schema), guided_regex and guided_choice; this request sets \(formats.joined(separator: ", "))",
                           param: formats[1])
        }
        try tools(r, ordered: ordered, chat: chat, into: &s)
        return s
    }

    /// A json_schema format's `{name, strict, schema}` object (at `path`), checked.
    static func jsonSchemaFormat(_ js: OrderedJSON, path: String, param: String) throws(APIError) -> StructuredOptions.Format {
        guard case .object = js else { throw .invalid("'\(path)' must be an object", param: param) }
        if let n = js["name"], n.string == nil { throw .invalid("'\(path).name' must be a string", param: param) }
        if let st = js["strict"], st != .null, st.bool == nil {
            throw .invalid("'\(path).strict' must be a boolean", param: param)
        }
        let schema = js["schema"] ?? .object([])
        guard schema.isObject || schema.bool != nil else {
            throw .invalid("'\(path).schema' must be a JSON Schema object", param: param)
        }
        return .jsonSchema(schema, strict: js["strict"]?.bool ?? false)
    }

    static func tools(_ r: FieldReader, ordered: OrderedJSON?, chat: Bool, into s: inout StructuredOptions) throws(APIError) {
        if let t = r.present("tools") {
            guard chat else { throw .invalid("'tools' are only supported on /v1/chat/completions", param: "tools") }
            guard case .array(let a) = t else { throw .wrongType("tools", expected: "an array of {\"type\": \"function\", \"function\": {…}}", got: t) }
            guard a.count <= 128 else { throw .outOfRange("tools", "may hold at most 128 tools, got \(a.count)") }
            let orderedTools = ordered?["tools"]?.array ?? []
            var names = Set<String>()
            for (i, tool) in orderedTools.enumerated() {
                let p = "tools[\(i)]"
                guard tool["type"]?.string == "function" else {
                    throw .invalid("'\(p).type' must be \"function\"", param: "tools")
                }
                guard let f = tool["function"], f.isObject else { throw .invalid("'\(p).function' must be an object", param: "tools") }
                try addFunction(f, path: "\(p).function", template: TemplateValue(tool), names: &names, into: &s)
            }
        }
        if let tc = r.present("tool_choice") {
            let shape = "none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}"
            s.toolChoice = try toolChoice(tc, shape: shape) { o in
                guard case .object(let f)? = o["function"], case .string(let name)? = f["name"] else { return nil }
                return name
            }
            try checkToolChoice(s)
        }
        s.parallelToolCalls = try r.bool("parallel_tool_calls") ?? true
    }

    /// One function a request offers (the object at `path`: name, description, parameters,
    /// strict), checked and added to the tools; `template` is how the chat template sees the tool.
    static func addFunction(_ f: OrderedJSON, path p: String, template: TemplateValue, names: inout Set<String>,
                            into s: inout StructuredOptions) throws(APIError) {
        guard let name = f["name"]?.string else { throw .invalid("'\(p).name' is required (a string)", param: "tools") }
        guard !name.isEmpty, name.utf8.count <= 64,
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" || $0 == "." })
        else {
            throw .invalid("'\(p).name' must be 1-64 characters of a-z, A-Z, 0-9, _, - or ., got '\(name)'", param: "tools")
        }
        guard names.insert(name).inserted else { throw .invalid("'tools' names the function '\(name)' twice", param: "tools") }
        if let d = f["description"], d != .null, d.string == nil { throw .invalid("'\(p).description' must be a string", param: "tools") }
        var params = f["parameters"]
        if params == .null { params = nil }
        if let params, !params.isObject { throw .invalid("'\(p).parameters' must be a JSON Schema object", param: "tools") }
        s.tools.append(ToolFunction(name: name, description: f["description"]?.string, parameters: params,
                                    strict: f["strict"]?.bool ?? false))
        s.templateTools.append(template)
    }

    /// `tool_choice`: none, auto, required, or an object whose function name `named` reads (each
    /// API spells it its own way; nil: not a function choice). `shape` is what the error shows.
    static func toolChoice(_ tc: JSONValue, shape: String, named: ([String: JSONValue]) -> String?) throws(APIError) -> ToolChoice {
        switch tc {
        case .string("none"): return .none
        case .string("auto"): return .auto
        case .string("required"): return .required
        case .object(let o):
            guard case .string("function")? = o["type"], let name = named(o) else {
                throw .invalid("'tool_choice' must be \(shape)", param: "tool_choice")
            }
            return .named(name)
        default:
            throw .invalid("'tool_choice' must be \(shape)", param: "tool_choice")
        }
    }

    /// A tool_choice other than none needs tools, and a named one a tool of that name.
    static func checkToolChoice(_ s: StructuredOptions) throws(APIError) {
        if s.tools.isEmpty && s.toolChoice != .none {
            throw .invalid("'tool_choice' needs 'tools': this request offers no tool to call", param: "tool_choice")
        }
        if case .named(let n) = s.toolChoice, !s.tools.contains(where: { $0.name == n }) {
            throw .invalid("'tool_choice' names the function '\(n)', which is not in 'tools' (\(s.toolNames.joined(separator: ", ")))",
                           param: "tool_choice", code: "invalid_value")
        }
    }
}

extension OrderedJSON {
    var isObject: Bool { if case .object = self { return true } else { return false } }
}

extension OpenAIServer {
    /// The grammar a request's output must follow (nil: unconstrained). Errors name the field.
    func grammar(for s: StructuredOptions) throws(APIError) -> Grammar? {
        // JSON as models write it (bounded optional whitespace). Tool arguments take only the
        // declared parameters: a call with others would fail in the caller's function.
        var options = JSONSchemaOptions()
        options.whitespace = .flexible
        let param = s.toolChoice == .required || { if case .named = s.toolChoice { return true } else { return false } }() ? "tools" : s.formatParam
        let g: Grammar?
        do {
            var toolOptions = options
            toolOptions.closedObjects = true
            switch (s.toolChoice, s.format) {
            case (.required, _) where !s.tools.isEmpty:
                g = try toolFormat.grammar(tools: s.tools, only: nil, parallel: s.parallelToolCalls, options: toolOptions)
            case (.named(let n), _):
                g = try toolFormat.grammar(tools: s.tools, only: n, parallel: false, options: toolOptions)
            case (_, .text): g = nil
            case (_, .jsonObject): g = try JSONSchemaGrammar.anyObject(options: options)
            case (_, .jsonSchema(let schema, let strict)):
                options.closedObjects = strict
                g = try JSONSchemaGrammar.grammar(schema, options: options)
            case (_, .regex(let p)): g = try RegexGrammar.grammar(p)
            case (_, .choice(let c)): g = try ChoiceGrammar.grammar(c)
            }
        } catch {
            let code: String
            if case .unsupported = error { code = "unsupported_schema" } else { code = "invalid_schema" }
            throw APIError.invalid("\(param): \(error)", param: param, code: code)
        }
        // A pattern or schema no text satisfies (`a[^\d\D]b`) would be cut off at its dead end
        // with whatever it wrote so far: refused here, with the field to fix.
        if let g, g.admitsNothing {
            throw APIError.invalid("\(param): no output can match it (the schema or pattern admits no text at all); loosen it",
                                   param: param, code: "invalid_schema")
        }
        return g
    }
}
