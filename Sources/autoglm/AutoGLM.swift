import ArgumentParser
import Foundation

@main
struct AutoGLM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm",
        abstract: "Fetch, serve, tune and deploy GLM-family LLMs from one binary.",
        subcommands: [Generate.self, Chat.self, Serve.self, Tokenize.self, Inspect.self, Bench.self, Logits.self,
                      Validate.self, Deploy.self, Pull.self, Models.self])
}

/// Options shared by commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model file.")
    var model: String

    @Option(name: .long, help: "Worker threads (default: the number of cores).")
    var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 || t > 512 {
            throw ValidationError("--threads must be between 1 and 512 (got \(t))")
        }
    }
}

/// JSON printing helper: stable key order, no escaping of slashes.
func printJSON(_ object: Any) {
    do {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    } catch {
        print("{\"error\": \"could not encode JSON\"}")
    }
}

/// Writes to stdout immediately (streaming output).
func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}
