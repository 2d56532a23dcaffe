import Foundation
import GGUF
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Registry
import Server
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Sends one raw HTTP/1.1 request (the request target exactly as given, no client-side
/// normalization) and returns the response's status code, or nil when the server closed the
/// connection without answering.
func rawRequest(port: Int, method: String, target: String, headers: [String] = []) -> Int? {
    let fd = connectLoopback(port)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var req = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n"
    for h in headers { req += h + "\r\n" }
    req += "\r\n"
    _ = req.withCString { send(fd, $0, strlen($0), 0) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 64 {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
    }
    // "HTTP/1.1 401 Unauthorized"
    let line = String(decoding: bytes.prefix(while: { $0 != 13 }), as: UTF8.self)
    let parts = line.split(separator: " ")
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
    return Int(parts[1])
}

/// Runs blocking work (socket I/O) on a thread of its own: blocking the cooperative pool, whose
/// threads (one per core) also run the server under test, would starve the server, and GCD's
/// pool is where the server prepares requests (a probe queued behind a tokenization would
/// measure the queue, not the server).
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        let t = Thread { cont.resume(returning: work()) }
        t.start()
    }
}

/// `rawRequest` off the cooperative pool.
func request(port: Int, method: String, target: String, headers: [String] = []) async -> Int? {
    await offPool { rawRequest(port: port, method: method, target: target, headers: headers) }
}

/// The handler path a request target reaches under the router's rule: scheme and authority,
/// query and fragment dropped, empty segments omitted.
func routedPath(_ target: String) -> String {
    var t = Substring(target)
    if let scheme = t.range(of: "://") {
        t = t[scheme.upperBound...]
        t = t.firstIndex(of: "/").map { t[$0...] } ?? ""
    }
    if let q = t.firstIndex(where: { $0 == "?" || $0 == "#" }) { t = t[..<q] }
    return "/" + t.split(separator: "/").joined(separator: "/")
}

/// Every spelling of `path` a client (or an attacker) can put in a request line.
func pathSpellings(_ path: String) -> [String] {
    let segs = path.split(separator: "/").map(String.init)
    let joined = { (sep: String) in "/" + segs.joined(separator: sep) }
    let first = segs.first ?? ""
    let rest = segs.dropFirst().joined(separator: "/")
    let encodedFirst = first.unicodeScalars.map { String(format: "%%%02X", $0.value) }.joined()
    return [
        path, "/" + path, "//" + path, joined("//"), joined("///"), path + "/", path + "//",
        "/." + path, "/./" + segs.joined(separator: "/./"), "/x/.." + path, "/x/../" + segs.joined(separator: "/y/../"),
        "/" + encodedFirst + (rest.isEmpty ? "" : "/" + rest), joined("%2F"), joined("%2f"), joined("\\"),
        path.uppercased(), path + "?x=1", path + "#frag", path + ";x", path + "%00", path + "%20",
        "http://127.0.0.1" + path, "http://127.0.0.1/" + path, "https://evil.example" + path,
    ]
}

@Suite(.serialized)
struct AuthTests {
    /// Walks every route the server mounts × every path spelling × every method, without a key
    /// (and with a wrong one): nothing but the public probes may answer anything other than 401
    /// (or a 400 for a request line the HTTP parser refuses, or a closed connection). The
    /// registry's routes are mounted as `autoglm serve` mounts them.
    @Test func everyRouteSpellingAndMethodNeedsTheKey() async throws {
        guard var server = try Fixture.server(keys: ["k1"]) else { return }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-auth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let registry = try Registry(home: home.path)
        var cfg = server.config
        cfg.extraRoutes.append { router in RegistryRoutes.add(to: router, registry: registry, exposePaths: false) }
        server = OpenAIServer(scheduler: server.scheduler, config: cfg,
                              logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        server.scheduler.start()
        defer { server.scheduler.terminate() }
        let router = server.buildRouter()
        let routes = Set(router.routes.map { $0.path.description.replacingOccurrences(of: "{id}", with: "m")
                                                .replacingOccurrences(of: ":id", with: "m") })
        #expect(routes.contains("/v1/chat/completions") && routes.contains("/v1/registry/models/m/resolve"),
                "routes seen: \(routes.sorted())")
        let publicRoutes: Set<String> = ["/healthz", "/readyz", "/metrics"]
        let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            var checked = 0, refusedByParser = 0
            var leaks: [String] = []
            for route in routes.sorted() {
                for target in pathSpellings(route) + pathSpellings("/v1/registry/models") + pathSpellings("/nothing/here") {
                    for method in methods {
                        for auth in [[], ["Authorization: Bearer wrong"], ["Authorization: k1"], ["Authorization: Basic azE="]] {
                            let status = await request(port: port, method: method, target: target, headers: auth)
                            checked += 1
                            switch status {
                            case 401: continue
                            case 400, nil: refusedByParser += 1
                            default:
                                // Only a GET of a public probe, under a spelling the router maps to it, may answer.
                                if method == "GET", publicRoutes.contains(routedPath(target)) { continue }
                                leaks.append("\(method) \(target) \(auth) → \(status.map(String.init) ?? "closed")")
                            }
                        }
                    }
                }
            }
            #expect(leaks.isEmpty, "answered without a valid key:\n\(leaks.prefix(40).joined(separator: "\n"))")
            #expect(checked > 3000)
            #expect(refusedByParser < checked / 4, "the parser refused \(refusedByParser) of \(checked)")
            // The key opens every route (some answer 4xx for the empty body, none 401), and the
            // public probes answer without one.
            for route in routes.sorted() where !publicRoutes.contains(route) {
                let method = route.hasSuffix("completions") ? "POST" : "GET"
                let withKey = await request(port: port, method: method, target: route, headers: ["Authorization: Bearer k1"])
                #expect(withKey != nil && withKey != 401, "\(method) \(route) with the key → \(String(describing: withKey))")
                #expect(await request(port: port, method: method, target: "/" + route) == 401)
            }
            for route in publicRoutes {
                #expect(await request(port: port, method: "GET", target: route) == 200, "GET \(route)")
            }
        }
    }

    /// The registry mounted on a serving API does not tell clients the host's file paths.
    @Test func servingMountHidesHostPaths() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-auth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let registry = try Registry(home: home.path)
        var w = GGUFWriter()
        try w.add(key: "general.architecture", value: .string("llama"))
        try w.addTensor(name: "tok_embd.weight", dims: [8], f32: (0..<8).map { Float($0) })
        let model = home.path + "-m.gguf"
        try w.write(to: model)
        defer { try? FileManager.default.removeItem(atPath: model) }
        let v = try registry.register(file: model, model: "m", version: try SemVer(parsing: "1.0.0"), source: "file:\(model)", link: true)
        for expose in [false, true] {
            let router = Router()
            RegistryRoutes.add(to: router, registry: registry, exposePaths: expose)
            let app = Application(router: router)
            try await app.test(.router) { c in
                for uri in ["/v1/registry/models/m/resolve", "/v1/registry/models/m/versions"] {
                    try await c.execute(uri: uri, method: .get) { r in
                        #expect(r.status == .ok)
                        let text = String(buffer: r.body)
                        #expect(text.contains(v.path) == expose, "\(uri) expose=\(expose): \(text)")
                        #expect(text.contains("\"path\"") == expose, "\(uri) expose=\(expose): \(text)")
                    }
                }
            }
        }
    }
}
