import ArgumentParser
import GGUF

struct Inspect: ParsableCommand {
    @Argument var path: String
    func run() throws {
        let f = try GGUFFile(path: path)
        for k in f.metadataKeys { print(k, "=", f.metadata[k]!.description) }
        print(f.tensors.count, "tensors")
    }
}
// Root command (deploy worktree only; main's AutoGLM.swift adds Validate.self and Deploy.self).
struct AutoGLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm",
        subcommands: [Inspect.self, Validate.self, Deploy.self])
}
AutoGLM.main()
