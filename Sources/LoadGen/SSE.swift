import Foundation

/// Incremental `text/event-stream` reader: feed bytes, get the `data:` payload of every
/// completed event (multi-line data joined by "\n"; comments and other fields ignored).
public struct SSEParser: Sendable {
    var line: [UInt8] = []
    var data: [String] = []
    var sawData = false

    public init() {}

    public mutating func feed<S: Sequence>(_ bytes: S) -> [String] where S.Element == UInt8 {
        var out: [String] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                if line.isEmpty {
                    if sawData { out.append(data.joined(separator: "\n")) }
                    data.removeAll(keepingCapacity: true)
                    sawData = false
                } else if line.starts(with: Self.prefix) {
                    var payload = line.dropFirst(Self.prefix.count)
                    if payload.first == UInt8(ascii: " ") { payload = payload.dropFirst() }
                    data.append(String(decoding: payload, as: UTF8.self))
                    sawData = true
                }
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
            }
        }
        return out
    }

    /// Whether bytes of an unfinished event are pending (a stream that ends here was cut off).
    public var hasPartialEvent: Bool { !line.isEmpty || sawData }

    static let prefix = Array("data:".utf8)
}

/// What one streamed chunk carried.
struct ChunkInfo {
    var content = false
    /// The content text the chunk carried (answers, for multi-turn conversations).
    var text = ""
    var completionTokens: Int?
    var promptTokens: Int?
    var error: String?
}

enum ChunkReader {
    /// Reads one OpenAI streaming chunk (completions `choices[].text` or chat `choices[].delta.content`).
    static func read(_ payload: String) -> ChunkInfo? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else { return nil }
        var info = ChunkInfo()
        if let err = obj["error"] {
            if let e = err as? [String: Any], let m = e["message"] as? String { info.error = m } else { info.error = "\(err)" }
            return info
        }
        if let choices = obj["choices"] as? [Any] {
            for case let c as [String: Any] in choices {
                if let t = c["text"] as? String, !t.isEmpty { info.content = true; info.text += t }
                if let d = c["delta"] as? [String: Any] {
                    if let t = d["content"] as? String, !t.isEmpty { info.content = true; info.text += t }
                    if let t = d["reasoning_content"] as? String, !t.isEmpty { info.content = true }
                }
            }
        }
        if let u = obj["usage"] as? [String: Any] {
            info.completionTokens = (u["completion_tokens"] as? NSNumber)?.intValue
            info.promptTokens = (u["prompt_tokens"] as? NSNumber)?.intValue
        }
        return info
    }
}
