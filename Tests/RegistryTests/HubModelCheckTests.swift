import Foundation
import Registry
import Testing

/// `hf://ORG/REPO[@REV]:QUANT` pulls and the validate-time check (`HubModelCheck`) against the
/// fake hub: the right GGUF file is picked from the repository's file list, and a model that
/// could not be pulled fails with the repository and what is missing.
@Suite struct HubModelCheckTests {
    static let q4 = makeGGUF(salt: 4)
    static let q8 = makeGGUF(salt: 8)

    /// A GGUF repository: two quantizations (one split in two parts), a Q4_K (not Q4_K_M), a projector.
    static func ggufHub(repo: String = "org/Model-GGUF") throws -> FakeHub {
        let files: [String: [UInt8]] = [
            "Model-Q4_K_M.gguf": q4, "Model-Q8_0.gguf": q8, "Model-Q4_K.gguf": makeGGUF(salt: 1),
            "big/Model-F16-00001-of-00002.gguf": makeGGUF(salt: 16), "big/Model-F16-00002-of-00002.gguf": [1, 2, 3],
            "mmproj-Model-Q8_0.gguf": makeGGUF(salt: 9), "README.md": Array("# model".utf8),
        ]
        var digests: [String: String] = [:]
        for (k, b) in files { digests[k] = try externalSHA256(b) }
        return try #require(FakeHub(repo: repo, files: files, digests: digests))
    }

    static func safetensorsHub() throws -> FakeHub {
        let files: [String: [UInt8]] = ["config.json": Array("{}".utf8), "model.safetensors": Array(repeating: 7, count: 32)]
        var digests: [String: String] = [:]
        for (k, b) in files { digests[k] = try externalSHA256(b) }
        return try #require(FakeHub(repo: "THUDM/glm-4-9b-chat", files: files, digests: digests))
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "" } catch { return "\(error)" }
    }

    @Test func pullPicksTheQuantizationsFile() throws {
        let hub = try Self.ggufHub()
        defer { hub.stop() }
        let home = TempHome()
        let r = try home.registry()
        let puller = Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint])
        #expect(try puller.modelID(for: "hf://org/Model-GGUF:Q8_0") == "model-q8_0")
        let mv = try puller.pull("hf://org/Model-GGUF:Q8_0")
        #expect(mv.model == "model-q8_0")
        #expect(mv.digest == (try externalSHA256(Self.q8)), "the Q8_0 file's bytes, not the projector's or another quant's")
        #expect(mv.source == "hf://org/Model-GGUF:Q8_0")
        #expect(hub.requests.contains { $0.path == "/api/models/org/Model-GGUF/revision/main" })
        #expect(hub.requests.contains { $0.path.hasSuffix("/resolve/main/Model-Q8_0.gguf") })
        // Q4_K_M, not the Q4_K file (whose name is a prefix of it).
        let q4 = try puller.pull("hf://org/Model-GGUF:q4_k_m")
        #expect(q4.digest == (try externalSHA256(Self.q4)))
        // Offline, the registry answers by the ref it was pulled under.
        let offline = Puller(registry: r, environment: ["HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "1"])
        #expect(try offline.pull("hf://org/Model-GGUF:Q8_0").digest == mv.digest)
    }

    @Test func checkNamesTheFileOrWhatIsMissing() throws {
        let hub = try Self.ggufHub()
        defer { hub.stop() }
        let check = HubModelCheck(environment: ["HF_ENDPOINT": hub.endpoint])
        #expect(try check.check(ref: "hf://org/Model-GGUF:Q8_0", loadsRepository: false) == .available("hf://org/Model-GGUF@main/Model-Q8_0.gguf"))
        #expect(try check.check(ref: "hf://org/Model-GGUF:F16", loadsRepository: false) == .available("hf://org/Model-GGUF@main/big/Model-F16-00001-of-00002.gguf"))
        #expect(try check.check(ref: "hf://org/Model-GGUF/Model-Q4_K.gguf", loadsRepository: false) == .available("hf://org/Model-GGUF@main/Model-Q4_K.gguf"))
        #expect(message { try check.check(ref: "hf://org/Model-GGUF:Q5_K_M", loadsRepository: false) }
                == "hf://org/Model-GGUF has no GGUF file of quantization Q5_K_M; it has F16, Q4_K, Q4_K_M, Q8_0: write one of those (e.g. hf://org/Model-GGUF:F16, or quant: F16 in a short-form spec)")
        #expect(message { try check.check(ref: "hf://org/Model-GGUF/Missing.gguf", loadsRepository: false) }.contains("not found (HTTP 404): repository 'org/Model-GGUF', revision 'main', file 'Missing.gguf'"))
        #expect(message { try check.check(ref: "hf://org/Nope:Q4_K_M", loadsRepository: false) }
                == "fetching hf://org/Nope@main failed: not found (HTTP 404): repository 'org/Nope' does not exist — check the spelling and the revision (a branch, tag or commit).")
        // vLLM loads the repository: a GGUF-only one is refused with what it lacks.
        #expect(message { try check.check(ref: "org/Model-GGUF", loadsRepository: true) }.hasPrefix("hf://org/Model-GGUF has no config.json and *.safetensors weights, so vLLM cannot load it"))
        // Not hub references, or offline: nothing asked.
        let before = hub.requests.count
        #expect(try check.check(ref: "gemma3-270m", loadsRepository: false) == .notChecked("gemma3-270m is not a Hugging Face Hub reference"))
        let offline = HubModelCheck(environment: ["HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "1"])
        #expect(try offline.check(ref: "hf://org/Nope:Q4_K_M", loadsRepository: false) == .notChecked("offline"))
        #expect(hub.requests.count == before)
    }

    @Test func gatedAndSafetensorsRepositories() throws {
        let hub = try Self.safetensorsHub()
        defer { hub.stop() }
        let check = HubModelCheck(environment: ["HF_ENDPOINT": hub.endpoint])
        #expect(try check.check(ref: "THUDM/glm-4-9b-chat", loadsRepository: true) == .available("hf://THUDM/glm-4-9b-chat@main: config.json and 1 safetensors file(s)"))
        // The native engine cannot serve a safetensors repository: the message says what can.
        #expect(message { try check.check(ref: "hf://THUDM/glm-4-9b-chat:Q4_K_M", loadsRepository: false) }
                == "hf://THUDM/glm-4-9b-chat holds no GGUF file: it is a safetensors (transformers) repository, which the native engine and llama-server cannot load; serve it with backend vllm (model.ref THUDM/glm-4-9b-chat, a GPU in resources), or pick a GGUF conversion of it on the hub")
        hub.requiredToken = "hf_secret"
        #expect(message { try check.check(ref: "THUDM/glm-4-9b-chat", loadsRepository: true) }
                .contains("the hub answered HTTP 401: the repository is private or gated, or does not exist. Check the repo id; if it is private or gated, set HF_TOKEN"))
        let withToken = HubModelCheck(environment: ["HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_secret"])
        #expect(try withToken.check(ref: "THUDM/glm-4-9b-chat", loadsRepository: true) != .notChecked("offline"))
        hub.setRevision("main", commit: hub.commit)
        #expect(message { try withToken.check(ref: "THUDM/glm-4-9b-chat", revision: "v9", loadsRepository: true) }.contains("revision 'v9' does not exist in THUDM/glm-4-9b-chat"))
    }
}
