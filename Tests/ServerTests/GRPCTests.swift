import Engine
import Foundation
import GRPCAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import Server
import ServiceLifecycle
import SwiftProtobuf
import Testing

/// The gRPC API over loopback HTTP/2 (grpc-swift's own client) against a server with the gemma3
/// test model; the engine's own scheduler (and HTTP's rules) are the oracles.
@Suite(.serialized)
struct GRPCTests {
    static let key = "grpc-test-key"
    static let auth: Metadata = ["authorization": "Bearer \(key)"]

    /// Runs `body` with a started engine, the gRPC front end on a free port, and a client to it.
    static func withAPI(maxQueue: Int = 64, maxSeqs: Int = 4,
                        _ body: (OpenAIServer, GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
        guard let lm = try Fixture.model() else { return }
        let sched = Scheduler(model: lm, config: SchedulerConfig(maxSeqs: maxSeqs, maxBatchedTokens: 64, kvCacheMB: 64, contextLength: 256))
        var c = ServerConfig()
        c.servedModelName = "gemma3-test"
        c.apiKeys = [key]
        c.maxQueue = maxQueue
        let server = OpenAIServer(scheduler: sched, config: c, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        sched.start()
        defer { sched.terminate() }
        let front = GRPCFrontEnd(server: server, host: "127.0.0.1", port: 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await front.run() }
            let port = try await front.port
            try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port),
                                                              transportSecurity: .plaintext)) { client in
                try await body(server, client)
            }
            group.cancelAll()
        }
    }

    static func generate(_ api: Autoglm_V1_AutoGLM.Client<HTTP2ClientTransport.Posix>, _ prompt: String,
                         _ p: Autoglm_V1_GenerationParams) async throws -> [Autoglm_V1_GenerateResponse] {
        try await api.generate(.with { $0.prompt = prompt; $0.params = p }, metadata: auth) { response in
            var out: [Autoglm_V1_GenerateResponse] = []
            for try await m in response.messages { out.append(m) }
            return out
        }
    }

    static func code(_ work: () async throws -> Void) async -> RPCError.Code? {
        do { try await work(); return nil } catch let e as RPCError { return e.code } catch { return .unknown }
    }

    @Test func greedyStreamEqualsTheEngineAndEndsWithUsage() async throws {
        try await Self.withAPI { server, client in
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            let prompt = "The capital of France is"
            let msgs = try await Self.generate(api, prompt, .with { $0.maxTokens = 12; $0.temperature = 0 })
            // Oracle: the same request straight to the scheduler.
            let tok = server.scheduler.loaded.tokenizer
            let h = try server.scheduler.submit(GenerationRequest(promptIDs: tok.encode(prompt), maxTokens: 12, sampling: .greedy))
            var ids: [Int32] = [], text = ""
            var done: SequenceCompletion?
            for await e in h.events {
                switch e {
                case .token(let t): ids.append(t.id); text += t.text
                case .finished(let f): text += f.text; done = f
                }
            }
            #expect(msgs.flatMap(\.tokenIds) == ids)
            #expect(msgs.map(\.text).joined() == text)
            let last = try #require(msgs.last)
            #expect(last.finishReason == done?.reason.rawValue)
            #expect(last.usage.promptTokens == Int32(tok.encode(prompt).count))
            #expect(last.usage.completionTokens == Int32(done?.completionTokens ?? -1))
            #expect(msgs.dropLast().allSatisfy { $0.finishReason.isEmpty })
        }
    }

    @Test func tokenizeModelsAndAuth() async throws {
        try await Self.withAPI { server, client in
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            let tok = server.scheduler.loaded.tokenizer
            let r = try await api.tokenize(.with { $0.text = "Hello, world!"; $0.addSpecial = true }, metadata: Self.auth)
            #expect(r.tokenIds == tok.encode("Hello, world!", addBOS: true))
            let bare = try await api.tokenize(.with { $0.text = "Hello, world!" }, metadata: Self.auth)
            #expect(bare.tokenIds == tok.encode("Hello, world!", addBOS: false))
            let m = try await api.models(.init(), metadata: Self.auth)
            #expect(m.models.map(\.id) == ["gemma3-test"])
            #expect(m.models.first?.maxModelLen == 256)
            #expect(await Self.code { _ = try await api.models(.init()) } == .unauthenticated)
            #expect(await Self.code { _ = try await api.models(.init(), metadata: ["authorization": "Bearer nope"]) } == .unauthenticated)
        }
    }

    @Test func httpValidationAsStatusCodes() async throws {
        try await Self.withAPI { _, client in
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            #expect(await Self.code { _ = try await Self.generate(api, "Hi", .with { $0.temperature = 5 }) } == .invalidArgument)
            #expect(await Self.code { _ = try await Self.generate(api, "Hi", .with { $0.topP = 0 }) } == .invalidArgument)
            #expect(await Self.code { _ = try await Self.generate(api, "Hi", .with { $0.maxTokens = 100_000 }) } == .invalidArgument)
            #expect(await Self.code { _ = try await Self.generate(api, "Hi", .with { $0.model = "other" }) } == .notFound)
            #expect(await Self.code {
                _ = try await api.chat(.with { $0.messages = [.with { $0.role = "robot"; $0.content = "x" }] }, metadata: Self.auth) { r in
                    for try await _ in r.messages {}
                }
            } == .invalidArgument)
        }
    }

    @Test func queueFullIsResourceExhaustedWithRetryInfo() async throws {
        try await Self.withAPI(maxQueue: 0) { _, client in
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            do {
                _ = try await Self.generate(api, "Hi", .with { $0.maxTokens = 2 })
                Issue.record("a request past a queue of 0 was served")
            } catch let e as RPCError {
                #expect(e.code == .resourceExhausted)
                #expect(Array(e.metadata[stringValues: "retry-after"]) == ["1"])
                let status = try e.unpackGoogleRPCStatus()
                #expect(status?.details.compactMap(\.retryInfo).first?.delay == .seconds(1))
            }
        }
    }

    @Test func cancelMidStreamFreesTheKV() async throws {
        try await Self.withAPI { server, client in
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            let req = Autoglm_V1_GenerateRequest.with {
                $0.prompt = "Count from 1 to 200: 1, 2, 3,"
                $0.params = .with { $0.maxTokens = 200; $0.temperature = 0 }
            }
            // Leaving the response handler after two messages cancels the RPC.
            let read = try await api.generate(req, metadata: Self.auth) { response in
                var n = 0
                for try await _ in response.messages {
                    n += 1
                    if n == 2 { break }
                }
                #expect(server.scheduler.stats.kvBlocksUsed > 0)
                return n
            }
            #expect(read == 2)
            #expect(await eventually { server.scheduler.stats.running == 0 && server.scheduler.stats.kvBlocksUsed == 0 })
            #expect(server.scheduler.stats.cancelRequests >= 1)
        }
    }

    @Test func healthFollowsReadinessAndDrainRefusesNewWork() async throws {
        try await Self.withAPI { server, client in
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            let api = Autoglm_V1_AutoGLM.Client(wrapping: client)
            let whole = try await health.check(.with { $0.service = "" })
            #expect(whole.status == .serving)
            let api1 = try await health.check(.with { $0.service = "autoglm.v1.AutoGLM" })
            #expect(api1.status == .serving)
            #expect(await Self.code { _ = try await health.check(.with { $0.service = "nope" }) } == .notFound)
            server.beginDraining()
            let draining = try await health.check(.with { $0.service = "" })
            #expect(draining.status == .notServing)
            #expect(await Self.code { _ = try await Self.generate(api, "Hi", .with { $0.maxTokens = 2 }) } == .unavailable)
        }
    }

    @Test func reflectionListsTheServicesAndDescribesTheAPI() async throws {
        try await Self.withAPI { _, client in
            let refl = Grpc_Reflection_V1_ServerReflection.Client(wrapping: client)
            let answers = try await refl.serverReflectionInfo(requestProducer: { w in
                try await w.write(.with { $0.listServices = "" })
                try await w.write(.with { $0.fileContainingSymbol = "autoglm.v1.GenerateRequest" })
                try await w.write(.with { $0.fileByFilename = "missing.proto" })
            }) { r in
                var out: [Grpc_Reflection_V1_ServerReflectionResponse] = []
                for try await m in r.messages { out.append(m) }
                return out
            }
            #expect(answers.count == 3)
            #expect(answers[0].listServicesResponse.service.map(\.name)
                    == ["autoglm.v1.AutoGLM", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"])
            let bytes = try #require(answers[1].fileDescriptorResponse.fileDescriptorProto.first)
            let file = try Google_Protobuf_FileDescriptorProto(serializedBytes: bytes)
            #expect(file.name == "autoglm/v1/autoglm.proto")
            #expect(file.service.first?.method.map(\.name) == ["Generate", "Chat", "Tokenize", "Models"])
            #expect(answers[2].errorResponse.errorCode == Int32(RPCError.Code.notFound.rawValue))
        }
    }
}
