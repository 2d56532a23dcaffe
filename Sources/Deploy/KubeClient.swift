import Spec
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One HTTP answer from the API server (any status).
public struct KubeResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var json: JSONValue? { JSONValue.parse(body) }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A REST resource type: where objects of a kind live in the API.
public struct KubeResource: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var plural: String
    public var namespaced: Bool

    static let clusterScoped: Set<String> = [
        "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
        "CustomResourceDefinition", "PriorityClass", "IngressClass",
    ]

    public init(apiVersion: String, kind: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        let lower = kind.lowercased()
        if lower.hasSuffix("s") || lower.hasSuffix("x") || lower.hasSuffix("ch") || lower.hasSuffix("sh") {
            plural = lower + "es"
        } else if lower.hasSuffix("y"), let before = lower.dropLast().last, !"aeiou".contains(before) {
            plural = String(lower.dropLast()) + "ies"
        } else {
            plural = lower + "s"
        }
        namespaced = !Self.clusterScoped.contains(kind)
    }

    /// `/api/v1` for the core group, `/apis/GROUP/VERSION` otherwise.
    public var groupPath: String { apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)" }

    public func collectionPath(namespace: String?) -> String {
        if namespaced, let ns = namespace { return "\(groupPath)/namespaces/\(KubePath.escape(ns))/\(plural)" }
        return "\(groupPath)/\(plural)"
    }

    public func path(name: String, namespace: String?) -> String {
        collectionPath(namespace: namespace) + "/" + KubePath.escape(name)
    }

    public static let deployments = KubeResource(apiVersion: "apps/v1", kind: "Deployment")
    public static let replicaSets = KubeResource(apiVersion: "apps/v1", kind: "ReplicaSet")
    public static let pods = KubeResource(apiVersion: "v1", kind: "Pod")
    public static let namespaces = KubeResource(apiVersion: "v1", kind: "Namespace")
    public static let events = KubeResource(apiVersion: "v1", kind: "Event")
}

/// What an API-server proxy request reaches.
public enum KubeProxyTarget: Sendable, Equatable, CustomStringConvertible {
    /// One of the Service's ready endpoints, on the Service port `port` (its name or number).
    case service(String, port: String)
    /// The pod, on its container port `port`.
    case pod(String, port: Int)

    var pathSegment: String {
        switch self {
        case .service(let name, let port): return "services/\(KubePath.escape(name)):\(KubePath.escape(port))"
        case .pod(let name, let port): return "pods/\(KubePath.escape(name)):\(port)"
        }
    }

    public var description: String {
        switch self {
        case .service(let name, let port): return "service/\(name):\(port)"
        case .pod(let name, let port): return "pod/\(name):\(port)"
        }
    }
}

enum KubePath {
    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func query(_ items: [(String, String)]) -> String {
        items.isEmpty ? "" : "?" + items.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }
}

/// A small Kubernetes API client over AsyncHTTPClient. Call `shutdown()` when done (or use
/// `KubeClient.with(config) { ... }`).
public final class KubeClient: Sendable {
    public let config: KubeConnectionConfig
    /// Per-request limit (connect + send + whole answer).
    public let requestTimeoutSeconds: Int
    let http: HTTPClient
    let baseURL: String
    let authorization: String?

