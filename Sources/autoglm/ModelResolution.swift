import ArgumentParser
import Foundation
import Logging
import Registry
import Server

extension ModelOptions {
    /// Resolves `--model` (or `defaultRef` when it is absent) through the registry: a path, a
    /// registered `ID[@VERSION|:CHANNEL]`, or a pull reference fetched on demand.
    func resolveModel(default defaultRef: String? = nil) throws -> ModelResolver.Resolved {
        guard let ref = model ?? defaultRef else {
            throw ValidationError("--model is required: a GGUF path, a registered model ID[@VERSION|:CHANNEL] or a catalog alias (\(Catalog.aliases.joined(separator: ", ")))")
        }
        // A path that does not exist goes straight to the loader, which names the file and the problem.
        if case let .source(.file(path))? = try? ModelRef.parse(ref), !FileManager.default.fileExists(atPath: path) {
            return ModelResolver.Resolved(path: path, name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, version: nil)
        }
        let printer = ProgressPrinter()
        defer { printer.finish() }
        let resolver = ModelResolver(progress: { printer.update($0, $1, $2) },
                                     log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        return try registryRun { try resolver.resolve(ref) }
    }

    func modelPath() throws -> String { try resolveModel().path }

    /// Resolves `--model` for backend vllm: a registered reference (ID[@VERSION|:CHANNEL]) → its
    /// repo id at the pinned commit; `hf://ORG/REPO[@REV]` or `ORG/REPO` → that repository.
    func resolveRepository() throws -> ModelResolver.Repository? {
        guard let ref = model else { return nil }
        let resolver = ModelResolver(log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        return try registryRun { try resolver.resolveRepository(ref) }
    }
}

/// The registry at the default home, when one has been created (for mounting its REST API).
func openRegistryIfPresent() -> Registry? {
    let home = Registry.defaultHome()
    guard FileManager.default.fileExists(atPath: "\(home)/registry.sqlite") else { return nil }
    return try? Registry(home: home)
}

/// `autoglm registry serve`: the registry REST API on its own.
struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry", abstract: "The model registry's REST API.", subcommands: [ServeRegistry.self])

    struct ServeRegistry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Serve GET /v1/registry/models, /v1/registry/models/{id}/versions and /v1/registry/models/{id}/resolve?channel=|version=.")
        @Option(name: .long, help: "Address to bind.") var host = "127.0.0.1"
        @Option(name: .long, help: "Port to listen on.") var port = 8081
        @OptionGroup var registryOptions: RegistryOptions

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535 (got \(port))") }
        }

        func run() async throws {
            let registry = try registryRun { try registryOptions.open() }
            let logger = Logger(label: "autoglm.registry")
            logger.info("serving the registry", metadata: ["home": "\(registry.home)", "host": "\(host)", "port": "\(port)"])
            try await RegistryRoutes.serve(registry: registry, host: host, port: port, logger: logger)
        }
    }
}
