import Engine
import Foundation
import GRPCCore
import Server

/// `autoglm.v1.AutoGLM` over the HTTP server's `OpenAIServer`: every request becomes the
/// OpenAI-shaped body the HTTP API takes, so parsing, validation, chat templating, tokenization,
/// admission, the request timeout and metrics are the HTTP path's own. Handlers only translate
/// and await the engine's event streams; the engine thread does the compute.
struct AutoGLMService: Autoglm_V1_AutoGLM.SimpleServiceProtocol {
    let server: OpenAIServer
    let state: FrontEndState

    func generate(request: Autoglm_V1_GenerateRequest, response: RPCWriter<Autoglm_V1_GenerateResponse>,
                  context: ServerContext) async throws {
        var body = Self.body(request.params)
        body["prompt"] = .string(request.prompt)
        try await stream(.object(body), chat: false, to: response)
    }

    func chat(request: Autoglm_V1_ChatRequest, response: RPCWriter<Autoglm_V1_GenerateResponse>,
              context: ServerContext) async throws {
        var body = Self.body(request.params)
        body["messages"] = .array(request.messages.map { ["role": .string($0.role), "content": .string($0.content)] })
        try await stream(.object(body), chat: true, to: response)
    }

    func tokenize(request: Autoglm_V1_TokenizeRequest, context: ServerContext) async throws -> Autoglm_V1_TokenizeResponse {
        do {
            let ids = try await server.tokenize(request.text, addSpecial: request.addSpecial)
            return .with { $0.tokenIds = ids }
        } catch {
            throw StatusMapping.rpcError(error)
        }
    }

    func models(request: Autoglm_V1_ModelsRequest, context: ServerContext) async throws -> Autoglm_V1_ModelsResponse {
        let m = server.servedModel
        return .with {
            $0.models = [.with { model in
                model.id = m.id
                model.maxModelLen = Int32(clamping: m.maxModelLen)
                model.ownedBy = "autoglm"
            }]
        }
    }

    /// The HTTP body fields of the generation parameters (unset: the HTTP defaults).
    static func body(_ p: Autoglm_V1_GenerationParams) -> [String: JSONValue] {
        var o: [String: JSONValue] = ["stream": .bool(true)]
        if p.hasMaxTokens { o["max_tokens"] = .int(Int(p.maxTokens)) }
        if p.hasTemperature { o["temperature"] = .double(p.temperature) }
        if p.hasTopP { o["top_p"] = .double(p.topP) }
        if p.hasSeed { o["seed"] = .int(Int(p.seed)) }
        if !p.stop.isEmpty { o["stop"] = .array(p.stop.map { .string($0) }) }
        if !p.model.isEmpty { o["model"] = .string(p.model) }
        return o
    }

    /// Starts the generation and streams it: one message per token (its id and the text it
    /// released), then a last message with the finish reason and usage. A cancelled RPC (client
    /// gone, deadline) cancels the sequence in the engine, which frees its KV within a step.
    func stream(_ body: JSONValue, chat: Bool, to response: RPCWriter<Autoglm_V1_GenerateResponse>) async throws {
        // While draining, new work goes elsewhere (in-flight streams finish).
        if server.isDraining || state.isClosing {
            throw RPCError(code: .unavailable, message: "the server is draining (shutting down); send new requests to another replica")
        }
        state.enter()
        defer { state.leave() }
        let gen: GenerationStream
        do {
            gen = try await server.startStream(body: body, chat: chat)
        } catch {
            throw StatusMapping.rpcError(error)
        }
        try await withRPCCancellationHandler {
            var tokenTimes: [ContinuousClock.Instant] = []
            // A failed write (client gone): the sequence is cancelled and its events read to the
            // end, so its finish is recorded like any other.
            var writeError: (any Error)?
            for await (_, event) in gen.events {
                switch event {
                case .token(let t):
                    tokenTimes.append(t.time)
                    guard writeError == nil else { continue }
                    do {
                        try await response.write(.with {
                            $0.text = t.text
                            $0.tokenIds = [t.id]
                        })
                    } catch {
                        writeError = error
                        gen.cancel()
                    }
                case .finished(let f):
                    if let e = gen.finish(f, tokenTimes: tokenTimes) { throw StatusMapping.rpcError(e) }
                    if let writeError { throw writeError }
                    if f.reason == .cancelled {
                        throw RPCError(code: .cancelled, message: "the request was cancelled")
                    }
                    try await response.write(.with {
                        $0.text = f.text
                        $0.finishReason = f.reason.rawValue
                        $0.usage = .with { u in
                            u.promptTokens = Int32(clamping: gen.promptTokens)
                            u.completionTokens = Int32(clamping: f.completionTokens)
                        }
                    })
                    return
                }
            }
            // The events ended without a finish: this task was cancelled.
            gen.cancel()
            throw RPCError(code: .cancelled, message: "the request was cancelled")
        } onCancelRPC: {
            gen.cancel()
        }
    }
}
