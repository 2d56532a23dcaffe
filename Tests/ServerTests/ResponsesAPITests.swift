import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
@testable import Server
import Testing

/// `POST /v1/responses` (the OpenAI Responses API) over Qwen 2.5 Coder Instruct: the answer's
/// shape, the same text as chat completions, the event stream, function calls and their
/// results (by previous_response_id and by explicit items), text.format, the stored responses,
/// and the 400s.
@Suite(.serialized) struct ResponsesAPITests {
    static let weather = #"{"type": "function", "name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}"#

    func withQwen(_ body: @Sendable @escaping (OpenAIServer, any TestClientProtocol) async throws -> Void) async throws {
        guard let s = try StructuredOutputTests.qwenServer() else { return }
        s.scheduler.start()
        defer { s.scheduler.terminate() }
        let app = Application(router: s.buildRouter())
        try await app.test(.router) { c in try await body(s, c) }
    }

    func call(_ c: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String) async throws -> (HTTPResponse.Status, JSONValue?) {
        try await c.execute(uri: uri, method: method, headers: [:], body: nil) { r in
            (r.status, JSONValue.parse(String(buffer: r.body)))
        }
    }

    /// The events of an SSE body: (event line, data object).
    func events(_ sse: String) -> [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        var name = ""
        for line in sse.split(separator: "\n") {
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("data: "), let v = JSONValue.parse(String(line.dropFirst(6))) { out.append((name, v)) }
        }
        return out
    }

    func outputText(_ v: JSONValue?) -> String {
        (v?["output"]?.array ?? []).filter { $0["type"]?.string == "message" }
            .flatMap { $0["content"]?.array ?? [] }.compactMap { $0["text"]?.string }.joined()
    }

