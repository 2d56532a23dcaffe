import Foundation
import Registry
import Testing

/// `hf://ORG/REPO[@REVISION]`: a whole Hugging Face repository registered as a reference (kind
/// `reference`, no blob) pinned to the commit the hub's model-info API resolves the revision to.
@Suite struct ReferenceTests {
    static let repo = "Qwen/Qwen2.5-0.5B-Instruct"
    static let commitA = "0123456789abcdef0123456789abcdef01234567"
    static let commitB = "fedcba9876543210fedcba9876543210fedcba98"

    /// A safetensors repository (config.json, weights, tokenizer) on a fake hub.
    static func safetensorsHub(repo: String = repo) throws -> FakeHub {
        let files: [String: [UInt8]] = ["config.json": Array("{\"model_type\": \"qwen2\"}".utf8),
                                        "model.safetensors": Array(repeating: 1, count: 64),
                                        "tokenizer.json": Array("{}".utf8)]
        var digests: [String: String] = [:]
        for (k, b) in files { digests[k] = sha256Hex(b) }
        return try #require(FakeHub(repo: repo, commit: commitA, files: files, digests: digests))
    }

    func apiRequests(_ hub: FakeHub) -> [String] { hub.requests.filter { $0.path.hasPrefix("/api/") }.map { "\($0.method) \($0.path)" } }

    @Test func parsesTheRepositoryForm() throws {
        #expect(try ModelRef.parse("hf://Qwen/Qwen2.5-7B-Instruct") == .source(.hfRepo(repo: "Qwen/Qwen2.5-7B-Instruct", revision: "main")))
        #expect(try ModelRef.parse("hf://o/r@v1.2") == .source(.hfRepo(repo: "o/r", revision: "v1.2")))
        #expect(try ModelRef.parse("hf://o/r/f.gguf") == .source(.hf(repo: "o/r", revision: "main", path: "f.gguf")))
        #expect(throws: RegistryError.self) { try ModelRef.parse("hf://o/r@") }
        #expect(Source.hfRepo(repo: "o/r", revision: "main").description == "hf://o/r")
        #expect(RegistryError.refForms.contains("hf://ORG/REPO[@REVISION]                 a whole Hub repository"))
    }

