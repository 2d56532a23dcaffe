import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Registry

/// The registry's REST API, mountable on any router (`autoglm serve` adds it next to the OpenAI
/// routes; `autoglm registry serve` serves it alone):
///
/// - `GET /v1/registry/models` → `{"object": "list", "data": [ModelSummary]}`
/// - `GET /v1/registry/models/{id}/versions` → `{"object": "list", "data": [ModelVersion]}` (highest first)
/// - `GET /v1/registry/models/{id}/resolve?channel=stable` (or `?version=X.Y.Z`) →
///   `{"model", "version", "digest", "path", "size", "channel"}` (`path` only with `exposePaths`)
///
/// Unknown models, versions and channels answer 404 with an OpenAI-shaped error body. Database
/// reads run on a dispatch queue, off the server's event loops and the cooperative pool.
public enum RegistryRoutes {
    public struct Resolved: Codable, Sendable, Equatable {
        public var model: String
        public var version: String
        public var digest: String
        /// The blob's path on the registry's host; omitted when the routes are mounted on a serving
        /// API (`autoglm serve`), whose clients have no use for the host's file layout.
        public var path: String?
        public var size: Int64
        public var channel: String?
    }

    struct List<T: Encodable>: Encodable {
        var object = "list"
        var data: [T]
    }

    public static func add<Context: RequestContext>(to router: Router<Context>, registry: Registry, exposePaths: Bool = true) {
        router.get("/v1/registry/models") { _, _ in
            await respond { List(data: try registry.listModels()) }
        }
        router.get("/v1/registry/models/:id/versions") { _, context in
            let id = context.parameters.get("id") ?? ""
            return await respond(dropping: exposePaths ? nil : "path") { List(data: try registry.versions(of: id)) }
        }
        router.get("/v1/registry/models/:id/resolve") { request, context in
            let id = context.parameters.get("id") ?? ""
            let query = request.uri.queryParameters
            let version = query.get("version")
            let channel = query.get("channel")
            if version != nil && channel != nil {
                return error(.badRequest, "pass either ?channel= or ?version=, not both", type: "invalid_request_error", code: "invalid_value")
            }
            if let version, (try? SemVer(parsing: version)) == nil {
                return error(.badRequest, "'\(version)' is not a SemVer version (MAJOR.MINOR.PATCH[-PRE][+BUILD])",
                             type: "invalid_request_error", code: "invalid_value")
            }
            let selector = version ?? channel ?? "stable"
            return await respond {
                let v = try registry.resolve(id, channel: selector)
                return Resolved(model: v.model, version: v.version, digest: v.digest, path: exposePaths ? v.path : nil, size: v.size,
                                channel: version == nil ? selector : nil)
            }
        }
    }

    static let queue = DispatchQueue(label: "autoglm.registry-routes", attributes: .concurrent)

    /// Encodes `body()` off the event loops; `dropping` removes that key from every object in
    /// `data` (host paths on a serving API).
    static func respond<T: Encodable>(dropping: String? = nil, _ body: @escaping @Sendable () throws -> T) async -> Response {
        let result: Result<Data, any Error> = await withCheckedContinuation { cont in
            queue.async {
                do {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    enc.dateEncodingStrategy = .iso8601
                    var data = try enc.encode(try body())
                    if let dropping, var o = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                       let items = o["data"] as? [[String: Any]] {
                        o["data"] = items.map { item in
                            var i = item
                            i[dropping] = nil
                            // A local file's source names the host path too: keep only its file name.
                            if let src = i["source"] as? String, src.hasPrefix("file:") {
                                i["source"] = "file:" + URL(fileURLWithPath: String(src.dropFirst(5))).lastPathComponent
                            }
                            return i
                        }
                        data = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
                    }
                    cont.resume(returning: .success(data))
                } catch {
                    cont.resume(returning: .failure(error))
                }
            }
        }
        switch result {
        case let .success(data):
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        case let .failure(e as RegistryError):
            switch e {
            case .modelNotFound:
                return error(.notFound, e.description, type: "invalid_request_error", code: "model_not_found")
            case .versionNotFound, .noVersionForChannel:
                return error(.notFound, e.description, type: "invalid_request_error", code: "version_not_found")
            default:
                return error(.internalServerError, e.description, type: "server_error", code: "registry_error")
            }
        case let .failure(e):
            return error(.internalServerError, "registry error: \(e)", type: "server_error", code: "registry_error")
        }
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, type: String, code: String) -> Response {
        let e = APIError(status: status, message: message, type: type, code: code)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: e.json.serialized())))
    }
}

extension RegistryRoutes {
    /// Serves only the registry API (`autoglm registry serve`) until SIGINT/SIGTERM.
    public static func serve(registry: Registry, host: String, port: Int, logger: Logger) async throws {
        let router = Router()
        router.add(middleware: AccessLogMiddleware(logger: logger))
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        add(to: router, registry: registry)
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "autoglm-registry"),
                              logger: logger)
        try await app.runService()
    }
}
