import Grammar
import JSON
import Testing

/// Tool calls read back from model text, whole and streamed in every split.
struct ToolCallTests {
    let tools = ["get_weather", "search"]

    @Test func hermesCallsAndContent() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": \\\"x\\\"}\"}\n</tool_call>"
        let (content, calls) = ToolCallFormat.hermes.parse(text, tools: tools)
        #expect(content == "Let me check.\n")
        #expect(calls == [ParsedToolCall(name: "get_weather", arguments: #"{"city":"Paris","unit":"c"}"#),
                          ParsedToolCall(name: "search", arguments: #"{"q":"x"}"#)])
    }

    /// Text that looks like a call but is not one (unknown tool, broken JSON) stays content.
    @Test func notACallStaysContent() {
        for text in ["<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>",
                     "<tool_call>\n{\"name\": \"search\", \"arguments\": {\n</tool_call>",
                     "a < b and <tool_ca", "plain text"] {
            let (content, calls) = ToolCallFormat.hermes.parse(text, tools: tools)
            #expect(calls.isEmpty, "\(text)")
            #expect(content == text, "\(text)")
        }
    }

    /// Streaming gives the same content and calls however the text is cut.
    @Test func everySplitGivesTheWholeParse() {
        let text = "Sure <tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"<tool_call>\"}}\n</tool_call> done <tool"
        let whole = ToolCallFormat.hermes.parse(text, tools: tools)
        let chars = Array(text)
        for cut1 in 0...chars.count {
            for cut2 in stride(from: cut1, through: chars.count, by: 7) {
                var s = ToolCallStream(format: .hermes, tools: tools)
                var events = s.feed(String(chars[..<cut1]))
                events += s.feed(String(chars[cut1..<cut2]))
                events += s.feed(String(chars[cut2...]))
                events += s.finish()
                var content = ""
                var calls: [ParsedToolCall] = []
                for e in events {
                    switch e {
                    case .content(let c): content += c
                    case .call(let c): calls.append(c)
                    }
                }
                #expect(content == whole.content && calls == whole.calls, "cuts \(cut1), \(cut2)")
            }
        }
        #expect(whole.calls == [ParsedToolCall(name: "search", arguments: #"{"q":"<tool_call>"}"#)])
    }

    @Test func llama3AndGLM4() {
        let l = ToolCallFormat.llama3.parse("<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"swift\"}}", tools: tools)
        #expect(l.calls == [ParsedToolCall(name: "search", arguments: #"{"q":"swift"}"#)] && l.content.isEmpty)
        #expect(ToolCallFormat.llama3.parse("{\"answer\": 1}", tools: tools).calls.isEmpty)
        #expect(ToolCallFormat.llama3.parse("Hello", tools: tools).content == "Hello")
        let g = ToolCallFormat.glm4.parse("get_weather\n{\"city\": \"Beijing\"}", tools: tools)
        #expect(g.calls == [ParsedToolCall(name: "get_weather", arguments: #"{"city":"Beijing"}"#)])
        #expect(ToolCallFormat.glm4.parse("get the weather\nplease", tools: tools).calls.isEmpty)
    }

    @Test func formatFromTemplate() {
        #expect(ToolCallFormat.detect(template: "{{- '<tool_call>' }}") == .hermes)
        #expect(ToolCallFormat.detect(template: "[gMASK]<sop>{% for m in messages %}<|observation|>{% endfor %}") == .glm4)
        #expect(ToolCallFormat.detect(template: "{{- '<|python_tag|>' }}") == .llama3)
        #expect(ToolCallFormat.detect(template: nil) == .hermes)
    }
}
