import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// What every front door (the native engine's server and the proxy in front of another backend)
/// does the same way: middleware order (tracing, CORS, access log, auth), CORS preflights, body limits,
/// JSON responses and OpenAI-shaped errors.
public enum FrontDoor {
    /// CORS first (a browser preflight carries no key, so it must be answered before auth), then
    /// the access log, then auth.
    static func addMiddleware(to router: Router<ServerRequestContext>, config: ServerConfig, logger: Logger) {
        // The request's span first: everything after it (the access log's trace id included) runs inside it.
        if let tracer = config.tracer { router.add(middleware: RequestTracingMiddleware(tracer: tracer)) }
        if !config.corsOrigins.isEmpty {
            router.add(middleware: CORSMiddleware(
                allowOrigin: config.corsOrigins.contains("*") ? .all : .init(anyOf: config.corsOrigins),
                allowHeaders: [.accept, .authorization, .contentType, .origin],
                allowMethods: [.get, .post, .delete, .options],
                maxAge: .seconds(600)))
        }
        router.add(middleware: AccessLogMiddleware(logger: logger))
        router.add(middleware: AuthMiddleware(keys: config.apiKeys))
    }

    /// OPTIONS routes for `paths`, so a preflight reaches the CORS middleware (which answers it)
    /// instead of the router's 404. Without allowed origins an OPTIONS request gets 204 with no
    /// CORS headers, which a browser reads as "not allowed".
    static func addPreflight(to router: Router<ServerRequestContext>, config: ServerConfig, paths: [String]) {
        for p in paths {
            router.on(RouterPath(p), method: .options) { _, _ in Response(status: .noContent) }
        }
    }

    /// The HTTP application on the configured address, with the connection limits.
    static func application(_ router: Router<ServerRequestContext>, config: ServerConfig, logger: Logger) -> some ApplicationProtocol {
        Application(router: router, server: config.httpServer,
                    configuration: .init(address: .hostname(config.host, port: config.port), serverName: "autoglm"),
                    logger: logger)
    }

    public static func json(_ status: HTTPResponse.Status, _ v: JSONValue, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        for (k, val) in extra { headers[k] = val }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: v.serialized())))
    }

    static func errorResponse(_ e: APIError) -> Response {
        json(e.status, e.json, extra: e.headers)
    }

    /// The request body, at most `maxBytes` (413 above; 400 when it cannot be read).
    static func readBody(_ req: Request, maxBytes: Int) async throws(APIError) -> ByteBuffer {
        let tooLarge = APIError(status: .contentTooLarge,
                                message: "the request body exceeds \(maxBytes) bytes; send a smaller request",
                                type: "invalid_request_error", code: "body_too_large")
        if let len = req.headers[.contentLength].flatMap(Int.init), len > maxBytes { throw tooLarge }
        do {
            return try await req.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw tooLarge
        } catch {
            // A malformed chunked encoding, a connection reset mid-body, an idle timeout: not a size problem.
            throw APIError.invalid("the request body could not be read (\(String(String(describing: error).prefix(200)))); send a complete body with Content-Length or valid chunked encoding", code: "invalid_body")
        }
    }
}

extension CORSMiddleware.AllowOriginExtended {
    /// The origins as a list (Hummingbird's `.oneOf` is variadic).
    init(anyOf origins: [String]) {
        self = origins.isEmpty ? .none : Self.oneOfList(origins)
    }

    static func oneOfList(_ o: [String]) -> Self {
        // Swift cannot splat an array into a variadic parameter: pass up to 16 origins (the CLI
        // accepts at most 16), padding with repeats of the first.
        switch o.count {
        case 1: return .oneOf(o[0])
        case 2: return .oneOf(o[0], o[1])
        case 3: return .oneOf(o[0], o[1], o[2])
        case 4: return .oneOf(o[0], o[1], o[2], o[3])
        default:
            let p = o + Array(repeating: o[0], count: max(0, 16 - o.count))
            return .oneOf(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15])
        }
    }
}

extension APIError {
    /// 429 with Retry-After: the queue is full.
    static func queueFull(_ message: String) -> APIError {
        var e = APIError(status: .tooManyRequests, message: message, type: "rate_limit_error", code: "queue_full")
        e.headers = [(.retryAfter, "1")]
        return e
    }
}
