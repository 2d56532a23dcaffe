import Engine
import Foundation
import Grammar
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import Tokenizers

// The OpenAI Responses API (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`) over the
// same path chat completions take: its input items become chat messages, its flat function
// tools and `text.format` become `StructuredOptions`, and the request is prepared, admitted and
// answered by `generate` like any other.

/// A `/v1/responses` request, validated.
struct ResponsesRequest: Sendable {
    /// This request's input items as chat messages (instructions not included).
    var input: [ChatMessageInput]
    var instructions: String?
    var previousResponseID: String?
    /// `store` (default true): keep the finished response for `previous_response_id` and GET.
    var store = true
    var options: GenerationOptions
    var structured: StructuredOptions
    /// Request fields the response object repeats as given (tools, tool_choice, text, ...).
    var echo: [String: JSONValue] = [:]
}

/// What the endpoint's `prepare` hands its `answer`: the request and the conversation the prompt
/// was made of (previous response's conversation + this input, without instructions).
struct ResponsesTurn: Sendable {
    var request: ResponsesRequest
    var conversation: [ChatMessageInput]
}

// MARK: - parsing

extension RequestParser {
    static let responsesShape = "none, auto, required or {\"type\": \"function\", \"name\": …}"

    static func responses(_ body: JSONValue, raw: [UInt8]) throws(APIError) -> ResponsesRequest {
        let r = try FieldReader(body)
        try refuseUnsupportedResponseFields(r)
        var o = GenerationOptions()
        o.model = try r.string("model")
        o.maxTokens = try r.int("max_output_tokens", 1...Int(Int32.max))
        try temperatureTopP(r, into: &o)
        o.stream = try r.bool("stream") ?? false
        o.user = try r.string("user")
        var ordered: OrderedJSON?
        if r.present("tools") != nil || r.present("text") != nil {
            do { ordered = try OrderedJSON.parse(raw) } catch {
                throw APIError.invalid("the request body is not valid JSON: \(error)", code: "invalid_json")
            }
        }
        var s = StructuredOptions()
        try responseTextFormat(r, ordered: ordered, into: &s)
        try responseTools(r, ordered: ordered, into: &s)
        var req = ResponsesRequest(input: try responseInput(r.present("input")), options: o, structured: s)
        req.instructions = try r.string("instructions")
        req.previousResponseID = try r.string("previous_response_id")
        req.store = try r.bool("store") ?? true
        req.echo = try responseEcho(r)
        return req
    }

    /// Fields of the Responses API this server does not implement: a 400 naming each, rather
    /// than an answer that silently ignores what was asked.
    static func refuseUnsupportedResponseFields(_ r: FieldReader) throws(APIError) {
        if try r.bool("background") == true {
            throw .invalid("'background' responses are not supported by this server; send the request without it (and stream, if you want output as it is made)",
                           param: "background", code: "unsupported_parameter")
        }
        if let inc = r.present("include") {
            guard case .array(let a) = inc else { throw .wrongType("include", expected: "an array of strings", got: inc) }
            if let first = a.first {
                throw .invalid("'include' value \(first.serialized()) is not supported by this server (it has no reasoning, tool or logprob outputs to add); send an empty 'include'",
                               param: "include", code: "unsupported_parameter")
            }
        }
        for unsupported in ["prompt", "conversation"] where r.present(unsupported) != nil {
            throw .invalid("'\(unsupported)' is not supported by this server: send the text in 'input' (and chain turns with 'previous_response_id')",
                           param: unsupported, code: "unsupported_parameter")
        }
        if let t = try r.string("truncation"), t != "disabled" {
            throw .invalid("'truncation' '\(t)' is not supported by this server: only \"disabled\" (a prompt too long for the context is refused)",
                           param: "truncation", code: "unsupported_parameter")
        }
        if let re = r.present("reasoning"), re.object == nil {
            throw .wrongType("reasoning", expected: "an object", got: re)
        }
    }

