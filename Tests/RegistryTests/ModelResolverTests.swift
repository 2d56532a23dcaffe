import Foundation
import Registry
import Testing

@Suite struct ModelResolverTests {
    @Test func pathsRegistryRefsAndPullsOnDemand() throws {
        let home = TempHome()
        let r = try home.registry()
        let resolver = ModelResolver(home: r.home, environment: [:])
        // An existing file is used as is, without touching the registry.
        let f = home.write("direct.gguf", makeGGUF(salt: 1))
        #expect(try resolver.resolve(f) == ModelResolver.Resolved(path: f, name: "direct", version: nil))
        // Registered versions: ID → stable, ID@VERSION, ID:TAG.
        let a = try r.register(file: home.write("a.gguf", makeGGUF(salt: 2)), model: "m", version: v("1.0.0"), source: "t")
        let b = try r.register(file: home.write("b.gguf", makeGGUF(salt: 3)), model: "m", version: v("2.0.0-rc.1"), source: "t", tags: ["canary"])
        #expect(try resolver.resolve("m").path == a.path)
        #expect(try resolver.resolve("m@2.0.0-rc.1").path == b.path)
        #expect(try resolver.resolve("m:canary").path == b.path)
        #expect(try resolver.resolve("m").name == "m")
        #expect(throws: RegistryError.self) { try resolver.resolve("m@9.9.9") }
        // Not registered: pulled on demand from the (fake) hub, then loaded from the store.
        let bytes = makeGGUF(salt: 5)
        let parts = [makeGGUF(salt: 6), Array(repeating: UInt8(7), count: 100)]
        let hub = try #require(FakeHub(files: ["x.gguf": bytes, "s-00001-of-00002.gguf": parts[0], "s-00002-of-00002.gguf": parts[1]],
                                       digests: ["x.gguf": try externalSHA256(bytes), "s-00001-of-00002.gguf": try externalSHA256(parts[0]),
                                                 "s-00002-of-00002.gguf": try externalSHA256(parts[1])]))
        defer { hub.stop() }
        let online = ModelResolver(home: r.home, environment: ["HF_ENDPOINT": hub.endpoint])
        let x = try online.resolve("hf://org/repo/x.gguf")
        #expect(x.name == "x")
        #expect(x.path == r.blobs.path(for: try externalSHA256(bytes)))
        #expect(x.version?.version == "0.0.0+0123456")
        // A split set is fetched and registered, but loading it says to merge the parts.
        do {
            _ = try online.resolve("hf://org/repo/s-00001-of-00002.gguf")
            Issue.record("expected splitGGUF")
        } catch let RegistryError.splitGGUF(model, count) {
            #expect(model.hasPrefix("s@") && count == 2)
        }
        #expect(try r.versions(of: "s").count == 1)
    }
}
