import Foundation
import Registry
import Testing

@Suite struct RegistryStoreTests {
    @Test func migratesFromAnEmptyFile() throws {
        let home = TempHome()
        let dbPath = "\(home.path)/custom/reg.sqlite"
        try FileManager.default.createDirectory(atPath: "\(home.path)/custom", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: dbPath, contents: nil), "an empty (0-byte) database file")
        let r = try Registry(home: "\(home.path)/home", databasePath: dbPath)
        let applied = try r.appliedMigrations()
        #expect(applied.first == "v1: models, versions, tags, metrics")
        #expect(applied.contains("v2: tuning studies and trials"))
        #expect(applied.contains("v3: version parts (split GGUF sets)"))
        #expect(FileManager.default.fileExists(atPath: dbPath))
        #expect(try r.listModels().isEmpty)
        // Reopening does not re-run migrations.
        let again = try Registry(home: "\(home.path)/home", databasePath: dbPath)
        #expect(try again.appliedMigrations() == applied)
    }

    @Test func homeDefaultsToEnvironment() {
        #expect(Registry.defaultHome(environment: ["AUTOGLM_HOME": "/x/y"]) == "/x/y")
        #expect(Registry.defaultHome(environment: ["HOME": "/home/u"]) == "/home/u/.cache/autoglm")
        #expect(Registry.defaultHome(environment: ["AUTOGLM_MODELS_DIR": "/models", "HOME": "/home/u"]) == "/models")
        #expect(Registry.defaultHome(environment: ["AUTOGLM_HOME": "/x/y", "AUTOGLM_MODELS_DIR": "/models"]) == "/x/y")
    }

    @Test func registersGGUFFacts() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF(arch: "qwen2", contextLength: 4096, chatTemplate: "{{ messages }}", elements: 16)
        let file = home.write("tiny.gguf", bytes)
        let mv = try r.register(file: file, model: "tiny", version: v("1.0.0"), source: "test")
        #expect(mv.digest == sha256Hex(bytes))
        #expect(mv.size == Int64(bytes.count))
        #expect(mv.architecture == "qwen2")
        #expect(mv.parameterCount == 16)
        #expect(mv.contextLength == 4096)
        #expect(mv.hasChatTemplate)
        #expect(mv.quantMix == ["F32": QuantShare(tensors: 1, bytes: 64)])
        #expect(mv.path == r.blobs.path(for: mv.digest))
        #expect(FileManager.default.contents(atPath: mv.path) == Data(bytes))
        #expect(home.blobEntries() == ["sha256-\(mv.digest)"])
        #expect(!mv.linked)
    }

    @Test func channelResolution() throws {
        let home = TempHome()
        let r = try home.registry()
        for (i, ver) in ["1.0.0", "1.1.0", "2.0.0-rc.1", "1.0.1"].enumerated() {
            try r.register(file: home.write("m\(i).gguf", makeGGUF(salt: UInt8(i))), model: "m", version: v(ver), source: "test")
        }
        #expect(try r.resolve("m").version == "1.1.0")
        #expect(try r.resolve("m", channel: "stable").version == "1.1.0")
        #expect(try r.resolve("m", channel: "latest").version == "2.0.0-rc.1")
        #expect(try r.resolve("m", channel: "canary").version == "2.0.0-rc.1")
        #expect(try r.resolve("m", channel: "1.0.1").version == "1.0.1")
        #expect(try r.versions(of: "m").map(\.version) == ["2.0.0-rc.1", "1.1.0", "1.0.1", "1.0.0"])

        try r.tag("m", version: v("1.0.0"), as: "stable")
        try r.tag("m", version: v("1.0.1"), as: "canary")
        try r.tag("m", version: v("1.0.1"), as: "prod-eu")
        #expect(try r.resolve("m", channel: "stable").version == "1.0.0")
        #expect(try r.resolve("m", channel: "canary").version == "1.0.1")
        #expect(try r.resolve(reference: "m:prod-eu").version == "1.0.1")
        #expect(try r.resolve(reference: "m@1.1.0").version == "1.1.0")
        #expect(try r.resolve("m", channel: "1.0.1").tags == ["canary", "prod-eu"])
        // Moving a tag.
        try r.tag("m", version: v("1.1.0"), as: "prod-eu")
        #expect(try r.resolve("m", channel: "prod-eu").version == "1.1.0")
        #expect(try r.untag("m", tag: "stable"))
        #expect(try r.untag("m", tag: "stable") == false)
        #expect(try r.resolve("m", channel: "stable").version == "1.1.0")

        let summary = try #require(try r.listModels().first)
        #expect(summary.id == "m" && summary.stable == "1.1.0" && summary.latest == "2.0.0-rc.1")
        #expect(summary.tags == ["canary": "1.0.1", "prod-eu": "1.1.0"])

        #expect(throws: RegistryError.noVersionForChannel(model: "m", channel: "nightly")) { try r.resolve("m", channel: "nightly") }
        #expect(throws: RegistryError.self) { try r.resolve("m", channel: "9.9.9") }
        #expect(throws: RegistryError.self) { try r.resolve("nope") }
        #expect(throws: RegistryError.invalidTag("1.0.0")) { try r.tag("m", version: v("1.0.0"), as: "1.0.0") }
    }

    @Test func stableNeedsAReleaseVersion() throws {
        let home = TempHome()
        let r = try home.registry()
        try r.register(file: home.write("a.gguf", makeGGUF()), model: "pre", version: v("0.1.0-alpha"), source: "test")
        #expect(throws: RegistryError.noVersionForChannel(model: "pre", channel: "stable")) { try r.resolve("pre") }
        #expect(try r.resolve("pre", channel: "latest").version == "0.1.0-alpha")
    }

    @Test func duplicateVersionIsRejectedWithTheFix() throws {
        let home = TempHome()
        let r = try home.registry()
        let f = home.write("a.gguf", makeGGUF())
        try r.register(file: f, model: "a", version: v("1.0.0"), source: "test")
        do {
            try r.register(file: f, model: "a", version: v("1.0.0+other"), source: "test")
            Issue.record("expected versionExists")
        } catch let e as RegistryError {
            #expect(e == .versionExists(model: "a", version: "1.0.0+other"))
            #expect(e.description.contains("--version"))
        }
    }

    @Test func invalidIDsAndTags() throws {
        let home = TempHome()
        let r = try home.registry()
        let f = home.write("a.gguf", makeGGUF())
        #expect(throws: RegistryError.invalidModelID("Bad Name")) { try r.register(file: f, model: "Bad Name", version: v("1.0.0"), source: "t") }
        #expect(throws: RegistryError.invalidTag("-x")) { try r.register(file: f, model: "ok", version: v("1.0.0"), source: "t", tags: ["-x"]) }
        #expect(Registry.suggestedID(from: "/m/Qwen2.5 Coder.GGUF") == "qwen2.5-coder")
    }

    @Test func metricsAreRecordedPerVersion() throws {
        let home = TempHome()
        let r = try home.registry()
        try r.register(file: home.write("a.gguf", makeGGUF()), model: "a", version: v("1.0.0"), source: "t")
        try r.register(file: home.write("b.gguf", makeGGUF(salt: 1)), model: "a", version: v("1.1.0"), source: "t")
        try r.recordMetric(model: "a", version: v("1.0.0"), kind: "bench", values: ["tok_s": 42.5], configHash: "abc", machine: ["cpu": "x86"])
        try r.recordMetric(model: "a", version: v("1.1.0"), kind: "bench", values: ["tok_s": 50])
        let m = try r.metrics(model: "a", version: v("1.0.0"))
        #expect(m.count == 1)
        #expect(m.first?.values == ["tok_s": 42.5] && m.first?.configHash == "abc" && m.first?.machine == ["cpu": "x86"])
        #expect(try r.metrics(model: "a", kind: "bench").count == 2)
        // Removing a version removes its metrics and tags.
        try r.remove("a", version: v("1.0.0"))
        #expect(try r.metrics(model: "a").count == 1)
    }
}