    /// The fields the response object repeats; metadata is checked here (an object of strings).
    static func responseEcho(_ r: FieldReader) throws(APIError) -> [String: JSONValue] {
        if let m = r.present("metadata") {
            guard case .object(let o) = m, o.values.allSatisfy({ $0.string != nil }) else {
                throw .wrongType("metadata", expected: "an object of string values", got: m)
            }
            guard o.count <= 16 else { throw .outOfRange("metadata", "may hold at most 16 keys, got \(o.count)") }
        }
        return [
            "tools": r.present("tools") ?? [], "tool_choice": r.present("tool_choice") ?? "auto",
            "text": r.present("text") ?? ["format": ["type": "text"]], "metadata": r.present("metadata") ?? [:],
            "parallel_tool_calls": r.present("parallel_tool_calls") ?? true,
        ]
    }

    /// `text.format`: text, json_object, or json_schema with `name`, `schema`, `strict` flat in it.
    static func responseTextFormat(_ r: FieldReader, ordered: OrderedJSON?, into s: inout StructuredOptions) throws(APIError) {
        s.formatParam = "text.format"
        guard let text = r.present("text") else { return }
        guard case .object(let t) = text else { throw .wrongType("text", expected: "an object {\"format\": {…}}", got: text) }
        guard let format = t["format"], format != .null else { return }
        guard case .object(let f) = format, case .string(let type)? = f["type"] else {
            throw .invalid("'text.format' must be an object with a 'type': text, json_object or json_schema", param: "text.format")
        }
        switch type {
        case "text": break
        case "json_object": s.format = .jsonObject
        case "json_schema":
            let js = ordered?["text"]?["format"] ?? .object([])
            guard js["schema"] != nil else {
                throw .invalid("'text.format.schema' is required when type is json_schema: {\"type\": \"json_schema\", \"name\": …, \"schema\": {…}}",
                               param: "text.format")
            }
            s.format = try jsonSchemaFormat(js, path: "text.format", param: "text.format")
        default:
            throw .invalid("unknown 'text.format.type' '\(type)': use text, json_object or json_schema",
                           param: "text.format.type", code: "invalid_value")
        }
    }

    /// `tools` (flat function tools: `{"type": "function", "name", "description", "parameters",
    /// "strict"}`), `tool_choice` and `parallel_tool_calls`. The chat template sees each tool as
    /// chat completions spell it, `{"type": "function", "function": {…}}`.
    static func responseTools(_ r: FieldReader, ordered: OrderedJSON?, into s: inout StructuredOptions) throws(APIError) {
        if let t = r.present("tools") {
            guard case .array(let a) = t else { throw .wrongType("tools", expected: "an array of {\"type\": \"function\", \"name\": …}", got: t) }
            guard a.count <= 128 else { throw .outOfRange("tools", "may hold at most 128 tools, got \(a.count)") }
            var names = Set<String>()
            for (i, tool) in (ordered?["tools"]?.array ?? []).enumerated() {
                let p = "tools[\(i)]"
                guard let type = tool["type"]?.string else { throw .invalid("'\(p).type' is required: \"function\"", param: "tools") }
                guard type == "function" else {
                    throw .invalid("'\(p)' is a built-in '\(type)' tool, which this server does not have: offer function tools only",
                                   param: "tools", code: "unsupported_tool")
                }
                if tool["function"] != nil {
                    throw .invalid("'\(p)' is in the chat completions shape; the Responses API takes flat tools: {\"type\": \"function\", \"name\": …, \"parameters\": {…}}",
                                   param: "tools")
                }
                let function = OrderedJSON.object((tool.members ?? []).filter { $0.key != "type" })
                let chatShape = OrderedJSON.object([.init(key: "type", value: .string("function")), .init(key: "function", value: function)])
                try addFunction(tool, path: p, template: TemplateValue(chatShape), names: &names, into: &s)
            }
        }
        if let tc = r.present("tool_choice") {
            s.toolChoice = try toolChoice(tc, shape: responsesShape) { $0["name"]?.string }
            try checkToolChoice(s)
        }
        s.parallelToolCalls = try r.bool("parallel_tool_calls") ?? true
    }

