import GRPCCore
import GRPCProtobuf
import Server

/// The HTTP API's errors as gRPC statuses (the message is the HTTP error's, fix included).
enum StatusMapping {
    /// Seconds a client refused for a full queue should wait (HTTP's `Retry-After`).
    static let retryAfterSeconds = 1

    static func code(httpStatus: Int) -> RPCError.Code {
        switch httpStatus {
        case 400, 413, 422: return .invalidArgument
        case 401: return .unauthenticated
        case 403: return .permissionDenied
        case 404: return .notFound
        case 429: return .resourceExhausted
        case 499: return .cancelled
        case 503: return .unavailable
        case 504: return .deadlineExceeded
        default: return .internalError
        }
    }

    /// The status for an `APIError`. RESOURCE_EXHAUSTED carries google.rpc.RetryInfo in
    /// `grpc-status-details-bin` and a `retry-after` (seconds) trailing metadata key.
    static func rpcError(_ e: APIError) -> RPCError {
        let code = code(httpStatus: e.status.code)
        if code == .resourceExhausted {
            var err = RPCError(GoogleRPCStatus(code: code, message: e.message,
                                               details: [.retryInfo(delay: .seconds(retryAfterSeconds))]))
            err.metadata.addString(String(retryAfterSeconds), forKey: "retry-after")
            return err
        }
        return RPCError(code: code, message: e.message)
    }
}