    @Test func pullRegistersAReferencePinnedToTheCommit() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        let puller = Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint])
        let mv = try puller.pull("hf://\(Self.repo)", tags: ["canary"])
        #expect(mv.model == "qwen2.5-0.5b-instruct")
        #expect(mv.version == "0.0.0+0123456", "the files' default-version rule: 0.0.0+COMMIT7 for a branch")
        #expect(mv.kind == .reference)
        #expect(mv.repo == Self.repo && mv.revision == "main" && mv.commit == Self.commitA)
        #expect(mv.pinnedRepository == "\(Self.repo)@\(Self.commitA)")
        #expect(mv.digest.isEmpty && mv.path.isEmpty && mv.size == 0 && !mv.linked)
        #expect(mv.architecture == "Qwen2ForCausalLM" && mv.parameterCount == 494_032_768)
        #expect(mv.source == "hf://\(Self.repo)@main")
        #expect(mv.tags == ["canary"])
        // One model-info call, nothing downloaded, nothing in the blob store.
        #expect(apiRequests(hub) == ["GET /api/models/\(Self.repo)/revision/main"])
        #expect(!hub.requests.contains { $0.path.contains("/resolve/") || $0.path.hasPrefix("/cdn/") })
        #expect(home.blobEntries().isEmpty)
        #expect(try r.resolve("qwen2.5-0.5b-instruct", channel: "stable") == mv)

        // Pulled again at the same commit: the same row (the hub is asked once more, to see the commit).
        let again = try puller.pull("hf://\(Self.repo)", tags: ["prod"])
        #expect(again.version == mv.version && again.tags == ["canary", "prod"])
        #expect(try r.versions(of: "qwen2.5-0.5b-instruct").count == 1)

        // A SemVer revision names the version; --as and --version are honoured.
        let tagged = try puller.pull("hf://\(Self.repo)@v1.2", as: "qwen-small")
        #expect(tagged.model == "qwen-small" && tagged.version == "1.2.0" && tagged.revision == "v1.2" && tagged.commit == Self.commitA)
        #expect(apiRequests(hub).last == "GET /api/models/\(Self.repo)/revision/v1.2")
        let pinned = try puller.pull("hf://\(Self.repo)", as: "qwen-small", version: v("3.0.0"))
        #expect(pinned.version == "3.0.0" && pinned.kind == .reference)
    }

    @Test func aMovedBranchIsANewVersionAndAClashIsRefused() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        hub.setRevision("main", commit: Self.commitA)
        let puller = Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint])
        let first = try puller.pull("hf://\(Self.repo)", version: v("1.0.0"))
        hub.setRevision("main", commit: Self.commitB)
        let moved = try puller.pull("hf://\(Self.repo)")
        #expect(moved.version == "0.0.0+fedcba9" && moved.commit == Self.commitB)
        #expect(try r.versions(of: first.model).map(\.commit) == [Self.commitA, Self.commitB])
        // The same version at another commit: not overwritten.
        do {
            _ = try puller.pull("hf://\(Self.repo)", version: v("1.0.0"))
            Issue.record("expected versionExists")
        } catch let e as RegistryError {
            #expect(e == .versionExists(model: first.model, version: "1.0.0"))
        }
        // An unknown revision: the hub's RevisionNotFound, said plainly.
        do {
            _ = try puller.pull("hf://\(Self.repo)@nope")
            Issue.record("expected a 404")
        } catch let e as RegistryError {
            #expect(e.description.contains("revision 'nope' does not exist in \(Self.repo)"), "\(e.description)")
        }
    }

    @Test func aGGUFOnlyRepositoryIsRefusedWithTheFileForm() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF()
        let hub = try #require(FakeHub(repo: "org/model-GGUF", files: ["model-Q4_K_M.gguf": bytes, "README.md": [1]],
                                       digests: ["model-Q4_K_M.gguf": sha256Hex(bytes), "README.md": sha256Hex([1])]))
        defer { hub.stop() }
        let puller = Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint])
        do {
            _ = try puller.pull("hf://org/model-GGUF")
            Issue.record("expected notVLLMRepository")
        } catch let e as RegistryError {
            #expect(e == .notVLLMRepository(repo: "org/model-GGUF", revision: "main",
                                            missing: ["config.json", "*.safetensors weights"], gguf: ["model-Q4_K_M.gguf"]))
            #expect(e.description.contains("use hf://ORG/REPO/FILE.gguf, e.g. `autoglm pull hf://org/model-GGUF/model-Q4_K_M.gguf`"), "\(e.description)")
        }
        #expect(try r.listModels().isEmpty)
        // Weights without config.json: named as missing.
        let half = try #require(FakeHub(repo: "org/weights", files: ["model.safetensors": [1]], digests: ["model.safetensors": sha256Hex([1])]))
        defer { half.stop() }
        #expect(throws: RegistryError.notVLLMRepository(repo: "org/weights", revision: "main", missing: ["config.json"], gguf: [])) {
            try Puller(registry: r, environment: ["HF_ENDPOINT": half.endpoint]).pull("hf://org/weights")
        }
    }

    @Test func missingRepositoryTokenAndOffline() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        func message(_ env: [String: String], _ ref: String) -> String {
            do { _ = try Puller(registry: r, environment: env).pull(ref); return "" } catch { return "\(error)" }
        }
        // 404: a repository the hub does not have.
        let missing = message(["HF_ENDPOINT": hub.endpoint], "hf://Qwen/Nope")
        #expect(missing.contains("not found (HTTP 404): repository 'Qwen/Nope' does not exist"), "\(missing)")
        // 401: a private/gated repository without HF_TOKEN, then with the right one (sent as Bearer).
        hub.requiredToken = "hf_secret"
        let denied = message(["HF_ENDPOINT": hub.endpoint], "hf://\(Self.repo)")
        #expect(denied.contains("HTTP 401") && denied.contains("set HF_TOKEN"), "\(denied)")
        let wrong = message(["HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_wrong"], "hf://\(Self.repo)")
        #expect(wrong.contains("The token in HF_TOKEN cannot read \(Self.repo)"), "\(wrong)")
        #expect(try r.listModels().isEmpty)
        let before = hub.requests.count
        // Offline before it was ever pulled: a clear error, and no request.
        let offline = message(["HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "1"], "hf://\(Self.repo)")
        #expect(offline.contains("HF_HUB_OFFLINE=1 is set") && offline.contains("one call to the hub"), "\(offline)")
        #expect(hub.requests.count == before)
        let mv = try Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_secret"]).pull("hf://\(Self.repo)")
        #expect(hub.requests.last?.headers["authorization"] == "Bearer hf_secret")
        // Offline once registered: the registry's row, no request.
        let count = hub.requests.count
        let cached = try Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "1"]).pull("hf://\(Self.repo)")
        #expect(cached == mv && hub.requests.count == count)
    }

    @Test func removeAndGCNeverTouchABlobAReferenceDoesNotHave() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        let gguf = try r.register(file: home.write("m.gguf", makeGGUF(salt: 9)), model: "m", version: v("1.0.0"), source: "t")
        let ref = try Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint]).pull("hf://\(Self.repo)", as: "m", version: v("2.0.0"))
        #expect(try r.gc(dryRun: true).removedBlobs.isEmpty)
        let removed = try r.remove("m", version: v("2.0.0"))
        #expect(removed == [ref])
        #expect(try r.gc().removedBlobs.isEmpty, "the GGUF's blob stays")
        #expect(FileManager.default.fileExists(atPath: gguf.path))
        #expect(try r.versions(of: "m").map(\.version) == ["1.0.0"])
    }

    @Test func listingAndJSONShowTheKind() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        _ = try r.register(file: home.write("g.gguf", makeGGUF(salt: 4)), model: "g", version: v("1.0.0"), source: "t")
        let ref = try Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint]).pull("hf://\(Self.repo)")
        let models = try r.listModels()
        #expect(models.map(\.id) == ["g", "qwen2.5-0.5b-instruct"])
        #expect(models.map(\.repo) == [nil, Self.repo])
        #expect(models[1].stable == ref.version)
        let data = try JSONEncoder().encode(ref)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["kind"] as? String == "reference" && object["commit"] as? String == Self.commitA && object["repo"] as? String == Self.repo)
        #expect(try JSONDecoder().decode(ModelVersion.self, from: data) == ref)
        // JSON written before references existed (no kind) decodes as a GGUF.
        var old = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(try r.resolve("g"))) as? [String: Any])
        old.removeValue(forKey: "kind")
        let decoded = try JSONDecoder().decode(ModelVersion.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded.kind == .gguf && decoded.repo == nil)
    }

    /// A registry from before the reference migration (its columns dropped and the migration
    /// unrecorded with the sqlite3 shell) reopens migrated, its rows read as GGUF files.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3")))
    func migrationKeepsOldRows() throws {
        let home = TempHome()
        var digest = ""
        do {
            let r = try home.registry()
            digest = try r.register(file: home.write("old.gguf", makeGGUF(salt: 3)), model: "old", version: v("1.0.0"), source: "t", tags: ["stable"]).digest
        }
        let db = "\(home.path)/home/registry.sqlite"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [db, """
            ALTER TABLE versions DROP COLUMN kind; ALTER TABLE versions DROP COLUMN repo;
            ALTER TABLE versions DROP COLUMN revision; ALTER TABLE versions DROP COLUMN commit_sha;
            DELETE FROM grdb_migrations WHERE identifier LIKE 'v4:%';
            """]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let r = try home.registry()
        #expect(try r.appliedMigrations().last == "v4: reference versions (Hugging Face repositories)")
        let old = try r.resolve("old")
        #expect(old.kind == .gguf && old.digest == digest && old.repo == nil && old.commit == nil && old.tags == ["stable"])
        #expect(try r.listModels().first?.repo == nil)
    }

    @Test func resolutionForVLLMAndForGGUFBackends() throws {
        let home = TempHome()
        let r = try home.registry()
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        let env = ["HF_ENDPOINT": hub.endpoint]
        let ref = try Puller(registry: r, environment: env).pull("hf://\(Self.repo)", as: "qwen", version: v("1.0.0"), tags: ["prod"])
        let gguf = try r.register(file: home.write("g.gguf", makeGGUF(salt: 8)), model: "g", version: v("1.0.0"), source: "t")
        let resolver = ModelResolver(home: r.home, environment: env)
        // vllm: name, name@version, name:channel → repo id at the pinned commit.
        let want = ModelResolver.Repository(repo: Self.repo, revision: Self.commitA, name: "qwen", version: ref)
        #expect(try resolver.resolveRepository("qwen") == want)
        #expect(try resolver.resolveRepository("qwen@1.0.0") == want)
        #expect(try resolver.resolveRepository("qwen:prod") == want)
        // The repository form uses the pin `pull` recorded for that revision; unknown repos pass through.
        #expect(try resolver.resolveRepository("hf://\(Self.repo)") == want)
        #expect(try resolver.resolveRepository("hf://o/other@dev") == ModelResolver.Repository(repo: "o/other", revision: "dev", name: "o/other"))
        #expect(try resolver.resolveRepository("o/other") == ModelResolver.Repository(repo: "o/other", revision: nil, name: "o/other"))
        // A GGUF is not what vllm loads.
        #expect(throws: RegistryError.notAReference(model: "g@1.0.0")) { try resolver.resolveRepository("g") }
        // native/llamacpp: a reference is a clear error, and hf://ORG/REPO is not pulled to find that out.
        let count = hub.requests.count
        for name in ["qwen", "qwen:prod", "hf://\(Self.repo)"] {
            do {
                _ = try resolver.resolve(name)
                Issue.record("\(name): expected referenceNotLoadable")
            } catch let e as RegistryError {
                #expect(e.description.contains("is a Hugging Face repository reference (hf://\(Self.repo), vLLM only)"), "\(e.description)")
                #expect(e.description.contains("pull a GGUF file"))
            }
        }
        #expect(hub.requests.count == count)
        #expect(try resolver.resolve("g").path == gguf.path)
    }
}
