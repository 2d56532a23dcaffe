import Foundation
import Testing

@Suite("CLI bad input")
struct BadInputTests {
    @Test func missingModelFile() throws {
        let r = try CLI.run(["generate", "--model", "/nonexistent/model.gguf", "--prompt", "hi"])
        expectOneLineError(r, mentions: ["/nonexistent/model.gguf", "No such file"])
    }

    @Test func directoryInsteadOfFile() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let r = try CLI.run(["inspect", dir])
        expectOneLineError(r, mentions: [dir, "not a regular file"])
    }

    @Test func textFileIsNotGGUF() throws {
        let path = try CLI.temporaryFile("notes.gguf", Array("just some text, not a model\n".utf8))
        for args in [["inspect", path], ["generate", "--model", path, "--prompt", "x"], ["bench", "--model", path]] {
            expectOneLineError(try CLI.run(args), mentions: [path, "not a GGUF file"])
        }
    }

    /// A KV budget that cannot hold one sequence of the context asked for is refused at start,
    /// with the numbers and the budget that would do.
    @Test func kvBudgetTooSmallForTheContext() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf") else { return }
        let r = try CLI.run(["serve", "--model", model, "--kv-cache-mb", "1", "--ctx", "4096", "--port", "0"])
        #expect(r.status != 0)
        // gemma3-270m: 18 layers × (256 + 256) halves = 18,432 bytes per position.
        for m in ["--kv-cache-mb 1 holds 48 positions", "18432 bytes each", "context 4096", "at least 73"] {
            #expect(r.stderr.contains(m), "stderr should mention '\(m)': \(r.stderr)")
        }
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test func truncatedModelIsReported() throws {
        guard let model = CLI.model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return }
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: model))
        let head = try handle.read(upToCount: 3_000_000) ?? Data()
        try handle.close()
        let path = try CLI.temporaryFile("truncated.gguf", Array(head))
        let r = try CLI.run(["generate", "--model", path, "--prompt", "x"])
        expectOneLineError(r, mentions: [path])
        #expect(r.stderr.contains("truncated") || r.stderr.contains("past the end"), "\(r.stderr)")
    }

    @Test func invalidArguments() throws {
        guard let model = CLI.model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return }
        for args in [["generate", "--model", model, "--prompt", "x", "-n", "-3"],
                     ["generate", "--model", model, "--prompt", "x", "--top-p", "0"],
                     ["generate", "--model", model, "--prompt", "x", "--threads", "0"],
                     ["logits", "--model", model, "--ids", "1,zz"]] {
            let r = try CLI.run(args)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.contains("Error"), "\(args): \(r.stderr)")
        }
        let r = try CLI.run(["logits", "--model", model, "--ids", "1,999999999"])
        expectOneLineError(r, mentions: ["999999999", "vocabulary"])
    }
}

@Suite("CLI on real models")
struct RealModelCLITests {
    struct GenerateOutput: Decodable {
        let prompt_ids: [Int32]
        let generated_ids: [Int32]
        let text: String
    }

    /// `generate --json --temp 0` reproduces llama.cpp's greedy continuation (prompt ids and
    /// the generated ids up to the first near-tie step of the reference).
    @Test func greedyGenerateMatchesReference() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf") else { return }
        // Reference (llama.cpp, shared golden "prose_capital"): first near tie at step 4.
        let r = try CLI.run(["generate", "--model", model, "--prompt", "The capital of France is", "-n", "4",
                             "--temp", "0", "--json", "--threads", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONDecoder().decode(GenerateOutput.self, from: Data(r.stdout.utf8))
        #expect(out.prompt_ids == [2, 818, 5279, 529, 7001, 563])
        #expect(out.generated_ids == [506, 5279, 529, 506])
        #expect(out.text == " the capital of the")
    }

    @Test func tokenizeAndInspect() throws {
        guard let model = CLI.model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return }
        let t = try CLI.run(["tokenize", "--model", model, "--special", "<|im_start|>user\nHello world"])
        #expect(t.status == 0, "\(t.stderr)")
        let ids = try JSONDecoder().decode([Int].self, from: Data(t.stdout.utf8))
        #expect(ids.first == 151644)
        let i = try CLI.run(["inspect", model, "--json"])
        #expect(i.status == 0)
        let obj = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as? [String: Any]
        let meta = obj?["metadata"] as? [String: Any]
        #expect(meta?["general.architecture"] as? String == "qwen2")
        let types = obj?["tensor_types"] as? [String: Any]
        #expect(Set(types?.keys.map { $0 } ?? []) == ["F32", "Q5_0", "Q8_0", "Q4_K", "Q6_K"])
    }
}
