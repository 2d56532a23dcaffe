import Foundation
import Registry
import Testing

/// Resumed downloads only ever continue bytes of the same remote file: `Range` goes with
/// `If-Range: <validator of the bytes kept>`, and every answer that cannot continue them
/// restarts from byte 0. Plain https URLs (no #sha256, so nothing else would catch a splice)
/// and hf:// files, against `FakeHub`. Digests come from coreutils `sha256sum`.
@Suite struct ResumeTests {
    /// Two uploads of the same file: same length, different bytes (the worst case for a
    /// splice, which a length check cannot notice).
    static let v1 = makeGGUF(arch: "llama", elements: 2048)
    static let v2 = makeGGUF(arch: "llama", elements: 2048, salt: 7)

    func makeHub() throws -> FakeHub {
        try #require(FakeHub(files: ["m.gguf": Self.v1], digests: ["m.gguf": try externalSHA256(Self.v1)]))
    }

    func url(_ hub: FakeHub) -> String { "http://127.0.0.1:\(hub.cdnPort)/cdn/m.gguf" }

    /// The bytes of the file the registry stores for `mv`.
    func storedBytes(_ mv: ModelVersion) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: mv.path)))
    }

    /// Pulls `url` with the connection cut after `cut` body bytes: fails, registers nothing,
    /// keeps a partial of exactly `cut` bytes.
    func interruptedPull(_ hub: FakeHub, _ r: Registry, _ home: TempHome, cut: Int, url: String) throws {
        hub.cutNext("m.gguf", after: cut)
        #expect(throws: RegistryError.self) { try Puller(registry: r).pull(url) }
        #expect(try r.listModels().isEmpty)
        let partials = home.blobEntries().filter { $0.hasSuffix(".partial") }
        #expect(partials.count == 1)
        let size = try partials.first.map { try FileManager.default.attributesOfItem(atPath: "\(home.path)/home/blobs/\($0)")[.size] as? Int }
        #expect(size == cut)
    }

    @Test func changedRemoteFileRestartsFromZero() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        let oldETag = hub.validatorsOf("m.gguf").etag
        try interruptedPull(hub, r, home, cut: 3000, url: url(hub))
        // A new upload between the two pulls.
        let v2sha = try externalSHA256(Self.v2)
        hub.replace("m.gguf", with: Self.v2, digest: v2sha)
        let mv = try Puller(registry: r).pull(url(hub))
        #expect(mv.digest == v2sha)
        #expect(try storedBytes(mv) == Self.v2, "the registered file is the new upload, byte for byte")
        #expect(try externalSHA256(try storedBytes(mv)) == mv.digest, "the digest recorded is that of the bytes stored")
        let last = try #require(hub.requests.last)
        #expect(last.headers["range"] == "bytes=3000-")
        #expect(last.headers["if-range"] == oldETag)
        #expect(last.bodyBytesSent == Self.v2.count, "the server sent the whole new file")
        #expect(home.blobEntries() == ["sha256-\(v2sha)"], "no partial and no validator left behind")
    }

    @Test func sameETagResumesWithRangeAndIfRange() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        try interruptedPull(hub, r, home, cut: 3000, url: url(hub))
        let mv = try Puller(registry: r).pull(url(hub))
        let sha = try externalSHA256(Self.v1)
        #expect(mv.digest == sha)
        #expect(try storedBytes(mv) == Self.v1)
        let cdn = hub.requests.filter { $0.host == "cdn" }
        #expect(cdn.count == 2)
        #expect(cdn.first?.headers["range"] == nil && cdn.first?.headers["if-range"] == nil)
        #expect(cdn.last?.headers["range"] == "bytes=3000-")
        #expect(cdn.last?.headers["if-range"] == hub.validatorsOf("m.gguf").etag)
        #expect(cdn.last?.bodyBytesSent == Self.v1.count - 3000, "only the tail was served")
        #expect(home.blobEntries() == ["sha256-\(sha)"])
    }

    @Test func lastModifiedServesAsTheValidator() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        hub.validators = .lastModified
        try interruptedPull(hub, r, home, cut: 2500, url: url(hub))
        let mv = try Puller(registry: r).pull(url(hub))
        #expect(mv.digest == (try externalSHA256(Self.v1)))
        #expect(hub.requests.last?.headers["if-range"] == hub.validatorsOf("m.gguf").lastModified)
        #expect(hub.requests.last?.bodyBytesSent == Self.v1.count - 2500)
    }

    @Test func noValidatorMeansNoResume() throws {
        for mode in [FakeHub.Validators.none, .weakETag] {
            let home = TempHome()
            let r = try home.registry()
            let hub = try makeHub()
            defer { hub.stop() }
            hub.validators = mode
            try interruptedPull(hub, r, home, cut: 3000, url: url(hub))
            let mv = try Puller(registry: r).pull(url(hub))
            let sha = try externalSHA256(Self.v1)
            #expect(mv.digest == sha, "\(mode)")
            #expect(try storedBytes(mv) == Self.v1, "\(mode)")
            let last = try #require(hub.requests.last)
            #expect(last.headers["range"] == nil, "\(mode): restarted from zero without Range")
            #expect(last.bodyBytesSent == Self.v1.count, "\(mode)")
            #expect(home.blobEntries() == ["sha256-\(sha)"], "\(mode)")
        }
    }

    @Test func aServerIgnoringIfRangeIsCaughtByItsValidator() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        try interruptedPull(hub, r, home, cut: 3000, url: url(hub))
        let v2sha = try externalSHA256(Self.v2)
        hub.replace("m.gguf", with: Self.v2, digest: v2sha)
        hub.ignoreIfRange = true
        let mv = try Puller(registry: r).pull(url(hub))
        #expect(mv.digest == v2sha)
        #expect(try storedBytes(mv) == Self.v2)
        let cdn = hub.requests.filter { $0.host == "cdn" }
        // The 206 carried the new ETag: refused, then a plain GET from byte 0.
        #expect(cdn.count == 3)
        #expect(cdn[1].headers["range"] == "bytes=3000-")
        #expect(cdn[2].headers["range"] == nil && cdn[2].bodyBytesSent == Self.v2.count)
    }

    @Test func a206AtAnotherOffsetRestartsFromZero() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        try interruptedPull(hub, r, home, cut: 3000, url: url(hub))
        hub.misplaceRanges = true
        let mv = try Puller(registry: r).pull(url(hub))
        #expect(mv.digest == (try externalSHA256(Self.v1)))
        #expect(try storedBytes(mv) == Self.v1)
        let cdn = hub.requests.filter { $0.host == "cdn" }
        #expect(cdn.count == 3)
        #expect(cdn[1].headers["range"] == "bytes=3000-")
        #expect(cdn[2].headers["range"] == nil && cdn[2].bodyBytesSent == Self.v1.count)
    }

    @Test func hubFilesResumeOnlyAgainstTheirValidator() throws {
        let sha = try externalSHA256(Self.v1)
        for mode in [FakeHub.Validators.etag, .none] {
            let home = TempHome()
            let r = try home.registry()
            let hub = try makeHub()
            defer { hub.stop() }
            hub.validators = mode
            let env = ["HF_ENDPOINT": hub.endpoint]
            hub.cutNext("m.gguf", after: 3000)
            #expect(throws: RegistryError.self) { try Puller(registry: r, environment: env).pull("hf://org/repo/m.gguf") }
            let mv = try Puller(registry: r, environment: env).pull("hf://org/repo/m.gguf")
            #expect(mv.digest == sha)
            #expect(try storedBytes(mv) == Self.v1)
            let last = try #require(hub.requests.last)
            if mode == .etag {
                #expect(last.headers["range"] == "bytes=3000-")
                #expect(last.headers["if-range"] == hub.validatorsOf("m.gguf").etag)
                #expect(last.bodyBytesSent == Self.v1.count - 3000)
            } else {
                #expect(last.headers["range"] == nil)
                #expect(last.bodyBytesSent == Self.v1.count)
            }
            #expect(home.blobEntries() == ["sha256-\(sha)"], "\(mode): no partial and no validator left behind")
        }
    }

    @Test func hubMisplacedRangeRestartsInTheSamePull() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try makeHub()
        defer { hub.stop() }
        let env = ["HF_ENDPOINT": hub.endpoint]
        hub.cutNext("m.gguf", after: 3000)
        #expect(throws: RegistryError.self) { try Puller(registry: r, environment: env).pull("hf://org/repo/m.gguf") }
        hub.misplaceRanges = true
        let mv = try Puller(registry: r, environment: env).pull("hf://org/repo/m.gguf")
        #expect(mv.digest == (try externalSHA256(Self.v1)))
        let cdn = hub.requests.filter { $0.host == "cdn" }
        #expect(cdn.count == 3)
        #expect(cdn.last?.headers["range"] == nil && cdn.last?.bodyBytesSent == Self.v1.count)
    }
}