@Suite struct BlobTests {
    @Test func nonGGUFIsRejectedWithTheReasonAndNothingIsStored() throws {
        let home = TempHome()
        let r = try home.registry()
        let f = home.write("notes.txt", Array("hello, this is not a model".utf8))
        do {
            try r.register(file: f, model: "notes", version: v("1.0.0"), source: "t")
            Issue.record("expected notGGUF")
        } catch let RegistryError.notGGUF(path, reason) {
            #expect(path == f)
            #expect(!reason.isEmpty)
            #expect(RegistryError.notGGUF(path: path, reason: reason).description.contains("GGUF"))
        }
        #expect(home.blobEntries().isEmpty)
        #expect(try r.listModels().isEmpty)
    }

    @Test func checksumMismatchLeavesNoBlobAndNoRow() throws {
        let home = TempHome()
        let r = try home.registry()
        let f = home.write("a.gguf", makeGGUF())
        let wrong = String(repeating: "0", count: 64)
        #expect(throws: RegistryError.checksumMismatch(source: "t", expected: wrong, actual: sha256Hex(makeGGUF()))) {
            try r.register(file: f, model: "a", version: v("1.0.0"), source: "t", expectedDigest: wrong)
        }
        #expect(home.blobEntries().isEmpty)
        #expect(try r.listModels().isEmpty)
        #expect(throws: RegistryError.invalidDigest("xyz")) {
            try r.register(file: f, model: "a", version: v("1.0.0"), source: "t", expectedDigest: "xyz")
        }
    }

    @Test func failedCopyLeavesNoTemporary() throws {
        let home = TempHome()
        let r = try home.registry()
        // A directory opens but cannot be read: the copy fails midway.
        let dir = "\(home.path)/a-directory"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(throws: RegistryError.self) { _ = try r.blobs.stage(copying: dir, expected: nil) }
        #expect(throws: RegistryError.fileNotFound("\(home.path)/missing.gguf")) {
            _ = try r.blobs.stage(copying: "\(home.path)/missing.gguf", expected: nil)
        }
        #expect(home.blobEntries().isEmpty)
    }

    @Test func sameContentIsStoredOnce() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF()
        let a = try r.register(file: home.write("a.gguf", bytes), model: "a", version: v("1.0.0"), source: "t")
        let b = try r.register(file: home.write("b.gguf", bytes), model: "b", version: v("1.0.0"), source: "t")
        #expect(a.digest == b.digest)
        #expect(home.blobEntries() == ["sha256-\(a.digest)"])
    }

    @Test func gcRemovesOnlyUnreferencedBlobs() throws {
        let home = TempHome()
        let r = try home.registry()
        let keep = try r.register(file: home.write("k.gguf", makeGGUF(salt: 1)), model: "keep", version: v("1.0.0"), source: "t")
        let drop = try r.register(file: home.write("d.gguf", makeGGUF(salt: 2)), model: "drop", version: v("1.0.0"), source: "t")
        let linkedFile = home.write("l.gguf", makeGGUF(salt: 3))
        let linked = try r.register(file: linkedFile, model: "linked", version: v("1.0.0"), source: "t", link: true)
        #expect(linked.linked && linked.path.hasSuffix("/l.gguf"))
        #expect(try r.gc().removedBlobs.isEmpty)
        let removed = try r.remove("drop")
        #expect(removed.map(\.version) == ["1.0.0"])
        #expect(throws: RegistryError.self) { try r.versions(of: "drop") }
        let dry = try r.gc(dryRun: true)
        #expect(dry.removedBlobs == [drop.digest])
        #expect(r.blobs.exists(drop.digest))
        let report = try r.gc()
        #expect(report.removedBlobs == [drop.digest])
        #expect(report.freedBytes == drop.size)
        #expect(!r.blobs.exists(drop.digest))
        #expect(r.blobs.exists(keep.digest))
        #expect(FileManager.default.fileExists(atPath: linkedFile))
        // A stale temp file is collected.
        let tmp = try r.blobs.temporaryPath()
        _ = FileManager.default.createFile(atPath: tmp, contents: Data([1, 2, 3]))
        #expect(try r.gc(staleAfter: -1).removedTemporaries == 1)
        #expect(!FileManager.default.fileExists(atPath: tmp))
    }
}

