import Foundation
import Testing

/// `autoglm chat` driven under a pseudo-terminal (Fixtures/pty_chat.py) with the Qwen 2.5
/// test model, whose GGUF carries a ChatML template.
@Suite("autoglm chat under a pseudo-terminal")
struct ChatTests {
    struct Turn: Decodable { let reused: Int; let prefilled: Int; let generated: Int; let finish: String }
    struct Observed: Decodable {
        let turn1: Turn?, turn2: Turn?, turn3: Turn?, turn4: Turn?
        let stopped: Bool, system_ack: Bool, reset_ack: Bool
        let exit_status: Int?
        let transcript: String
    }

    @Test("streams answers, sends the whole conversation each turn (reused through the prefix cache), Ctrl-C stops an answer, commands, Ctrl-D exits")
    func session() throws {
        guard let model = CLI.model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return }
        let script = try #require(Bundle.module.url(forResource: "pty_chat", withExtension: "py", subdirectory: "Fixtures"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script.path, CLI.binary, model]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let o = try JSONDecoder().decode(Observed.self, from: Data(text.utf8))
        let t1 = try #require(o.turn1, "no stats after turn 1: \(o.transcript)")
        let t2 = try #require(o.turn2, "no stats after turn 2: \(o.transcript)")
        #expect(t1.reused == 0)
        #expect(t1.generated > 0)
        // The second turn re-renders the whole conversation: its prompt holds turn 1's prompt and answer.
        #expect(t2.reused + t2.prefilled > t1.reused + t1.prefilled + t1.generated,
                "turn 2: reused \(t2.reused) + prefilled \(t2.prefilled); turn 1: \(t1.prefilled) + \(t1.generated)")
        // ... but computes only what follows the cached prefix: the scheduler's prefix cache
        // holds turn 1's prompt in whole blocks of 16 tokens.
        #expect(t2.reused >= t1.prefilled / 16 * 16, "turn 2 reused \(t2.reused) of turn 1's \(t1.prefilled) prompt tokens")
        #expect(t2.prefilled < t2.reused, "turn 2 prefilled \(t2.prefilled), reused \(t2.reused)")
        #expect(o.stopped, "Ctrl-C did not stop the answer: \(o.transcript)")
        #expect(o.turn3?.finish == "cancelled")
        #expect(o.system_ack && o.reset_ack)
        // After /reset the conversation is only the system prompt and the new message.
        let t4 = try #require(o.turn4)
        #expect(t4.generated > 0)
        #expect(o.exit_status == 0, "exit status \(String(describing: o.exit_status)): \(o.transcript)")
    }

    @Test("a model without a chat template and no --template is a one-line error")
    func noTemplate() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf") else { return }
        let r = try CLI.run(["chat", "--model", model])
        expectOneLineError(r, mentions: ["gemma3-270m-q4_k_m.gguf", "chat template", "--template"])
    }
}
