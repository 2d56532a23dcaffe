import GRPCCore
import Server

/// `grpc.health.v1.Health`: SERVING when the server takes new work, NOT_SERVING while draining
/// or not ready — the server's one readiness rule, the one /readyz answers from. Known service
/// names: "" (the whole server) and `autoglm.v1.AutoGLM`.
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let server: OpenAIServer
    let state: FrontEndState
    /// How often `Watch` looks at readiness (it changes with the engine's progress and the drain,
    /// which notify no one).
    static let watchInterval: Duration = .milliseconds(200)

    static let services: [String] = ["", Autoglm_V1_AutoGLM.descriptor.fullyQualifiedService]

    var status: Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        if state.isClosing { return .notServing }
        return server.readiness == .ready ? .serving : .notServing
    }

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard Self.services.contains(request.service) else {
            throw RPCError(code: .notFound, message: "unknown service '\(request.service)'; this server reports '' and '\(Self.services[1])'")
        }
        let s = status
        return .with { $0.status = s }
    }

    func list(request: Grpc_Health_V1_HealthListRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthListResponse {
        let s = status
        return .with { r in
            for name in Self.services { r.statuses[name] = .with { $0.status = s } }
        }
    }

    /// Sends the status now and on every change, until the client cancels or the listener
    /// closes (then NOT_SERVING is the last message). An unknown service gets SERVICE_UNKNOWN.
    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
               context: ServerContext) async throws {
        guard Self.services.contains(request.service) else {
            try await response.write(.with { $0.status = .serviceUnknown })
            // Per the protocol the call stays open; it ends when the client cancels or the server closes.
            while !context.cancellation.isCancelled && !state.isClosing {
                try await Task.sleep(for: Self.watchInterval)
            }
            return
        }
        var last: Grpc_Health_V1_HealthCheckResponse.ServingStatus?
        while !context.cancellation.isCancelled {
            let s = status
            if s != last {
                try await response.write(.with { $0.status = s })
                last = s
            }
            if state.isClosing { return }
            try await Task.sleep(for: Self.watchInterval)
        }
    }
}
