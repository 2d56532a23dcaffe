// The OpenAI API's JSON documents use the shared `JSONValue` (module JSON); re-exported so the
// server's clients and tests see it through `import Server`.
@_exported import JSON

extension Optional where Wrapped == String {
    var json: JSONValue { map { .string($0) } ?? .null }
}
