import Foundation
import NIOCore

/// Checks an upstream's `text/event-stream` as it passes through, line by line, and forwards
/// every complete line at once (only a partial last line waits for the rest of it). Reads the
/// token counts on the way: the `usage` chunk when the client asked for one, else one generated
/// token per chunk that carries text.
struct SSERelay {
    enum Malformed: Error, CustomStringConvertible {
        case line(String)
        case data(String)
        case tooLong(Int)
        var description: String {
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
    private(set) var done = false
    /// Chunks that carried generated text (content, reasoning, a completion's text or tool-call arguments).
    private(set) var textChunks = 0
    private(set) var usage: (prompt: Int, completion: Int)?

    /// The complete lines of `chunk` (with what was left over before), checked; throws on the
    /// first line that is not SSE or data that is not JSON. Returns whether text arrived.
    mutating func feed(_ chunk: ByteBuffer, into out: inout ByteBuffer) throws(Malformed) -> Bool {
        var sawText = false
        let bytes = chunk.readableBytesView
        var start = bytes.startIndex
        var i = start
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "\n") {
                var line = partial
                partial.removeAll(keepingCapacity: true)
                line.append(contentsOf: bytes[start..<i])
                if try check(line) { sawText = true }
                out.writeBytes(line)
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
    var leftover: Int { partial.count }

    private mutating func check(_ raw: [UInt8]) throws(Malformed) -> Bool {
        var line = raw[...]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty || line.first == UInt8(ascii: ":") { return false }  // event boundary, comment
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else {
            // A field name alone is valid SSE (an empty value); only the known ones are expected.
            if ["data", "event", "id", "retry"].contains(text) { return false }
            throw .line(text)
        }
        let field = text[..<colon]
        var value = text[text.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        switch field {
        case "event", "id", "retry": return false
        case "data":
            if value == "[DONE]" { done = true; return false }
            guard let v = try? JSONValue.parse(Data(value.utf8)), case .object(let o) = v else { throw .data(String(value)) }
            if case .object(let u)? = o["usage"], let p = u["prompt_tokens"]?.int, let c = u["completion_tokens"]?.int {
                usage = (p, c)
            }
            if Self.carriesText(o) { textChunks += 1; return true }
            return false
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
