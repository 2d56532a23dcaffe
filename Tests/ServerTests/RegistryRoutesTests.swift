import Foundation
import GGUF
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Registry
import Server
import Testing

/// `/v1/registry/*` over a real registry in a temp directory, through Hummingbird's router.
@Suite struct RegistryRoutesTests {
    final class Home {
        let path = NSTemporaryDirectory() + "autoglm-routes-\(UUID().uuidString)"
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A registry with tiny@1.0.0, tiny@1.1.0-rc.1 (tagged canary) and tiny@0.9.0.
    func populated(_ home: Home) throws -> Registry {
        let r = try Registry(home: home.path + "/home")
        for (i, v) in ["1.0.0", "1.1.0-rc.1", "0.9.0"].enumerated() {
            var w = GGUFWriter()
            try w.add(key: "general.architecture", value: .string("llama"))
            try w.addTensor(name: "tok_embd.weight", dims: [8], f32: (0..<8).map { Float($0 + i) })
            let file = home.path + "/m\(i).gguf"
            try w.write(to: file)
            try r.register(file: file, model: "tiny", version: try SemVer(parsing: v), source: "file:\(file)",
                           tags: v == "1.1.0-rc.1" ? ["canary"] : [])
        }
        return r
    }

    func withApp(_ r: Registry, _ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        let router = Router()
        RegistryRoutes.add(to: router, registry: r)
        let app = Application(router: router)
        try await app.test(.router) { client in try await body(client) }
    }

    static func json(_ b: ByteBuffer) -> Any? { try? JSONSerialization.jsonObject(with: Data(b.readableBytesView)) }

    @Test func listsModelsAndVersions() async throws {
        let home = Home()
        let r = try populated(home)
        let digests = try r.versions(of: "tiny").map(\.digest)
        try await withApp(r) { c in
            try await c.execute(uri: "/v1/registry/models", method: .get) { res in
                #expect(res.status == .ok)
                let o = Self.json(res.body) as? [String: Any]
                #expect(o?["object"] as? String == "list")
                let data = o?["data"] as? [[String: Any]]
                #expect(data?.count == 1)
                #expect(data?.first?["id"] as? String == "tiny")
                #expect(data?.first?["stable"] as? String == "1.0.0")
                #expect(data?.first?["latest"] as? String == "1.1.0-rc.1")
            }
            try await c.execute(uri: "/v1/registry/models/tiny/versions", method: .get) { res in
                #expect(res.status == .ok)
                let data = (Self.json(res.body) as? [String: Any])?["data"] as? [[String: Any]]
                // SemVer order, highest first: 1.1.0-rc.1 > 1.0.0 > 0.9.0.
                #expect(data?.map { $0["version"] as? String ?? "" } == ["1.1.0-rc.1", "1.0.0", "0.9.0"])
                #expect(data?.map { $0["digest"] as? String ?? "" } == digests)
            }
        }
    }

    @Test func resolvesChannelsAndVersions() async throws {
        let home = Home()
        let r = try populated(home)
        let byVersion = Dictionary(uniqueKeysWithValues: try r.versions(of: "tiny").map { ($0.version, $0) })
        try await withApp(r) { c in
            for (query, want) in [("channel=stable", "1.0.0"), ("", "1.0.0"), ("channel=canary", "1.1.0-rc.1"),
                                  ("channel=latest", "1.1.0-rc.1"), ("version=0.9.0", "0.9.0")] {
                try await c.execute(uri: "/v1/registry/models/tiny/resolve?\(query)", method: .get) { res in
                    #expect(res.status == .ok, "\(query)")
                    let o = Self.json(res.body) as? [String: Any]
                    #expect(o?["version"] as? String == want, "\(query)")
                    #expect(o?["digest"] as? String == byVersion[want]?.digest)
                    #expect(o?["path"] as? String == byVersion[want]?.path)
                    #expect((o?["path"] as? String).map { FileManager.default.fileExists(atPath: $0) } == true)
                }
            }
        }
    }

    @Test func unknownIdsVersionsAndChannelsAre404() async throws {
        let home = Home()
        let r = try populated(home)
        try await withApp(r) { c in
            for uri in ["/v1/registry/models/nope/versions", "/v1/registry/models/nope/resolve",
                        "/v1/registry/models/tiny/resolve?channel=nightly", "/v1/registry/models/tiny/resolve?version=3.0.0"] {
                try await c.execute(uri: uri, method: .get) { res in
                    #expect(res.status == .notFound, "\(uri)")
                    let err = (Self.json(res.body) as? [String: Any])?["error"] as? [String: Any]
                    #expect(err?["type"] as? String == "invalid_request_error", "\(uri)")
                    #expect((err?["message"] as? String)?.isEmpty == false)
                    #expect(err?["code"] as? String == (uri.contains("nope") ? "model_not_found" : "version_not_found"))
                }
            }
            try await c.execute(uri: "/v1/registry/models/tiny/resolve?version=banana", method: .get) { res in
                #expect(res.status == .badRequest)
            }
        }
    }
}
