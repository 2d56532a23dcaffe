import Foundation
import Registry
import Testing

/// `hf://` pulls against `FakeHub`. Digests announced by the hub come from coreutils
/// `sha256sum` (an independent implementation), never from our own hasher.
@Suite struct FakeHubTests {
    /// A GGUF of a few KiB (so a cut mid-body leaves a real partial file).
    static let model = makeGGUF(arch: "llama", elements: 2048)
    static let modelSHA = (try? externalSHA256(model)) ?? "sha256sum failed"

    func makeHub(_ files: [String: [UInt8]], wrong: Set<String> = []) throws -> FakeHub {
        var digests: [String: String] = [:]
        for (name, bytes) in files {
            digests[name] = wrong.contains(name) ? String(repeating: "1", count: 64) : try externalSHA256(bytes)
        }
        return try #require(FakeHub(files: files, digests: digests))
    }

    func env(_ hub: FakeHub, _ extra: [String: String] = [:]) -> [String: String] {
        var e = ["HF_ENDPOINT": hub.endpoint + "/"]
        for (k, v) in extra { e[k] = v }
        return e
    }

    @Test func ourSHA256AgreesWithSha256sum() throws {
        // Fixed byte pattern; the expected value was produced by `sha256sum` over the same bytes.
        let pattern = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let oracle = try externalSHA256(pattern)
        #expect(oracle.count == 64)
        #expect(sha256Hex(pattern) == oracle)
        #expect(sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func pullVerifiesAgainstTheHubsSha() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["tiny-Q4_K_M.gguf": Self.model])
        defer { hub.stop() }
        let mv = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/tiny-Q4_K_M.gguf")
        #expect(mv.digest == Self.modelSHA)
        #expect(mv.size == Int64(Self.model.count))
        #expect(mv.model == "tiny-q4_k_m")
        #expect(mv.version == "0.0.0+0123456")
        #expect(mv.source == "hf://org/repo@main/tiny-Q4_K_M.gguf")
        let reqs = hub.requests
        #expect(reqs.map { "\($0.host) \($0.method) \($0.path)" }
                == ["hub HEAD /org/repo/resolve/main/tiny-Q4_K_M.gguf", "cdn GET /cdn/tiny-Q4_K_M.gguf"])
        #expect(home.blobEntries() == ["sha256-\(mv.digest)"])
        // Pulling again downloads nothing and returns the same version.
        let again = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/tiny-Q4_K_M.gguf")
        #expect(again == mv)
        #expect(hub.requests.filter { $0.host == "cdn" }.count == 1)
    }

    @Test func revisionThatIsSemVerBecomesTheVersion() throws {
        let home = TempHome()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        let mv = try Puller(registry: try home.registry(), environment: env(hub)).pull("hf://org/repo@v1.2.0/m.gguf")
        #expect(mv.version == "1.2.0")
        #expect(hub.requests.first?.path == "/org/repo/resolve/v1.2.0/m.gguf")
    }

    @Test func droppedConnectionResumesWithRange() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        hub.cutNext("m.gguf", after: 3000)
        #expect(throws: RegistryError.self) { try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf") }
        #expect(try r.listModels().isEmpty)
        #expect(home.blobEntries().filter { $0.hasPrefix("sha256-") }.isEmpty)
        let mv = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf")
        #expect(mv.digest == Self.modelSHA)
        let cdn = hub.requests.filter { $0.host == "cdn" }
        #expect(cdn.count == 2)
        #expect(cdn.first?.headers["range"] == nil)
        #expect(cdn.first?.bodyBytesSent == 3000)
        #expect(cdn.last?.headers["range"] == "bytes=3000-")
        #expect(cdn.last?.bodyBytesSent == Self.model.count - 3000, "the second request served only the rest")
        #expect(home.blobEntries() == ["sha256-\(mv.digest)"], "the partial file became the blob")
    }

    @Test func a200ToARangeRequestRestartsFromZero() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        hub.cutNext("m.gguf", after: 1000)
        #expect(throws: RegistryError.self) { try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf") }
        hub.ignoreRange = true
        let mv = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf")
        #expect(mv.digest == Self.modelSHA)
        #expect(hub.requests.last?.headers["range"] == "bytes=1000-")
        #expect(hub.requests.last?.bodyBytesSent == Self.model.count)
    }

    @Test func checksumMismatchLeavesNothing() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model], wrong: ["m.gguf"])
        defer { hub.stop() }
        do {
            _ = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf")
            Issue.record("expected checksumMismatch")
        } catch let RegistryError.checksumMismatch(_, expected, actual) {
            #expect(expected == String(repeating: "1", count: 64))
            #expect(actual == Self.modelSHA)
        }
        #expect(home.blobEntries().isEmpty, "no blob and no partial left")
        #expect(try r.listModels().isEmpty)
    }

    @Test func tokenGoesToTheHubButNotToAnotherHost() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        hub.requiredToken = "s3cret"
        do {
            _ = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf")
            Issue.record("expected an auth error")
        } catch let e as RegistryError {
            #expect(e.description.contains("HF_TOKEN"))
            #expect(e.description.contains("401"))
        }
        let mv = try Puller(registry: r, environment: env(hub, ["HF_TOKEN": "s3cret"])).pull("hf://org/repo/m.gguf")
        #expect(mv.digest == Self.modelSHA)
        let last2 = hub.requests.suffix(2)
        #expect(last2.first?.host == "hub" && last2.first?.headers["authorization"] == "Bearer s3cret")
        #expect(last2.last?.host == "cdn" && last2.last?.headers["authorization"] == nil, "no token for the CDN host")
    }

    @Test func tokenFollowsASameHostRedirect() throws {
        let home = TempHome()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        hub.requiredToken = "tok"
        hub.sameHostCDN = true
        let mv = try Puller(registry: try home.registry(), environment: env(hub, ["HUGGING_FACE_HUB_TOKEN": "tok"]))
            .pull("hf://org/repo/m.gguf")
        #expect(mv.size == Int64(Self.model.count))
        #expect(hub.requests.map { "\($0.host) \($0.method) \($0.path)" } == ["hub HEAD /org/repo/resolve/main/m.gguf", "hub HEAD /cdn/m.gguf", "hub GET /cdn/m.gguf"])
        #expect(hub.requests.allSatisfy { $0.headers["authorization"] == "Bearer tok" })
    }

    @Test func notFoundAndServerErrorsSayWhat() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model, "broken.gguf": Self.model])
        defer { hub.stop() }
        hub.failResolve("broken.gguf", status: 500)
        do {
            _ = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo@dev/missing.gguf")
            Issue.record("expected 404")
        } catch let e as RegistryError {
            #expect(e.description.contains("404"))
            #expect(e.description.contains("org/repo") && e.description.contains("'dev'") && e.description.contains("missing.gguf"))
        }
        do {
            _ = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/broken.gguf")
            Issue.record("expected 500")
        } catch let e as RegistryError {
            #expect(e.description.contains("HTTP 500"))
        }
        #expect(try r.listModels().isEmpty)
    }

    @Test func unreachableHubFailsFastWithAClearMessage() throws {
        let home = TempHome()
        // A port nothing listens on: connection refused.
        let hub = try makeHub([:])
        let port = hub.hubPort
        hub.stop()
        do {
            _ = try Puller(registry: try home.registry(), environment: ["HF_ENDPOINT": "http://127.0.0.1:\(port)"]).pull("hf://org/repo/m.gguf")
            Issue.record("expected cannot reach")
        } catch let e as RegistryError {
            #expect(e.description.contains("cannot reach"))
        }
    }

    @Test func offlineUsesOnlyTheRegistry() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        let mv = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/m.gguf")
        let before = hub.requests.count
        let offline = try Puller(registry: r, environment: env(hub, ["HF_HUB_OFFLINE": "1"])).pull("hf://org/repo/m.gguf")
        #expect(offline == mv)
        #expect(hub.requests.count == before, "offline mode made no request")
        do {
            _ = try Puller(registry: r, environment: env(hub, ["HF_HUB_OFFLINE": "1"])).pull("hf://org/repo/other.gguf")
            Issue.record("expected an offline error")
        } catch let e as RegistryError {
            #expect(e.description.contains("HF_HUB_OFFLINE"))
        }
        #expect(hub.requests.count == before)
    }

    @Test func splitSetIsFetchedAndRegisteredTogether() throws {
        let home = TempHome()
        let r = try home.registry()
        let first = makeGGUF(arch: "llama", elements: 64)
        let second = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let third = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let hub = try makeHub(["big-00001-of-00003.gguf": first, "big-00002-of-00003.gguf": second, "big-00003-of-00003.gguf": third])
        defer { hub.stop() }
        let mv = try Puller(registry: r, environment: env(hub)).pull("hf://org/repo/big-00001-of-00003.gguf")
        #expect(mv.model == "big")
        let shas = [try externalSHA256(first), try externalSHA256(second), try externalSHA256(third)]
        #expect(mv.digest == shas[0])
        let parts = try r.parts(model: mv.model, version: mv.version)
        #expect(parts.count == 2)
        #expect(parts.map { (try? Data(contentsOf: URL(fileURLWithPath: $0))).map { [UInt8]($0) } } == [second, third])
        #expect(Set(home.blobEntries()) == Set(shas.map { "sha256-\($0)" }))
        #expect(hub.requests.filter { $0.method == "GET" }.count == 3)
        // gc keeps parts that a version references.
        #expect(try r.gc().removedBlobs.isEmpty)
    }

    @Test func catalogDigestMismatchOnTheHubSkipsTheDownload() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub(["m.gguf": Self.model])
        defer { hub.stop() }
        let other = makeGGUF(salt: 9)
        // The hub announces a digest that is not the one demanded: fail before downloading.
        do {
            _ = try Puller(registry: r, environment: env(hub))
                .pullHub(repo: "org/repo", revision: "main", path: "m.gguf", model: "m", version: nil, tags: [],
                         mustMatch: try externalSHA256(other), sourceLabel: "test")
            Issue.record("expected checksumMismatch")
        } catch RegistryError.checksumMismatch {}
        #expect(hub.requests.filter { $0.host == "cdn" }.isEmpty)
    }
}