    @Test func badInputIsA400NamingTheParam() async throws {
        try await withQwen { _, c in
            let cases: [(String, String)] = [
                (#"{"model": "qwen-test"}"#, "input"),
                (#"{"input": 5}"#, "input"),
                (#"{"input": []}"#, "input"),
                (#"{"input": [{"type": "reasoning", "summary": []}]}"#, "input"),
                (#"{"input": [{"type": "function_call_output", "output": "22 C"}]}"#, "input"),
                (#"{"input": [{"type": "function_call", "name": "get_weather", "arguments": "{}"}]}"#, "input"),
                (#"{"input": [{"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{oops"}]}"#, "input"),
                (#"{"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}"#, "input"),
                (#"{"input": [{"role": "robot", "content": "hi"}]}"#, "input"),
                (#"{"input": "hi", "text": {"format": {"type": "xml"}}}"#, "text.format.type"),
                (#"{"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}"#, "text.format"),
                (#"{"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}}"#, "text.format"),
                (#"{"input": "hi", "tools": [{"type": "web_search_preview"}]}"#, "tools"),
                (#"{"input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}"#, "tools"),
                (#"{"input": "hi", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}"#, "tools"),
                (#"{"input": "hi", "tools": [{"type": "function", "name": "a b"}]}"#, "tools"),
                (#"{"input": "hi", "tools": [\#(Self.weather)], "tool_choice": {"type": "function", "name": "nope"}}"#, "tool_choice"),
                (#"{"input": "hi", "tools": [\#(Self.weather)], "tool_choice": {"type": "web_search_preview"}}"#, "tool_choice"),
                (#"{"input": "hi", "tool_choice": "required"}"#, "tool_choice"),
                (#"{"input": "hi", "max_output_tokens": 0}"#, "max_output_tokens"),
                (#"{"input": "hi", "temperature": 3}"#, "temperature"),
                (#"{"input": "hi", "background": true}"#, "background"),
                (#"{"input": "hi", "include": ["file_search_call.results"]}"#, "include"),
                (#"{"input": "hi", "metadata": {"k": 5}}"#, "metadata"),
            ]
            for (body, param) in cases {
                let (st, v, text) = try await post(c, "/v1/responses", body)
                #expect(st == .badRequest, "\(body) → \(st) \(text)")
                #expect(v?["error"]?["param"]?.string == param, "\(body) → \(text)")
                #expect(v?["error"]?["type"]?.string == "invalid_request_error", "\(text)")
                #expect((v?["error"]?["message"]?.string ?? "").count > 10, "\(text)")
            }
            // An unknown previous response: 404, as OpenAI answers it.
            let (st, v, text) = try await post(c, "/v1/responses", #"{"input": "hi", "previous_response_id": "resp_nope"}"#)
            #expect(st == .notFound, "\(text)")
            #expect(v?["error"]?["param"]?.string == "previous_response_id")
            #expect(v?["error"]?["code"]?.string == "previous_response_not_found")
            #expect(v?["error"]?["type"]?.string == "invalid_request_error")
            // reasoning (an effort this model ignores) is accepted.
            let (st2, _, text2) = try await post(c, "/v1/responses", #"{"input": "hi", "reasoning": {"effort": "low"}, "max_output_tokens": 2}"#)
            #expect(st2 == .ok, "\(text2)")
        }
    }

    /// A greedy answer: the response object's shape, and the very text chat completions give for
    /// the same messages (instructions are the system message).
    @Test func textAnswerMatchesChatCompletions() async throws {
        try await withQwen { _, c in
            let (st, v, text) = try await post(c, "/v1/responses", #"{"model": "qwen-test", "instructions": "Answer in one short sentence.", "input": "What is the capital of France?", "temperature": 0, "max_output_tokens": 24, "metadata": {"k": "v"}}"#)
            #expect(st == .ok, "\(text)")
            #expect(v?["id"]?.string?.hasPrefix("resp_") == true)
            #expect(v?["object"]?.string == "response")
            #expect(v?["created_at"]?.int != nil)
            #expect(v?["model"]?.string == "qwen-test")
            #expect(v?["instructions"]?.string == "Answer in one short sentence.")
            #expect(v?["metadata"]?["k"]?.string == "v")
            #expect(v?["temperature"] == .double(0) || v?["temperature"] == .int(0), "\(text)")
            #expect(v?["max_output_tokens"]?.int == 24)
            #expect(v?["text"]?["format"]?["type"]?.string == "text")
            #expect(v?["tool_choice"]?.string == "auto")
            let item = v?["output"]?.array?.first
            #expect(v?["output"]?.array?.count == 1, "\(text)")
            #expect(item?["type"]?.string == "message" && item?["role"]?.string == "assistant")
            #expect(item?["id"]?.string?.hasPrefix("msg_") == true)
            let part = item?["content"]?.array?.first
            #expect(part?["type"]?.string == "output_text" && part?["annotations"]?.array?.isEmpty == true)
            let answer = part?["text"]?.string ?? ""
            #expect(!answer.isEmpty)

            let (_, cv, ctext) = try await post(c, "/v1/chat/completions", #"{"messages": [{"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 24}"#)
            let choice = cv?["choices"]?.array?.first
            #expect(choice?["message"]?["content"]?.string == answer, "\(ctext) vs \(text)")
            let cut = choice?["finish_reason"]?.string == "length"
            #expect(v?["status"]?.string == (cut ? "incomplete" : "completed"))
            #expect(item?["status"]?.string == (cut ? "incomplete" : "completed"))
            let u = v?["usage"]
            #expect(u?["input_tokens"] == cv?["usage"]?["prompt_tokens"], "\(text)")
            #expect(u?["output_tokens"] == cv?["usage"]?["completion_tokens"])
            #expect(u?["total_tokens"]?.int == (u?["input_tokens"]?.int ?? 0) + (u?["output_tokens"]?.int ?? 0))
            #expect(u?["input_tokens_details"]?["cached_tokens"]?.int != nil)
            #expect(u?["output_tokens_details"]?["reasoning_tokens"]?.int == 0)
        }
    }

    /// The stream: created, in_progress, the item and part opened, deltas, everything closed,
    /// completed, numbered 0, 1, 2, …; the deltas make the final text, the same as unstreamed.
    @Test func streamedEventsInOrder() async throws {
        try await withQwen { _, c in
            let ask = #""input": [{"role": "user", "content": [{"type": "input_text", "text": "Name three colors."}]}], "temperature": 0, "max_output_tokens": 20"#
            let (_, v, _) = try await post(c, "/v1/responses", "{\(ask)}")
            let (st, _, sse) = try await post(c, "/v1/responses", #"{\#(ask), "stream": true}"#)
            #expect(st == .ok)
            let evs = events(sse)
            let types = evs.map(\.0)
            #expect(evs.map { $0.1["type"]?.string ?? "" } == types, "data.type is the event name")
            #expect(evs.map { $0.1["sequence_number"]?.int ?? -1 } == Array(0..<evs.count))
            let final = v?["status"]?.string == "incomplete" ? "response.incomplete" : "response.completed"
            let opening = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
            let closing = ["response.output_text.done", "response.content_part.done", "response.output_item.done", final]
            #expect(Array(types.prefix(4)) == opening, "\(types)")
            #expect(Array(types.suffix(4)) == closing, "\(types)")
            #expect(types.dropFirst(4).dropLast(4).allSatisfy { $0 == "response.output_text.delta" }, "\(types)")
            #expect(evs.first?.1["response"]?["status"]?.string == "in_progress")
            let deltas = evs.filter { $0.0 == "response.output_text.delta" }
            let itemID = evs[2].1["item"]?["id"]?.string
            #expect(deltas.allSatisfy { $0.1["item_id"]?.string == itemID && $0.1["output_index"]?.int == 0 && $0.1["content_index"]?.int == 0 })
            let streamed = deltas.compactMap { $0.1["delta"]?.string }.joined()
            let done = evs.last?.1["response"]
            #expect(streamed == outputText(done), "\(sse)")
            #expect(streamed == outputText(v))
            #expect(done?["id"] == evs.first?.1["response"]?["id"])
            #expect(done?["output"]?.array?.first?["id"]?.string == itemID)
        }
    }

    /// A required function tool gives a function_call item whose arguments match the parameters;
    /// its output sent back (by previous_response_id, and as explicit items) gives the same
    /// prompt and the same greedy answer.
    @Test func functionCallRoundTrip() async throws {
        try await withQwen { s, c in
            let ask = #""input": "What is the weather in Paris?", "tools": [\#(Self.weather)], "temperature": 0, "max_output_tokens": 80"#
            let (st, v, text) = try await post(c, "/v1/responses", #"{\#(ask), "tool_choice": "required"}"#)
            #expect(st == .ok, "\(text)")
            #expect(v?["status"]?.string == "completed")
            let calls = (v?["output"]?.array ?? []).filter { $0["type"]?.string == "function_call" }
            let call = calls.first
            #expect(calls.count >= 1, "\(text)")
            #expect(call?["id"]?.string?.hasPrefix("fc_") == true)
            #expect(call?["call_id"]?.string?.hasPrefix("call_") == true)
            #expect(call?["name"]?.string == "get_weather")
            #expect(call?["status"]?.string == "completed")
            let argsText = call?["arguments"]?.string ?? ""
            let args = JSONValue.parse(argsText)
            #expect(args?["city"]?.string != nil, "\(argsText)")
            #expect(["celsius", "fahrenheit"].contains(args?["unit"]?.string ?? ""), "\(argsText)")
            #expect(v?["tools"]?.array?.first?["name"]?.string == "get_weather")
            #expect(v?["tool_choice"]?.string == "required")

            // Named tool_choice; and the call streamed as function_call_arguments events.
            let (_, _, sse) = try await post(c, "/v1/responses", #"{\#(ask), "tool_choice": {"type": "function", "name": "get_weather"}, "stream": true}"#)
            let evs = events(sse)
            let streamedArgs = evs.filter { $0.0 == "response.function_call_arguments.delta" }.compactMap { $0.1["delta"]?.string }.joined()
            let doneItem = evs.last { $0.0 == "response.output_item.done" }?.1["item"]
            #expect(doneItem?["type"]?.string == "function_call" && doneItem?["arguments"]?.string == streamedArgs, "\(sse)")
            #expect(JSONValue.parse(streamedArgs)?["city"]?.string != nil, "\(streamedArgs)")
            #expect(evs.last?.0 == "response.completed")

            // The result by previous_response_id.
            let id = v?["id"]?.string ?? ""
            let callID = call?["call_id"]?.string ?? ""
            let output = #"{"type": "function_call_output", "call_id": "\#(callID)", "output": "{\"temperature\": 21}"}"#
            let (st2, v2, text2) = try await post(c, "/v1/responses", #"{"previous_response_id": "\#(id)", "input": [\#(output)], "tools": [\#(Self.weather)], "temperature": 0, "max_output_tokens": 30}"#)
            #expect(st2 == .ok, "\(text2)")
            #expect(v2?["previous_response_id"]?.string == id)
            #expect(!outputText(v2).isEmpty, "\(text2)")

            // The same conversation as explicit items: the same prompt, the same answer.
            let item = #"{"type": "function_call", "call_id": "\#(callID)", "name": "get_weather", "arguments": \#(JSONValue.string(argsText).serialized())}"#
            let (st3, v3, text3) = try await post(c, "/v1/responses", #"{"input": [{"role": "user", "content": "What is the weather in Paris?"}, \#(item), \#(output)], "tools": [\#(Self.weather)], "temperature": 0, "max_output_tokens": 30}"#)
            #expect(st3 == .ok, "\(text3)")
            #expect(v3?["usage"]?["input_tokens"] == v2?["usage"]?["input_tokens"], "\(text3) vs \(text2)")
            #expect(outputText(v3) == outputText(v2))
            #expect(s.responseStore.get(v3?["id"]?.string ?? "")?.conversation.count == 4)
        }
    }

    @Test func jsonSchemaTextFormat() async throws {
        try await withQwen { _, c in
            let schema = #"{"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false}"#
            let (st, v, text) = try await post(c, "/v1/responses", #"{"input": "Describe a cat as JSON.", "max_output_tokens": 80, "temperature": 0, "text": {"format": {"type": "json_schema", "name": "cat", "strict": true, "schema": \#(schema)}}}"#)
            #expect(st == .ok, "\(text)")
            #expect(v?["status"]?.string == "completed", "\(text)")
            let obj = JSONValue.parse(outputText(v))
            #expect(obj?["name"]?.string != nil && obj?["age"]?.int != nil && obj?.object?.count == 2, "\(text)")
            #expect(v?["text"]?["format"]?["name"]?.string == "cat")
            let (_, v2, text2) = try await post(c, "/v1/responses", #"{"input": "Describe a cat as JSON.", "max_output_tokens": 60, "text": {"format": {"type": "json_object"}}}"#)
            #expect(JSONValue.parse(outputText(v2))?.object != nil || v2?["status"]?.string == "incomplete", "\(text2)")
        }
    }

    /// store (default true): GET returns the response, DELETE removes it; store false keeps nothing.
    @Test func storedResponses() async throws {
        try await withQwen { s, c in
            let (_, v, text) = try await post(c, "/v1/responses", #"{"input": "Say hi.", "max_output_tokens": 3}"#)
            let id = v?["id"]?.string ?? ""
            #expect(v?["store"]?.bool == true, "\(text)")
            let (st, got) = try await call(c, .get, "/v1/responses/\(id)")
            #expect(st == .ok && got == v)
            let (st2, del) = try await call(c, .delete, "/v1/responses/\(id)")
            #expect(st2 == .ok && del?["deleted"]?.bool == true && del?["id"]?.string == id && del?["object"]?.string == "response.deleted")
            let (st3, gone) = try await call(c, .get, "/v1/responses/\(id)")
            #expect(st3 == .notFound && gone?["error"]?["type"]?.string == "invalid_request_error")
            #expect(try await call(c, .delete, "/v1/responses/\(id)").0 == .notFound)
            let (_, v4, _) = try await post(c, "/v1/responses", #"{"input": "Say hi.", "max_output_tokens": 3, "store": false}"#)
            #expect(try await call(c, .get, "/v1/responses/\(v4?["id"]?.string ?? "")").0 == .notFound)
            #expect(s.responseStore.get(v4?["id"]?.string ?? "") == nil)
        }
    }

    /// A length cut: status incomplete, reason max_output_tokens, the message item incomplete.
    @Test func lengthCutIsIncomplete() async throws {
        try await withQwen { _, c in
            let (st, v, text) = try await post(c, "/v1/responses", #"{"input": "Write a long story about a dragon.", "max_output_tokens": 3, "temperature": 0}"#)
            #expect(st == .ok, "\(text)")
            #expect(v?["status"]?.string == "incomplete", "\(text)")
            #expect(v?["incomplete_details"]?["reason"]?.string == "max_output_tokens")
            #expect(v?["output"]?.array?.first?["status"]?.string == "incomplete")
            #expect(v?["usage"]?["output_tokens"]?.int == 3)
            let (_, _, sse) = try await post(c, "/v1/responses", #"{"input": "Write a long story about a dragon.", "max_output_tokens": 3, "temperature": 0, "stream": true}"#)
            let last = events(sse).last
            #expect(last?.0 == "response.incomplete" && last?.1["response"]?["incomplete_details"]?["reason"]?.string == "max_output_tokens", "\(sse)")
        }
    }

    /// The store keeps at most `capacity` (least recently used out first), each for `ttl`.
    @Test func storeIsBoundedLRUWithTTL() {
        let store = ResponseStore(capacity: 2, ttl: .seconds(60))
        let t0 = ContinuousClock.now
        store.put("a", response: "a", conversation: [], now: t0)
        store.put("b", response: "b", conversation: [], now: t0)
        #expect(store.get("a", now: t0) != nil)  // a is now more recent than b
        store.put("c", response: "c", conversation: [], now: t0)
        #expect(store.count == 2)
        #expect(store.get("b", now: t0) == nil)
        #expect(store.get("a", now: t0)?.response == "a" && store.get("c", now: t0) != nil)
        #expect(store.get("a", now: t0 + .seconds(61)) == nil)
        #expect(!store.remove("c", now: t0 + .seconds(61)))
        #expect(store.count == 0)

        // The byte budget: a big conversation pushes out the least recently used.
        let small = ResponseStore(capacity: 10, maxBytes: 1000, ttl: .seconds(60))
        let big = [ChatMessageInput(role: "user", content: String(repeating: "x", count: 600))]
        small.put("a", response: "a", conversation: big, now: t0)
        small.put("b", response: "b", conversation: big, now: t0)
        #expect(small.count == 1 && small.get("b", now: t0) != nil && small.get("a", now: t0) == nil)
    }
}
