import Foundation
import Testing

/// `autoglm optimize` end to end: real `autoglm serve` trials on the small Gemma 3 model.
@Suite(.serialized) struct OptimizeCLITests {
    static func run(_ args: [String], home: String) throws -> CLI.Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["AUTOGLM_HOME"] = home
        p.environment = env
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-opt-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        return CLI.Result(status: p.terminationStatus,
                          stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    static func trials(_ reportDir: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: reportDir + "/report.json"))
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(obj["trials"] as? [[String: Any]])
    }

    @Test func tinyStudyStoresTrialsReportsAndWritesTheSpec() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-optimize-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let specPath = dir + "/autoglm.yaml"
        try """
        apiVersion: autoglm/v1
        kind: Deployment
        name: gemma3-opt
        model:
          ref: \(model)
        backend:
          type: native
          threads: 1
        """.write(toFile: specPath, atomically: true, encoding: .utf8)
        let common = ["--requests", "2", "--concurrency", "1", "--prompt-tokens", "8", "--max-tokens", "4",
                      "--warmup", "0", "--seed", "3", "--max-latency-ms", "600000", "--report", dir + "/report"]
        let first = try Self.run(["optimize", specPath, "--max-trials", "2", "--write"] + common, home: dir + "/home")
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let t1 = try Self.trials(dir + "/report")
        #expect(t1.count == 2)
        #expect(t1.allSatisfy { ($0["status"] as? String) == "ok" }, "\(t1)")
        let html = try String(contentsOfFile: dir + "/report/report.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("</html>"))

        // --write: the spec still validates and carries the best trial's knobs.
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/report/report.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let best = try #require((report["best"] as? [String: Any])?["config"] as? [String: String])
        let validated = try Self.run(["validate", specPath, "--print"], home: dir + "/home")
        #expect(validated.status == 0, "stdout: \(validated.stdout) stderr: \(validated.stderr)")
        for key in ["threads", "maxSeqs", "maxBatchedTokens", "kvCacheMB"] {
            let v = try #require(best[key])
            #expect(validated.stdout.contains("\(key): \(v)"), "\(key): \(v) in \(validated.stdout)")
        }

        // Trials are stored: --resume with one more trial re-runs only that one and keeps the first two.
        let second = try Self.run(["optimize", specPath, "--max-trials", "3", "--resume"] + common, home: dir + "/home")
        #expect(second.status == 0, "stderr: \(second.stderr)")
        #expect(second.stderr.contains("resuming after 2 stored trial(s)"))
        let t2 = try Self.trials(dir + "/report")
        #expect(t2.count == 3)
        for i in 0..<2 {
            #expect((t2[i]["config"] as? [String: String]) == (t1[i]["config"] as? [String: String]))
        }
        #expect(second.stderr.components(separatedBy: "trial ").filter { $0.hasPrefix("3/3") }.count == 1)
    }
}