    /// `input`: a string (one user message) or a list of items: messages, `function_call` items
    /// (a call the assistant made; consecutive calls join one assistant turn) and
    /// `function_call_output` items (a tool's result).
    static func responseInput(_ v: JSONValue?) throws(APIError) -> [ChatMessageInput] {
        guard let v else { throw .invalid("'input' is required: a string or a list of input items", param: "input", code: "missing") }
        if case .string(let text) = v { return [ChatMessageInput(role: "user", content: text)] }
        guard case .array(let items) = v, !items.isEmpty else {
            throw .wrongType("input", expected: "a string or a non-empty list of input items", got: v)
        }
        var messages: [ChatMessageInput] = []
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else { throw .wrongType("input[\(i)]", expected: "an input item object", got: item) }
            let type = o["type"]?.string ?? (o["role"] != nil ? "message" : "")
            switch type {
            case "message": messages.append(try inputMessage(o, at: i))
            case "function_call": try appendCall(o, at: i, to: &messages)
            case "function_call_output": messages.append(try callOutput(o, at: i))
            default:
                throw .invalid("'input[\(i)].type' '\(type)' is not an input item this server takes: message, function_call or function_call_output",
                               param: "input", code: "invalid_value")
            }
        }
        return messages
    }

    static func inputMessage(_ o: [String: JSONValue], at i: Int) throws(APIError) -> ChatMessageInput {
        guard case .string(let role)? = o["role"], ["user", "assistant", "system", "developer"].contains(role) else {
            throw .invalid("'input[\(i)].role' must be user, assistant, system or developer", param: "input")
        }
        return ChatMessageInput(role: role == "developer" ? "system" : role, content: try itemText(o["content"], at: "input[\(i)].content"))
    }

    /// A message's content or a call's output: a string, or text parts (input_text, output_text).
    static func itemText(_ v: JSONValue?, at p: String) throws(APIError) -> String {
        switch v ?? .null {
        case .string(let s): return s
        case .array(let parts):
            var text = ""
            for (k, part) in parts.enumerated() {
                guard case .object(let po) = part, case .string(let type)? = po["type"] else {
                    throw .invalid("'\(p)[\(k)]' must be {\"type\": \"input_text\", \"text\": …}", param: "input")
                }
                guard ["input_text", "output_text", "text"].contains(type), case .string(let t)? = po["text"] else {
                    throw .invalid("'\(p)[\(k)]' is a '\(type)' part; this server takes text only ({\"type\": \"input_text\", \"text\": …})",
                                   param: "input", code: "unsupported_content")
                }
                text += t
            }
            return text
        case let other: throw .wrongType(p, expected: "a string or a list of input_text parts", got: other)
        }
    }

    static func appendCall(_ o: [String: JSONValue], at i: Int, to messages: inout [ChatMessageInput]) throws(APIError) {
        guard case .string(let callID)? = o["call_id"], !callID.isEmpty else {
            throw .invalid("'input[\(i)]' is a function_call without 'call_id' (the id its function_call_output answers)", param: "input")
        }
        guard case .string(let name)? = o["name"], !name.isEmpty else {
            throw .invalid("'input[\(i)]' is a function_call without 'name'", param: "input")
        }
        let call = try templateCall(id: callID, name: name, arguments: o["arguments"], path: "input[\(i)]", param: "input")
        // A call right after an assistant message (or another call) belongs to that turn.
        if let last = messages.last, last.role == "assistant" {
            messages[messages.count - 1].toolCalls = (last.toolCalls ?? []) + [call]
        } else {
            messages.append(ChatMessageInput(role: "assistant", content: "", toolCalls: [call]))
        }
    }

    static func callOutput(_ o: [String: JSONValue], at i: Int) throws(APIError) -> ChatMessageInput {
        guard case .string(let callID)? = o["call_id"], !callID.isEmpty else {
            throw .invalid("'input[\(i)]' is a function_call_output without 'call_id' (the call_id of the function_call it answers)", param: "input")
        }
        return ChatMessageInput(role: "tool", content: try itemText(o["output"], at: "input[\(i)].output"), toolCallId: callID)
    }
}

// MARK: - the stored responses

/// Finished responses kept for `previous_response_id` and `GET /v1/responses/{id}`: at most
/// `capacity` of them and `maxBytes` of conversation text, each for `ttl`; the least recently
/// used goes first when full. One lock.
final class ResponseStore: Sendable {
    struct Entry: Sendable {
        var response: JSONValue
        /// The whole conversation: every earlier turn, this input, this output.
        var conversation: [ChatMessageInput]
        var stored: ContinuousClock.Instant
        var used: UInt64
        var bytes: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var tick: UInt64 = 0
        var bytes = 0