@Suite struct ConcurrencyTests {
    @Test func manyConnectionsWriteConcurrently() throws {
        let home = TempHome()
        let files = (0..<12).map { home.write("f\($0).gguf", makeGGUF(salt: UInt8($0 % 4))) }
        let homePath = "\(home.path)/home"
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            do {
                // A separate Registry = a separate SQLite connection, as another process would have.
                let r = try Registry(home: homePath)
                try r.register(file: files[i], model: "m\(i % 3)", version: SemVer(1, i, 0), source: "t")
                try r.tag("m\(i % 3)", version: SemVer(1, i, 0), as: "t\(i)")
                try r.recordMetric(model: "m\(i % 3)", version: SemVer(1, i, 0), kind: "bench", values: ["i": Double(i)])
            } catch {
                errors.add("\(i): \(error)")
            }
        }
        #expect(errors.items.isEmpty, "\(errors.items)")
        let r = try Registry(home: homePath)
        let models = try r.listModels()
        #expect(models.map(\.id) == ["m0", "m1", "m2"])
        #expect(models.map(\.versions.count) == [4, 4, 4])
        #expect(models.reduce(0) { $0 + $1.tags.count } == 12)
        // Four distinct contents → four blobs, no temporaries left.
        #expect(home.blobEntries().count == 4)
        #expect(home.blobEntries().allSatisfy { $0.hasPrefix("sha256-") })
    }

    @Test func concurrentDuplicateRegistrationsYieldOneWinner() throws {
        let home = TempHome()
        let f = home.write("f.gguf", makeGGUF())
        let homePath = "\(home.path)/home"
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do {
                let r = try Registry(home: homePath)
                try r.register(file: f, model: "same", version: SemVer(1, 0, 0), source: "t")
            } catch let e as RegistryError {
                errors.add(e.description)
            } catch {
                errors.add("unexpected: \(error)")
            }
        }
        #expect(errors.items.count == 7)
        #expect(errors.items.allSatisfy { $0.contains("already has version") }, "\(errors.items)")
        #expect(try Registry(home: homePath).versions(of: "same").count == 1)
        #expect(home.blobEntries().count == 1)
    }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
