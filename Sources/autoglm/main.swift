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
Inspect.main()