        mutating func drop(_ id: String) -> Entry? {
            guard let e = entries.removeValue(forKey: id) else { return nil }
            bytes -= e.bytes
            return e
        }
    }

    let capacity: Int
    let maxBytes: Int
    let ttl: Duration
    private let state = Mutex(State())

    init(capacity: Int = 1000, maxBytes: Int = 256 << 20, ttl: Duration = .seconds(3600)) {
        self.capacity = max(1, capacity)
        self.maxBytes = maxBytes
        self.ttl = ttl
    }

    func put(_ id: String, response: JSONValue, conversation: [ChatMessageInput], now: ContinuousClock.Instant = .now) {
        // Conversation text plus the response's size: what an entry holds on to.
        let bytes = conversation.reduce(0) { $0 + $1.content.utf8.count } + response.bytes.count
        state.withLock { s in
            s.tick += 1
            _ = s.drop(id)
            s.entries[id] = Entry(response: response, conversation: conversation, stored: now, used: s.tick, bytes: bytes)
            s.bytes += bytes
            for (key, e) in s.entries where now - e.stored >= ttl { _ = s.drop(key) }
            while s.entries.count > capacity || (s.bytes > maxBytes && s.entries.count > 1),
                  let oldest = s.entries.min(by: { $0.value.used < $1.value.used })?.key {
                _ = s.drop(oldest)
            }
        }
    }

    /// The entry, if kept and not expired (a read makes it the most recently used).
    func get(_ id: String, now: ContinuousClock.Instant = .now) -> Entry? {
        state.withLock { s in
            guard let e = s.entries[id] else { return nil }
            guard now - e.stored < ttl else { _ = s.drop(id); return nil }
            s.tick += 1
            s.entries[id]?.used = s.tick
            return e
        }
    }

