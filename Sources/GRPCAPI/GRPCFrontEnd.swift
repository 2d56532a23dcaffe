import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Server
import ServiceLifecycle
import Synchronization

/// Why the gRPC listener could not run.
public struct GRPCFrontEndError: Error, CustomStringConvertible {
    public var description: String
}

/// What the gRPC handlers share: generation RPCs in flight (the drain waits for them) and
/// whether the listener is closing (health watches end, new work is refused). One atomic each.
final class FrontEndState: Sendable {
    private let inFlight = Atomic<Int>(0)
    private let closing = Atomic<Bool>(false)

    func enter() { inFlight.add(1, ordering: .relaxed) }
    func leave() { inFlight.subtract(1, ordering: .relaxed) }
    var running: Int { inFlight.load(ordering: .relaxed) }
    func close() { closing.store(true, ordering: .releasing) }
    var isClosing: Bool { closing.load(ordering: .acquiring) }
}

/// The gRPC API (`autoglm.v1.AutoGLM`, `grpc.health.v1.Health`, `grpc.reflection.v1.ServerReflection`)
/// beside the HTTP server of `autoglm serve`, over the same `OpenAIServer`: same engine, API keys,
/// queue limit and metrics. A service-lifecycle `Service`: on graceful shutdown (the server is
/// already draining, so health says NOT_SERVING and new generations get UNAVAILABLE) it waits for
/// the generation streams in flight, at most the drain timeout, then closes the listener.
public struct GRPCFrontEnd: Service {
    let server: OpenAIServer
    let grpc: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let state: FrontEndState
    let address: String

    /// Serves on `host:port` (an IPv4 or IPv6 literal; port 0: any free port, see `port`).
    public init(server: OpenAIServer, host: String, port: Int) {
        self.server = server
        let st = FrontEndState()
        state = st
        address = "\(host):\(port)"
        transport = HTTP2ServerTransport.Posix(
            address: host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port),
            transportSecurity: .plaintext)
        let api = AutoGLMService(server: server, state: st)
        let health = HealthService(server: server, state: st)
        let reflection = ReflectionService()
        grpc = GRPCServer(
            transport: transport,
            services: [api, health, reflection],
            // Health and reflection answer without a key (like /readyz); the API needs one.
            interceptorPipeline: [.apply(APIKeyInterceptor(keys: server.config.apiKeys),
                                         to: .services([Autoglm_V1_AutoGLM.descriptor]))])
    }

    /// The bound port (once listening).
    public var port: Int {
        get async throws {
            let a = try await transport.listeningAddress
            if let v4 = a.ipv4 { return v4.port }
            if let v6 = a.ipv6 { return v6.port }
            throw GRPCFrontEndError(description: "the gRPC listener has no IP address (\(a))")
        }
    }

    public func run() async throws {
        let (grpc, server, state, address) = (grpc, server, state, address)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await grpc.serve()
                } catch {
                    // Cancelled (the service group or a test ending it): not a listener failure.
                    if Task.isCancelled { return }
                    throw GRPCFrontEndError(description: "the gRPC listener on \(address) failed: \(error); pick a free --grpc-port (0 turns gRPC off)")
                }
            }
            // Cancellation (not a graceful shutdown): the group cancels `serve`.
            guard (try? await gracefulShutdown()) != nil else { return }
            let limit = server.config.drainTimeout + server.config.unreadyDelay
            let deadline = ContinuousClock.now + .seconds(limit)
            while state.running > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            state.close()
            grpc.beginGracefulShutdown()
        }
    }
}

/// `authorization: Bearer <key>` metadata, checked like HTTP's header (`APIKeys`).
struct APIKeyInterceptor: ServerInterceptor {
    let keys: Set<String>

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let header = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        if let refusal = APIKeys.refusal(authorization: header, keys: keys) {
            throw RPCError(code: .unauthenticated, message: refusal.message)
        }
        return try await next(request, context)
    }
}
