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
        #expect(html.contains("Each knob's effect"))

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

    /// llama.cpp's server: $AUTOGLM_LLAMA_SERVER or where bench/build-llama-server.sh puts it
    /// (scripts/test.sh builds it, so CI always has it).
    static func llamaServer() -> String? {
        let env = ProcessInfo.processInfo.environment["AUTOGLM_LLAMA_SERVER"] ?? ""
        let p = env.isEmpty ? NSHomeDirectory() + "/.cache/autoglm/peers/llama-server/bin/llama-server" : env
        if FileManager.default.isExecutableFile(atPath: p) { return p }
        Issue.record("llama-server \(p) is missing: run bash bench/build-llama-server.sh (scripts/test.sh does)")
        return nil
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// native, llama.cpp's llama-server and an OpenAI-compatible upstream (a separate `autoglm
    /// serve`) tuned and measured with one workload; the winner is the best of the three
    /// per-backend reports and lands in the spec with its backend type.
    @Test func backendsAreComparedAndTheWinnerIsWrittenToTheSpec() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf"), let llama = Self.llamaServer() else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-backends-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        // The upstream: another autoglm serve on a free port.
        let port = freePort()
        let up = Process()
        up.executableURL = URL(fileURLWithPath: CLI.binary)
        up.arguments = ["serve", "--model", model, "--host", "127.0.0.1", "--port", String(port), "--threads", "1",
                        "--served-model-name", "upstream-model"]
        up.standardOutput = FileHandle.nullDevice
        up.standardError = FileHandle.nullDevice
        try up.run()
        defer { up.terminate(); up.waitUntilExit() }
        var ready = false
        for _ in 0..<300 where !ready {
            let r = try CLI.run(["loadtest", "--url", "http://127.0.0.1:\(port)", "--concurrency", "1", "--requests", "1",
                                 "--prompt-tokens", "4", "--max-tokens", "1"])
            ready = r.status == 0
            if !ready { usleep(200_000) }
        }
        #expect(ready, "the upstream autoglm serve did not come up")

        let specPath = dir + "/autoglm.yaml"
        try """
        apiVersion: autoglm/v1
        kind: Deployment
        name: gemma3-backends
        model:
          ref: \(model)
        """.write(toFile: specPath, atomically: true, encoding: .utf8)
        let common = ["--requests", "3", "--concurrency", "2", "--prompt-tokens", "8", "--max-tokens", "4",
                      "--warmup", "0", "--seed", "5", "--max-latency-ms", "600000", "--llama-server", llama]
        let r = try Self.run(["optimize", specPath, "--backends", "native,llamacpp,openai:http://127.0.0.1:\(port)/v1",
                              "--max-trials", "1", "--write", "--report", dir + "/report"] + common, home: dir + "/home")
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let cmp = try Self.json(dir + "/report/backends.json")
        let entries = try #require(cmp["backends"] as? [[String: Any]])
        #expect(entries.compactMap { $0["backend"] as? String } == ["native", "llamacpp", "openai"])
        var bests: [String: Double] = [:]
        for e in entries {
            let name = try #require(e["backend"] as? String)
            // Each backend's best is the best ok trial of its own report.
            let trials = try Self.trials(dir + "/report/" + name)
            #expect(trials.count == 1, "\(name): \(trials)")
            #expect(trials.allSatisfy { ($0["status"] as? String) == "ok" }, "\(name): \(trials)")
            let top = trials.compactMap { $0["objective"] as? Double }.max()
            let best = try #require((e["best"] as? [String: Any])?["objective"] as? Double)
            #expect(best == top)
            bests[name] = best
        }
        let winner = try #require(cmp["winner"] as? String)
        #expect(bests[winner] == bests.values.max())
        #expect(r.stdout.contains("→ winner: \(winner)"), "\(r.stdout)")

        // The spec carries the winner's backend type (and the upstream's URL when it won).
        let v = try Self.run(["validate", specPath, "--print"], home: dir + "/home")
        #expect(v.status == 0, "stdout: \(v.stdout) stderr: \(v.stderr)")
        #expect(v.stdout.contains("type: \(winner)"), "\(v.stdout)")
        if winner == "openai" { #expect(v.stdout.contains("url: http://127.0.0.1:\(port)"), "\(v.stdout)") }

        // llama.cpp alone: its knobs land in the spec's backend fields and the spec still validates.
        let l = try Self.run(["optimize", specPath, "--backends", "llamacpp", "--max-trials", "1", "--write",
                              "--report", dir + "/llama"] + common, home: dir + "/home")
        #expect(l.status == 0, "stderr: \(l.stderr)")
        let best = try #require((try Self.json(dir + "/llama/report.json")["best"] as? [String: Any])?["config"] as? [String: String])
        let lv = try Self.run(["validate", specPath, "--print"], home: dir + "/home")
        #expect(lv.status == 0, "stdout: \(lv.stdout) stderr: \(lv.stderr)")
        #expect(lv.stdout.contains("type: llamacpp"), "\(lv.stdout)")
        for (field, knob) in [("threads", "threads"), ("maxSeqs", "parallel"), ("maxBatchedTokens", "batch"),
                              ("ubatchTokens", "ubatch"), ("kvCacheType", "cacheType")] {
            let value = try #require(best[knob])
            #expect(lv.stdout.contains("\(field): \(value)"), "\(field): \(value) in \(lv.stdout)")
        }
        #expect(lv.stdout.contains("flashAttention: \(best["flashAttention"] == "on")"), "\(lv.stdout)")
    }

    @Test func badBackendListsAreRejectedWithTheFix() throws {
        let base = ["optimize", "--model", "/nonexistent.gguf", "--max-trials", "1"]
        for (backends, mention) in [("vllm", "unknown backend 'vllm'"), ("native,native", "twice"),
                                    ("openai:localhost:8000", "http(s) base URL"), ("", "unknown backend")] {
            let r = try CLI.run(base + ["--backends", backends])
            #expect(r.status != 0)
            #expect(r.stderr.contains(mention), "\(backends): \(r.stderr)")
        }
        let l = try CLI.run(base + ["--backends", "llamacpp", "--llama-server", "/nonexistent/llama-server"])
        #expect(l.status != 0 && l.stderr.contains("not an executable file"), "\(l.stderr)")
        let k = try CLI.run(base + ["--backends", "openai:http://127.0.0.1:9", "--objective", "memory"])
        #expect(k.status != 0 && k.stderr.contains("memory"), "\(k.stderr)")
    }
}