    @discardableResult
    func remove(_ id: String, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { s in
            guard let e = s.drop(id) else { return false }
            return now - e.stored < ttl
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}

// MARK: - output items

/// A response's output items as they are read from the model's text, in order: message text
/// (`msg_…`) and function calls (`fc_…`, `call_…`). Each step returns the stream events it makes;
/// the non-streaming path feeds the whole text and keeps only `items`.
struct ResponseOutput {
    typealias Event = (type: String, fields: [String: JSONValue])

    private(set) var items: [JSONValue] = []
    /// All message text and every call, for the stored conversation.
    private(set) var text = ""
    private(set) var calls: [(callID: String, call: ParsedToolCall)] = []
    private var open: (id: String, text: String)?
    /// Whitespace before any message text: dropped if a call comes next (as chat completions
    /// drop it), written once text follows.
    private var pending = ""

    mutating func take(_ events: [ToolCallStream.Event]) -> [Event] {
        var out: [Event] = []
        for e in events {
            switch e {
            case .content(let c): out += content(c)
            case .call(let c): out += call(c)
            }
        }
        return out
    }

    mutating func content(_ s: String) -> [Event] {
        guard open == nil else { return append(s) }
        pending += s
        if pending.allSatisfy(\.isWhitespace) { return [] }
        defer { pending = "" }
        return openMessage() + append(pending)
    }

    mutating func call(_ c: ParsedToolCall) -> [Event] {
        var out = closeMessage(incomplete: false)
        pending = ""
        let id = "fc_" + OpenAIServer.randomID(), callID = "call_" + OpenAIServer.randomID()
        let index = JSONValue.int(items.count)
        var item: [String: JSONValue] = ["type": "function_call", "id": .string(id), "call_id": .string(callID),
                                         "name": .string(c.name), "arguments": "", "status": "in_progress"]
        out.append(("response.output_item.added", ["output_index": index, "item": .object(item)]))
        out.append(("response.function_call_arguments.delta", ["item_id": .string(id), "output_index": index, "delta": .string(c.arguments)]))
        out.append(("response.function_call_arguments.done", ["item_id": .string(id), "output_index": index, "name": .string(c.name),
                                                              "arguments": .string(c.arguments)]))
        item["arguments"] = .string(c.arguments)
        item["status"] = "completed"
        out.append(("response.output_item.done", ["output_index": index, "item": .object(item)]))
        items.append(.object(item))
        calls.append((callID, c))
        return out
    }

    /// Ends the output: an answer with no call always has a message item (maybe empty).
    mutating func finish(incomplete: Bool) -> [Event] {
        var out: [Event] = []
        if open == nil && calls.isEmpty {
            out += openMessage() + append(pending)
            pending = ""
        }
        return out + closeMessage(incomplete: incomplete)
    }

    private mutating func openMessage() -> [Event] {
        let id = "msg_" + OpenAIServer.randomID()
        open = (id, "")
        let index = JSONValue.int(items.count)
        return [
            ("response.output_item.added", ["output_index": index, "item": Self.message(id, text: nil, status: "in_progress")]),
            ("response.content_part.added", ["item_id": .string(id), "output_index": index, "content_index": 0, "part": Self.part("")]),
        ]
    }

    private mutating func append(_ s: String) -> [Event] {
        guard let o = open, !s.isEmpty else { return [] }
        open?.text += s
        text += s
        return [("response.output_text.delta", ["item_id": .string(o.id), "output_index": .int(items.count), "content_index": 0,
                                                 "delta": .string(s), "logprobs": []])]
    }

    private mutating func closeMessage(incomplete: Bool) -> [Event] {
        guard let o = open else { return [] }
        open = nil
        let index = JSONValue.int(items.count), item = Self.message(o.id, text: o.text, status: incomplete ? "incomplete" : "completed")
        items.append(item)
        return [
            ("response.output_text.done", ["item_id": .string(o.id), "output_index": index, "content_index": 0, "text": .string(o.text), "logprobs": []]),
            ("response.content_part.done", ["item_id": .string(o.id), "output_index": index, "content_index": 0, "part": Self.part(o.text)]),
            ("response.output_item.done", ["output_index": index, "item": item]),
        ]
    }

    static func part(_ text: String) -> JSONValue { ["type": "output_text", "text": .string(text), "annotations": []] }

    static func message(_ id: String, text: String?, status: String) -> JSONValue {
        ["type": "message", "id": .string(id), "role": "assistant", "status": .string(status),
         "content": .array(text.map { [part($0)] } ?? [])]
    }

    /// The output as the assistant turn of the stored conversation (calls with their call ids).
    var assistantTurn: ChatMessageInput {
        let templateCalls = calls.compactMap { c in
            try? RequestParser.templateCall(id: c.callID, name: c.call.name, arguments: .string(c.call.arguments), path: "output", param: "output")
        }
        return ChatMessageInput(role: "assistant", content: text, toolCalls: templateCalls.isEmpty ? nil : templateCalls)
    }
}

// MARK: - the endpoint

extension OpenAIServer {
    func handleResponses(_ req: Request, channel: (any Channel)?) async -> Response {
        await generate(req, channel: channel, chat: true, idPrefix: "resp_") { bytes throws(APIError) in
            try self.prepareResponse(bytes)
        } answer: { ctx, handles, hangUp, turn in
            if ctx.options.stream { return self.streamResponse(ctx, handles, turn) }
            return try await self.completeResponse(ctx, handles, hangUp: hangUp, turn)
        }
    }

    /// Parse, prepend the previous response's conversation and the instructions, then the chat path.
    func prepareResponse(_ bytes: ByteBuffer) throws(APIError) -> (Prepared, ResponsesTurn) {
        let req = try RequestParser.responses(try Self.parseBody(bytes), raw: Array(bytes.readableBytesView))
        var conversation: [ChatMessageInput] = []
        if let prev = req.previousResponseID {
            guard let stored = responseStore.get(prev) else { throw Self.previousResponseNotFound(prev) }
            conversation = stored.conversation
        }
        conversation += req.input
        let system = req.instructions.map { [ChatMessageInput(role: "system", content: $0)] } ?? []
        let prompt = try chatPrompt(system + conversation, options: req.options, structured: req.structured, param: "input")
        let prepared = try jobs([prompt], options: req.options, structured: req.structured, chat: true)
        return (prepared, ResponsesTurn(request: req, conversation: conversation))
    }

    static func previousResponseNotFound(_ id: String) -> APIError {
        APIError(status: .notFound, message: "Previous response with id '\(id)' not found (responses are kept for an hour, and only with store: true); send the whole conversation in 'input' instead",
                 type: "invalid_request_error", param: "previous_response_id", code: "previous_response_not_found")
    }

    static func responseNotFound(_ id: String) -> APIError {
        APIError(status: .notFound, message: "No response found with id '\(id)' (responses are kept for an hour, and only with store: true)",
                 type: "invalid_request_error", param: "response_id", code: "not_found")
    }

    func getResponse(_ id: String) -> Response {
        guard let e = responseStore.get(id) else { return errorResponse(Self.responseNotFound(id)) }
        return json(.ok, e.response)
    }

    func deleteResponse(_ id: String) -> Response {
        guard responseStore.remove(id) else { return errorResponse(Self.responseNotFound(id)) }
        return json(.ok, ["id": .string(id), "object": "response.deleted", "deleted": true])
    }

    /// The tool-call reader's events for one piece of a sequence's text (all of it content when
    /// no tools are offered).
    func outputEvents(_ text: String, _ reader: inout ToolCallStream?, final: Bool) -> [ToolCallStream.Event] {
        guard reader != nil else { return [.content(text)] }
        var events = reader?.feed(text) ?? []
        if final { events += reader?.finish() ?? [] }
        return events
    }

    func toolReader(_ ctx: ResponseContext) -> ToolCallStream? {
        let st = ctx.options.structured
        return st.offersTools ? ToolCallStream(format: toolFormat, tools: st.toolNames) : nil
    }

    func completeResponse(_ ctx: ResponseContext, _ handles: [GenerationHandle], hangUp: HangUp?, _ turn: ResponsesTurn) async throws -> Response {
        let results = try await collect(handles, hangUp: hangUp)
        let r = results.first ?? ChoiceResult()
        var reader = toolReader(ctx)
        var out = ResponseOutput()
        _ = out.take(outputEvents(r.text, &reader, final: true))
        let incomplete = r.completion?.reason == .length
        _ = out.finish(incomplete: incomplete)
        let body = responseJSON(ctx, turn, status: incomplete ? "incomplete" : "completed", output: out.items,
                                usage: responseUsage(ctx, results))
        keep(body, turn, out)
        logRequest(ctx, status: 200, results)
        return json(.ok, body)
    }

    /// SSE as the Responses API streams: `event: <type>` and `data: <json>` per event, each with
    /// its `sequence_number`; no `[DONE]`. A write failure (client gone) cancels the sequence.
    func streamResponse(_ ctx: ResponseContext, _ handles: [GenerationHandle], _ turn: ResponsesTurn) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (merged, pump, timedOut) = self.mergedEvents(handles)
            var results = [ChoiceResult](repeating: ChoiceResult(), count: handles.count)
            var reader = self.toolReader(ctx)
            var out = ResponseOutput()
            var seq = 0
            let start = self.responseJSON(ctx, turn, status: "in_progress", output: [], usage: .null)
            var events: [ResponseOutput.Event] = [("response.created", ["response": start]), ("response.in_progress", ["response": start])]
            do {
                for e in events { try await writer.write(Self.sseFrame(e, &seq)) }
                for await (k, e) in merged {
                    switch e {
                    case .token(let t):
                        results[k].tokenTimes.append(t.time)
                        results[k].text += t.text
                        events = out.take(self.outputEvents(t.text, &reader, final: false))
                    case .finished(let f):
                        results[k].completion = f
                        results[k].text += f.text
                        events = self.finalEvents(ctx, turn, f, &out, self.outputEvents(f.text, &reader, final: true),
                                                  results, timedOut: timedOut.isSet)
                    }
                    for e in events { try await writer.write(Self.sseFrame(e, &seq)) }
                }
                let cut = self.drainExpired.isSet && results.contains { $0.completion?.reason == .cancelled }
                self.logRequest(ctx, status: 200, results, outcome: timedOut.isSet ? "timeout" : cut ? "drain_deadline" : "ok")
                try await writer.finish(nil)
            } catch {
                for h in handles { self.scheduler.cancel(h.id) }
                pump.cancel()
                for r in results { self.record(r, timedOut: false, trace: ctx.trace) }
                self.logRequest(ctx, status: 200, results, outcome: "client_gone")
                throw error
            }
            for r in results { self.record(r, timedOut: timedOut.isSet, trace: ctx.trace) }
        })
    }

    /// The last events of a stream: the output closed and `response.completed` (or
    /// `.incomplete`, kept for later turns), or `response.failed` when the sequence failed, timed
    /// out or was cut by the drain deadline.
    func finalEvents(_ ctx: ResponseContext, _ turn: ResponsesTurn, _ f: SequenceCompletion, _ out: inout ResponseOutput,
                     _ last: [ToolCallStream.Event], _ results: [ChoiceResult], timedOut: Bool) -> [ResponseOutput.Event] {
        guard f.reason == .stop || f.reason == .length else {
            let e: APIError = f.reason == .cancelled && drainExpired.isSet && !timedOut ? drainDeadlineError
                : APIError(status: .internalServerError,
                           message: f.error ?? (timedOut ? "the request took longer than \(Int(config.requestTimeout)) s and was cancelled" : "the request was cancelled"),
                           type: timedOut ? "timeout_error" : "server_error", code: timedOut ? "timeout" : "server_error")
            let error: JSONValue = ["code": e.code.json, "message": .string(e.message)]
            let failed = responseJSON(ctx, turn, status: "failed", output: out.items, usage: responseUsage(ctx, results), error: error)
            return [("response.failed", ["response": failed])]
        }
        let incomplete = f.reason == .length
        let events = out.take(last) + out.finish(incomplete: incomplete)
        let body = responseJSON(ctx, turn, status: incomplete ? "incomplete" : "completed", output: out.items,
                                usage: responseUsage(ctx, results))
        keep(body, turn, out)
        return events + [(incomplete ? "response.incomplete" : "response.completed", ["response": body])]
    }

    static func sseFrame(_ e: ResponseOutput.Event, _ seq: inout Int) -> ByteBuffer {
        var fields = e.fields
        fields["type"] = .string(e.type)
        fields["sequence_number"] = .int(seq)
        seq += 1
        return ByteBuffer(string: "event: \(e.type)\ndata: \(JSONValue.object(fields).serialized())\n\n")
    }

    /// Keeps a finished response (unless `store: false`) with its whole conversation.
    func keep(_ body: JSONValue, _ turn: ResponsesTurn, _ out: ResponseOutput) {
        guard turn.request.store, case .string(let id)? = body["id"] else { return }
        responseStore.put(id, response: body, conversation: turn.conversation + [out.assistantTurn])
    }

    func responseUsage(_ ctx: ResponseContext, _ results: [ChoiceResult]) -> JSONValue {
        let output = results.reduce(0) { $0 + ($1.completion?.completionTokens ?? 0) }
        return ["input_tokens": .int(ctx.promptTokens), "output_tokens": .int(output), "total_tokens": .int(ctx.promptTokens + output),
                "input_tokens_details": ["cached_tokens": .int(min(cachedTokens(ctx, results), ctx.promptTokens))],
                "output_tokens_details": ["reasoning_tokens": 0]]
    }

    /// The response object: status, output items, usage, and the request's settings repeated.
    func responseJSON(_ ctx: ResponseContext, _ turn: ResponsesTurn, status: String, output: [JSONValue], usage: JSONValue,
                      error: JSONValue = .null) -> JSONValue {
        let req = turn.request
        var o = req.echo
        o["id"] = .string(ctx.id)
        o["object"] = "response"
        o["created_at"] = .int(ctx.created)
        o["status"] = .string(status)
        o["error"] = error
        o["incomplete_details"] = status == "incomplete" ? ["reason": "max_output_tokens"] : .null
        o["model"] = .string(config.servedModelName)
        o["output"] = .array(output)
        o["usage"] = usage
        o["instructions"] = req.instructions.json
        o["previous_response_id"] = req.previousResponseID.json
        o["max_output_tokens"] = req.options.maxTokens.map { .int($0) } ?? .null
        // Float settings as the decimals they were given (0.8, not 0.800000011920929).
        o["temperature"] = .double((Double(ctx.options.sampling.temperature) * 1e6).rounded() / 1e6)
        o["top_p"] = .double((Double(ctx.options.sampling.topP) * 1e6).rounded() / 1e6)
        o["store"] = .bool(req.store)
        o["user"] = req.options.user.json
        o["truncation"] = "disabled"
        o["background"] = false
        o["reasoning"] = ["effort": .null, "summary": .null]
        return .object(o)
    }
}
