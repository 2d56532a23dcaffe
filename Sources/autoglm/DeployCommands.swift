import ArgumentParser
import Deploy

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func printErr(_ s: String) {
    let line = Array((s.hasSuffix("\n") ? s : s + "\n").utf8)
    line.withUnsafeBytes { buf in
        var off = 0
        while off < buf.count, let base = buf.baseAddress {
            let n = write(2, base + off, buf.count - off)
            if n <= 0 { return }
            off += n
        }
    }
}

/// Loads a spec for rendering, printing every error and exiting 1 on failure.
private func loadSpecOrExit(_ file: String, env: String?) throws -> LoadedSpec {
    let text: String
    do { text = try SpecLoader.readFile(file) } catch {
        printErr(error.description)
        throw ExitCode(1)
    }
    do {
        return try SpecLoader.load(yaml: text, file: file, environment: env,
                                   variables: SpecLoader.processEnvironment())
    } catch {
        for d in error.diagnostics { printErr(d.description) }
        throw ExitCode(1)
    }
}

/// `autoglm validate FILE [--env E] [--print]`
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an autoglm.yaml and report every problem with file:line:column.")

    @Argument(help: "The spec file.") var file: String = "autoglm.yaml"
    @Option(name: .long, help: "Apply this environments overlay (default: check the base and every overlay).")
    var env: String?
    @Flag(name: .long, help: "Print the resolved spec (overlay applied, ${VAR} substituted) as YAML.")
    var print = false

    func run() throws {
        let text: String
        do { text = try SpecLoader.readFile(file) } catch {
            printErr(error.description)
            throw ExitCode(1)
        }
        let vars = SpecLoader.processEnvironment()
        let result = SpecLoader.validate(yaml: text, file: file, environment: env, variables: vars)
        for n in result.notes { printErr("note: " + n.description) }
        guard result.errors.isEmpty else {
            for e in result.errors { Swift.print(e.description) }
            throw ExitCode(1)
        }
        if print {
            let loaded = try loadSpecOrExit(file, env: env)
            Swift.print(SpecEncoder.yaml(loaded.spec), terminator: "")
        } else {
            Swift.print("\(file): valid")
        }
    }
}

/// `autoglm deploy ...`
struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deploy a spec: render Kubernetes manifests, write a Containerfile.",
        subcommands: [Render.self, Containerfile.self])

    /// `autoglm deploy render [FILE] [--env E] [--kube-version 1.XX] [-o DIR]`
    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Render deterministic Kubernetes manifests from autoglm.yaml.")

        @Argument(help: "The spec file.") var file: String = "autoglm.yaml"
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @Option(name: .customLong("kube-version"), help: "Target Kubernetes version (1.19 or later).")
        var kubeVersion: String = KubeVersion.default.description
        @Option(name: .shortAndLong, help: "Write one file per object into this directory instead of stdout.")
        var output: String?

        func run() throws {
            let kv: KubeVersion
            do { kv = try KubeVersion.parse(kubeVersion) } catch {
                printErr(error.description)
                throw ExitCode(1)
            }
            let loaded = try loadSpecOrExit(file, env: env)
            let result = KubeRenderer.render(loaded.spec, options: RenderOptions(kubeVersion: kv))
            for n in result.notes { printErr("note: " + n) }
            if let output {
                do {
                    for path in try result.write(to: output) { printErr("wrote \(path)") }
                } catch {
                    printErr(error.description)
                    throw ExitCode(1)
                }
            } else {
                Swift.print(result.stream, terminator: "")
            }
        }
    }

    /// `autoglm deploy containerfile [-o DIR]`
    struct Containerfile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a multi-stage Containerfile and .dockerignore for the autoglm image.")

        @Option(name: .shortAndLong, help: "Directory to write into.") var output: String = "."

        func run() throws {
            do {
                for path in try ContainerBuild.write(to: output) { printErr("wrote \(path)") }
            } catch {
                printErr(error.description)
                throw ExitCode(1)
            }
        }
    }
}