    public init(config: KubeConnectionConfig, requestTimeoutSeconds: Int = 30, connectTimeoutSeconds: Int = 5) throws(KubeError) {
        self.config = config
        self.requestTimeoutSeconds = requestTimeoutSeconds
        var hc = HTTPClient.Configuration()
        hc.timeout = .init(connect: .seconds(Int64(connectTimeoutSeconds)), read: .seconds(Int64(requestTimeoutSeconds)))
        // Fail at once when nothing listens instead of retrying until the deadline.
        hc.connectionPool.retryConnectionEstablishment = false
        hc.redirectConfiguration = .disallow
        hc.httpVersion = .http1Only
        var base = config.server
        if config.server.hasPrefix("https://") {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let ca = config.caPEM {
                do {
                    let certs = try NIOSSLCertificate.fromPEMBytes(ca)
                    guard !certs.isEmpty else { throw KubeError.invalidCredential(what: "certificate-authority", reason: "no certificate in it") }
                    tls.trustRoots = .certificates(certs)
                } catch let e as KubeError {
                    throw e
                } catch {
                    throw .invalidCredential(what: "certificate-authority", reason: "\(error)")
                }
            }
            if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if case .clientCertificate(let certPEM, let keyPEM) = config.auth {
                do {
                    let chain = try NIOSSLCertificate.fromPEMBytes(certPEM)
                    guard !chain.isEmpty else { throw KubeError.invalidCredential(what: "client-certificate", reason: "no certificate in it") }
                    tls.certificateChain = chain.map { .certificate($0) }
                } catch let e as KubeError {
                    throw e
                } catch {
                    throw .invalidCredential(what: "client-certificate", reason: "\(error)")
                }
                do {
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: keyPEM, format: .pem))
                } catch {
                    throw .invalidCredential(what: "client-key", reason: "\(error)")
                }
            }
            hc.tlsConfiguration = tls
            // tls-server-name: request the URL under that name, connect to the real host.
            if let name = config.tlsServerName, !name.isEmpty, let url = URL(string: config.server), let host = url.host {
                hc.dnsOverride = [name: host]
                base = config.server.replacingOccurrences(of: "://" + host, with: "://" + name)
            }
        }
        self.baseURL = base
        switch config.auth {
        case .bearerToken(let t): authorization = "Bearer " + t
        case .basic(let u, let p): authorization = "Basic " + Data("\(u):\(p)".utf8).base64EncodedString()
        case .none, .clientCertificate: authorization = nil
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: hc)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Runs `body` with a client and always shuts it down.
    public static func with<T: Sendable>(_ config: KubeConnectionConfig, requestTimeoutSeconds: Int = 30,
                                         _ body: (KubeClient) async throws(KubeError) -> T) async throws(KubeError) -> T {
        let client = try KubeClient(config: config, requestTimeoutSeconds: requestTimeoutSeconds)
        do {
            let r = try await body(client)
            await client.shutdown()
            return r
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Sends one request; throws only for transport failures (any HTTP status comes back).
    /// `headers` are added to the request (an `Accept` among them replaces the JSON default).
    public func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil,
                     timeoutSeconds: Int? = nil, headers: [(String, String)] = []) async throws(KubeError) -> KubeResponse {
        var req = HTTPClientRequest(url: baseURL + path)
        req.method = HTTPMethod(rawValue: method)
        if !headers.contains(where: { $0.0.lowercased() == "accept" }) {
            req.headers.add(name: "Accept", value: "application/json")
        }
        req.headers.add(name: "User-Agent", value: "autoglm")
        if let authorization { req.headers.add(name: "Authorization", value: authorization) }
        for (name, value) in headers { req.headers.add(name: name, value: value) }
        if let body {
            req.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            req.body = .bytes(ByteBuffer(bytes: body))
        }
        let seconds = timeoutSeconds ?? requestTimeoutSeconds
        do {
            let resp = try await http.execute(req, timeout: .seconds(Int64(seconds)))
            let buf = try await resp.body.collect(upTo: 64 << 20)
            return KubeResponse(status: Int(resp.status.code), body: Array(buf.readableBytesView))
        } catch {
            throw Self.transportError(error, server: config.server, seconds: seconds, what: "\(method) \(Self.stripQuery(path))")
        }
    }

    /// Sends a request and decodes a 2xx JSON answer; any other status becomes a `KubeError`.
    public func request(_ method: String, _ path: String, json: JSONValue? = nil, contentType: String? = nil,
                        what: String? = nil) async throws(KubeError) -> JSONValue {
        let r = try await send(method, path, body: json?.bytes, contentType: contentType)
        guard (200..<300).contains(r.status) else {
            throw Self.httpError(status: r.status, body: r.body, method: method, path: path, config: config, what: what)
        }
        guard let v = r.json else {
            throw .badResponse(server: config.server, what: "\(method) \(Self.stripQuery(path)) answered \(r.status) with a body that is not JSON")
        }
        return v
    }

    public func get(_ path: String, what: String? = nil) async throws(KubeError) -> JSONValue {
        try await request("GET", path, what: what)
    }

    /// GET that answers nil for 404.
    public func getIfExists(_ path: String, what: String? = nil) async throws(KubeError) -> JSONValue? {
        let r = try await send("GET", path)
        if r.status == 404 { return nil }
        guard (200..<300).contains(r.status) else {
            throw Self.httpError(status: r.status, body: r.body, method: "GET", path: path, config: config, what: what)
        }
        return r.json
    }

    /// `/version` of the server: (gitVersion, KubeVersion).
    public func serverVersion() async throws(KubeError) -> (String, KubeVersion) {
        let v = try await get("/version")
        let git = v["gitVersion"]?.string ?? "?"
        let digits: (String?) -> Int? = { s in s.flatMap { Int($0.filter(\.isNumber)) } }
        guard let major = digits(v["major"]?.string), let minor = digits(v["minor"]?.string) else {
            throw .badResponse(server: config.server, what: "/version has no major/minor: \(v)")
        }
        return (git, KubeVersion(major: major, minor: minor))
    }

    public func namespaceExists(_ name: String) async throws(KubeError) -> Bool {
        try await getIfExists(KubeResource.namespaces.path(name: name, namespace: nil)) != nil
    }

    public func createNamespace(_ name: String) async throws(KubeError) {
        let r = try await send("POST", KubeResource.namespaces.collectionPath(namespace: nil),
                               body: JSONValue.object(["apiVersion": .string("v1"), "kind": .string("Namespace"),
                                                       "metadata": .object(["name": .string(name)])]).bytes)
        if r.status == 409 || (200..<300).contains(r.status) { return }
        throw Self.httpError(status: r.status, body: r.body, method: "POST", path: "/api/v1/namespaces", config: config,
                             what: "namespace/\(name)")
    }

    public func deleteNamespace(_ name: String) async throws(KubeError) {
        let r = try await send("DELETE", KubeResource.namespaces.path(name: name, namespace: nil))
        if r.status == 404 || (200..<300).contains(r.status) { return }
        throw Self.httpError(status: r.status, body: r.body, method: "DELETE", path: "/api/v1/namespaces/\(name)",
                             config: config, what: "namespace/\(name)")
    }

    // MARK: API-server proxy

    /// `GET path` on a pod or a Service's endpoints through the API server's proxy subresource
    /// (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`, `.../services/NAME:PORT/proxy/PATH`), so
    /// it reaches pods from outside the cluster network. Every HTTP answer comes back as it is: the
    /// pod's own, or the API server's when it cannot reach one (e.g. 503 "no endpoints available
    /// for service", whose Status message is in the body). Throws only for transport failures.
    /// (The API server consumes `Authorization`, so an API key cannot travel in that header.)
    public func proxyGet(_ target: KubeProxyTarget, namespace: String, path: String,
                         headers: [(String, String)] = [], timeoutSeconds: Int? = nil) async throws(KubeError) -> KubeResponse {
        let accept: [(String, String)] = headers.contains { $0.0.lowercased() == "accept" } ? [] : [("Accept", "*/*")]
        return try await send("GET", Self.proxyPath(target, namespace: namespace, path: path),
                              timeoutSeconds: timeoutSeconds, headers: accept + headers)
    }

    /// The proxy URL path of `path` (which may carry a query) on `target`.
    public static func proxyPath(_ target: KubeProxyTarget, namespace: String, path: String) -> String {
        let rest = path.hasPrefix("/") ? path : "/" + path
        return "/api/v1/namespaces/\(KubePath.escape(namespace))/\(target.pathSegment)/proxy\(rest)"
    }

    // MARK: error mapping

    static func stripQuery(_ path: String) -> String {
        path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
    }

    /// Maps a non-2xx answer to a `KubeError`, using the API's Status object when there is one.
    public static func httpError(status: Int, body: [UInt8], method: String, path: String,
                                 config: KubeConnectionConfig, what: String? = nil) -> KubeError {
        let st = JSONValue.parse(body)
        var message = st?["message"]?.string ?? String(decoding: body.prefix(300), as: UTF8.self)
        message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        let target = what ?? "\(method) \(stripQuery(path))"
        let user = config.userName.isEmpty ? config.auth.kindName : config.userName
        switch status {
        case 401:
            return .unauthorized(server: config.server, user: user, detail: message == "Unauthorized" ? "" : message)
        case 403 where message.contains("exceeded quota"):
            return .quotaExceeded(what: target, detail: message)
        case 403:
            return .forbidden(server: config.server, user: user, detail: message)
        case 404:
            return .notFound(what: target, namespace: nil)
        case 409:
            return .conflict(what: target, detail: message)
        case 422:
            var detail = message
            if let causes = st?.at("details", "causes")?.array, !causes.isEmpty {
                detail = causes.compactMap { c -> String? in
                    let f = c["field"]?.string ?? ""
                    let m = c["message"]?.string ?? ""
                    return f.isEmpty ? m : "\(f): \(m)"
                }.joined(separator: "; ")
            }
            return .invalidObject(what: target, detail: detail)
        default:
            return .apiError(status: status, method: method, path: stripQuery(path), detail: message)
        }
    }

    /// Maps a transport failure (no HTTP answer) to a `KubeError` that names the server.
    public static func transportError(_ error: any Error, server: String, seconds: Int, what: String) -> KubeError {
        if let e = error as? KubeError { return e }
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout:
                return .timeout(server: server, seconds: seconds, what: "connecting (\(what))")
            case .readTimeout, .deadlineExceeded, .writeTimeout:
                return .timeout(server: server, seconds: seconds, what: what)
            case .tlsHandshakeTimeout:
                return .timeout(server: server, seconds: seconds, what: "TLS handshake (\(what))")
            case .remoteConnectionClosed:
                return .cannotConnect(server: server, reason: "the server closed the connection during \(what)")
            case .cancelled:
                return .cannotConnect(server: server, reason: "the request was cancelled")
            default:
                return .cannotConnect(server: server, reason: "\(e)")
            }
        }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return transportError(first.error, server: server, seconds: seconds, what: what) }
            if let dns = e.dnsAAAAError ?? e.dnsAError {
                return .cannotConnect(server: server, reason: "cannot resolve the host name: \(dns)")
            }
            return .cannotConnect(server: server, reason: "\(e)")
        }
        if let e = error as? IOError {
            return .cannotConnect(server: server, reason: errnoText(e.errnoCode))
        }
        if let e = error as? ChannelError, case .connectTimeout = e {
            return .timeout(server: server, seconds: seconds, what: "connecting (\(what))")
        }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            return .tls(server: server, reason: "\(error)")
        }
        let text = "\(error)"
        if text.lowercased().contains("refused") { return .cannotConnect(server: server, reason: "connection refused") }
        return .cannotConnect(server: server, reason: text)
    }

    static func errnoText(_ code: Int32) -> String {
        switch code {
        case ECONNREFUSED: return "connection refused: nothing listens there"
        case EHOSTUNREACH, ENETUNREACH: return "host unreachable"
        case ECONNRESET: return "connection reset by the server"
        case ETIMEDOUT: return "connection timed out"
        default: return String(cString: strerror(code))
        }
    }
}
