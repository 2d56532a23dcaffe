import Foundation
@testable import Spec
@testable import Deploy

enum Fixture {
    static let dir: String = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.appendingPathComponent("Fixtures").path
    }()
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        url.deleteLastPathComponent()
        url.deleteLastPathComponent()
        return url.path
    }()

    static func text(_ rel: String) throws -> String {
        try String(contentsOfFile: dir + "/" + rel, encoding: .utf8)
    }

    struct Combo {
        var name: String
        var spec: String
        var env: String?
        var kube: String
    }

    static func combos() throws -> [Combo] {
        try text("combos.txt").split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") { return nil }
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count == 4 else { return nil }
            return Combo(name: f[0], spec: f[1], env: f[2] == "-" ? nil : f[2], kube: f[3])
        }
    }
}

/// Loads YAML text, returning the error lines (empty when valid).
func errors(_ yaml: String, env: String? = nil, vars: [String: String] = [:], file: String = "t.yaml") -> [String] {
    do {
        _ = try SpecLoader.load(yaml: yaml, file: file, environment: env, variables: vars)
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

let minimal = """
apiVersion: autoglm/v1
name: demo
model:
  ref: gemma3-270m

"""

/// Runs /bin/bash with `args` (a script path and its arguments, or `-c SCRIPT`); its status and
/// its stdout and stderr together.
func bash(_ args: [String]) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, out)
}
