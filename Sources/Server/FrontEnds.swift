import Core
import Engine
import Foundation

/// What /readyz (and gRPC health) report.
public enum Readiness: Sendable, Equatable {
    case ready
    /// Graceful shutdown began: in-flight work finishes, new work goes elsewhere.
    case draining
    case notReady(String)
}

/// One streamed generation started by another front end (the gRPC API): the same admission,
/// request timeout and metrics as a streamed HTTP completion. Read `events` to the end, then
/// `finish`; `cancel` when the client goes away (frees the sequences' KV within a step).
public final class GenerationStream: Sendable {
    /// (sequence index, event), in arrival order.
    public let events: AsyncStream<(Int, GenerationEvent)>
    public let promptTokens: Int
    let ids: [UInt64]
    let timedOut: Flag
    let server: OpenAIServer

    init(server: OpenAIServer, handles: [GenerationHandle], promptTokens: Int) {
        self.server = server
        self.promptTokens = promptTokens
        ids = handles.map(\.id)
        (events, _, timedOut) = server.mergedEvents(handles)
    }

    /// Cancels every sequence of the request (the client went away): the engine frees their KV
    /// within a step, and `events` ends with their `.cancelled` finish (pass it to `finish`).
    public func cancel() {
        for id in ids { server.scheduler.cancel(id) }
    }

    /// Records a finished sequence in the server's metrics (as HTTP does), and returns the error
    /// the client gets when it did not end normally (drain deadline, request timeout, engine
    /// failure); nil for stop / length.
    public func finish(_ c: SequenceCompletion, tokenTimes: [ContinuousClock.Instant]) -> APIError? {
        server.record(ChoiceResult(tokenTimes: tokenTimes, completion: c), timedOut: timedOut.isSet)
        return server.streamEndError(c, timedOut: timedOut.isSet)
    }
}

extension OpenAIServer {
    /// Starts a streamed generation from an OpenAI-shaped request body (`/v1/completions` when
    /// `chat` is false, `/v1/chat/completions` when true): counted on arrival, the early queue
    /// check, then the same parsing, validation, chat templating and tokenization as HTTP (off
    /// the cooperative pool), then admission under the queue limit. Throws the `APIError` HTTP
    /// would answer with.
    public func startStream(body: JSONValue, chat: Bool) async throws(APIError) -> GenerationStream {
        do throws(APIError) {
            try arrive()
            let raw = Array(body.serialized().utf8)
            let prepared = try await Self.offPool { () throws(APIError) in try self.prepare(body, raw: raw, chat: chat) }
            let handles = try admit(prepared.jobs)
            return GenerationStream(server: self, handles: handles, promptTokens: prepared.promptTokens)
        } catch {
            if error.status == .tooManyRequests { metrics.failure("queue_full") }
            throw error
        }
    }

    /// Token ids of `text` with the served model's tokenizer (`addSpecial`: with BOS), under the
    /// same prompt size limit as generation; tokenized off the cooperative pool.
    public func tokenize(_ text: String, addSpecial: Bool) async throws(APIError) -> [Int32] {
        let bytes = text.utf8.count
        if bytes > config.maxPromptBytes { throw promptTooLong("text", bytes) }
        let tokenizer = self.tokenizer
        return try await Self.offPool { () throws(APIError) in tokenizer.encode(text, addBOS: addSpecial) }
    }

    /// What `/v1/models` lists: the served name and its context length.
    public var servedModel: (id: String, maxModelLen: Int) {
        (config.servedModelName, scheduler.contextLength)
    }
}
