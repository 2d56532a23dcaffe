import Foundation
import Testing

/// Runs the built `autoglm` binary (it sits next to this test target's resource bundle in
/// the build products directory).
enum CLI {
    static var binary: String {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("autoglm").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ args: [String], environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes fully before waiting, so a chatty child cannot block on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    static var modelsDirectory: String {
        ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
    }

    static func model(_ name: String) -> String? {
        let p = modelsDirectory + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
        Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
        return nil
    }

    static func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// The error output must be exactly one line naming the file and the problem.
func expectOneLineError(_ r: CLI.Result, mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status != 0, sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    #expect(lines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    for m in mentions {
        #expect(r.stderr.contains(m), "stderr should mention '\(m)': \(r.stderr)", sourceLocation: sourceLocation)
    }
    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("crashed"), sourceLocation: sourceLocation)
}
