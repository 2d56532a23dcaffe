import Foundation
import NIOCore

/// Checks an upstream's `text/event-stream` as it passes through, line by line, and forwards
/// every complete line at once (only a partial last line waits for the rest of it). Reads the
/// token counts on the way: the `usage` chunk when the client asked for one, else one generated
/// token per chunk that carries text.
public struct SSERelay {
    public enum Malformed: Error, CustomStringConvertible {
        case line(String)
        case data(String)
        case tooLong(Int)
        public var description: String {
            switch self {
            case .line(let l): return "the upstream sent a line that is not server-sent events: '\(l.prefix(80))'"
            case .data(let d): return "the upstream sent an event whose data is not JSON: '\(d.prefix(80))'"
            case .tooLong(let n): return "the upstream sent a line longer than \(n) bytes"
            }
        }
    }

    static let maxLine = 8 << 20
    private var partial: [UInt8] = []
    /// `data: [DONE]` seen.
    public private(set) var done = false
    /// Chunks that carried generated text (content, reasoning, a completion's text or tool-call arguments).
    public private(set) var textChunks = 0
    public private(set) var usage: (prompt: Int, completion: Int)?
    /// Rewrite chat-shaped logprobs (`logprobs.content`, as llama-server sends for
    /// /v1/completions) into the legacy completions shape the OpenAI API defines.
    public var legacyLogprobs = false
    private var offsets: [Int: Int] = [:]

    /// The complete lines of `chunk` (with what was left over before), checked; throws on the
    /// first line that is not SSE or data that is not JSON. Returns whether text arrived.
    public init() {}

    public mutating func feed(_ chunk: ByteBuffer, into out: inout ByteBuffer) throws(Malformed) -> Bool {
        var sawText = false
        let bytes = chunk.readableBytesView
        var start = bytes.startIndex
        var i = start
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "\n") {
                var line = partial
                partial.removeAll(keepingCapacity: true)
                line.append(contentsOf: bytes[start..<i])
                let (text, replacement) = try check(line)
                if text { sawText = true }
                if let replacement { out.writeString(replacement) } else { out.writeBytes(line) }
                out.writeInteger(UInt8(ascii: "\n"))
                start = i + 1
            }
            i += 1
        }
        partial.append(contentsOf: bytes[start..<bytes.endIndex])
        if partial.count > Self.maxLine { throw .tooLong(Self.maxLine) }
        return sawText
    }

    /// Bytes held back (an unterminated last line) when the stream ended.
    public var leftover: Int { partial.count }

    /// Whether the line carries generated text, and a replacement for it (nil: forward as is).
    private mutating func check(_ raw: [UInt8]) throws(Malformed) -> (Bool, String?) {
        var line = raw[...]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty || line.first == UInt8(ascii: ":") { return (false, nil) }  // event boundary, comment
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else {
            // A field name alone is valid SSE (an empty value); only the known ones are expected.
            if ["data", "event", "id", "retry"].contains(text) { return (false, nil) }
            throw .line(text)
        }
        let field = text[..<colon]
        var value = text[text.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        switch field {
        case "event", "id", "retry": return (false, nil)
        case "data":
            if value == "[DONE]" { done = true; return (false, nil) }
            guard let v = try? JSONValue.parse(Data(value.utf8)), case .object(var o) = v else { throw .data(String(value)) }
            if case .object(let u)? = o["usage"], let p = u["prompt_tokens"]?.int, let c = u["completion_tokens"]?.int {
                usage = (p, c)
            }
            var replacement: String?
            if legacyLogprobs, LegacyLogprobs.rewrite(&o, offsets: &offsets) {
                replacement = "data: " + JSONValue.object(o).serialized()
            }
            if Self.carriesText(o) { textChunks += 1; return (true, replacement) }
            return (false, replacement)
        default:
            throw .line(text)
        }
    }

    static func carriesText(_ o: [String: JSONValue]) -> Bool {
        guard case .array(let choices)? = o["choices"] else { return false }
        for c in choices {
            guard case .object(let co) = c else { continue }
            if case .string(let t)? = co["text"], !t.isEmpty { return true }
            if case .object(let d)? = co["delta"] {
                for k in ["content", "reasoning_content"] { if case .string(let t)? = d[k], !t.isEmpty { return true } }
                if case .array(let calls)? = d["tool_calls"], !calls.isEmpty { return true }
            }
        }
        return false
    }
}

/// llama-server answers /v1/completions with chat-shaped logprobs (`{"content": [{token,
/// logprob, top_logprobs: [...]}]}`); the OpenAI completions API defines `{tokens,
/// token_logprobs, top_logprobs: [{token: logprob}], text_offset}`. The front door rewrites the
/// first into the second so every backend answers the same shape.
public enum LegacyLogprobs {
    /// Rewrites each choice's chat-shaped logprobs in place; `offsets` carries each choice's text
    /// position across stream chunks. True when something changed.
    public static func rewrite(_ o: inout [String: JSONValue], offsets: inout [Int: Int]) -> Bool {
        guard case .array(var choices)? = o["choices"] else { return false }
        var changed = false
        for (i, c) in choices.enumerated() {
            guard case .object(var co) = c, case .object(let lp)? = co["logprobs"], lp["tokens"] == nil,
                  case .array(let content)? = lp["content"] else { continue }
            let index = co["index"]?.int ?? i
            var pos = offsets[index] ?? 0
            var tokens: [JSONValue] = [], values: [JSONValue] = [], tops: [JSONValue] = [], offs: [JSONValue] = []
            for e in content {
                guard case .object(let eo) = e else { continue }
                let t = eo["token"]?.string ?? ""
                tokens.append(.string(t))
                values.append(eo["logprob"] ?? .null)
                var d: [String: JSONValue] = [:]
                if case .array(let alts)? = eo["top_logprobs"] {
                    for a in alts { if case .object(let ao) = a, let at = ao["token"]?.string { d[at] = ao["logprob"] ?? .null } }
                }
                tops.append(.object(d))
                offs.append(.int(pos))
                pos += t.utf8.count
            }
            offsets[index] = pos
            co["logprobs"] = ["tokens": .array(tokens), "token_logprobs": .array(values), "top_logprobs": .array(tops),
                              "text_offset": .array(offs)]
            choices[i] = .object(co)
            changed = true
        }
        if changed { o["choices"] = .array(choices) }
        return changed
    }
}
