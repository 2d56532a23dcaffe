import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A port that was free a moment ago (bind to 0, read it, close).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp -> Int32 in
            guard bind(fd, sp, len) == 0 else { return -1 }
            return getsockname(fd, sp, &len)
        }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func canConnect(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

@Suite("autoglm loadtest")
struct LoadtestTests {
    struct Report: Decodable {
        struct Lat: Decodable { let count: Int; let p50: Double; let p99: Double }
        let completed: Int, failed: Int, outputTokens: Int, promptTokens: Int
        let errors: [String: Int]
        let ttft: Lat, tpot: Lat, e2e: Lat
        let aborted: Bool
        let goodput: Double?
    }

    @Test("drives a real `autoglm serve`: every request completes with exactly max-tokens tokens")
    func againstServe() throws {
        guard let model = CLI.model("gemma3-270m-q4_k_m.gguf") else { return }
        let port = freePort()
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: CLI.binary)
        serve.arguments = ["serve", "--model", model, "--port", "\(port)", "--threads", "2", "--max-seqs", "4", "--kv-cache-mb", "64"]
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        try serve.run()
        defer {
            serve.terminate()
            serve.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(120)
        while !canConnect(port) && Date() < deadline && serve.isRunning { usleep(100_000) }
        try #require(canConnect(port), "autoglm serve did not listen on \(port)")

        let n = 4, m = 8, p = 16
        let r = try CLI.run(["loadtest", "--url", "http://127.0.0.1:\(port)", "--concurrency", "2", "--requests", "\(n)",
                             "--prompt-tokens", "\(p)", "--max-tokens", "\(m)", "--json", "--seed", "3", "--slo", "e2e=600000"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let rep = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        #expect(rep.completed == n && rep.failed == 0 && rep.errors.isEmpty)
        // ignore_eos: the server's usage reports exactly max_tokens per request; prompts are token-id lists.
        #expect(rep.outputTokens == n * m)
        #expect(rep.promptTokens == n * p)
        #expect(rep.ttft.count == n && rep.tpot.count == n && rep.e2e.count == n)
        #expect(rep.e2e.p50 >= rep.ttft.p50 && !rep.aborted)
        #expect(rep.goodput != nil)

        let t = try CLI.run(["loadtest", "--url", "http://127.0.0.1:\(port)", "--rate", "50", "--requests", "2",
                             "--prompt-tokens", "8", "--max-tokens", "4"])
        #expect(t.status == 0, "stderr: \(t.stderr)")
        for word in ["TTFT", "TPOT", "ITL", "e2e", "tok/s", "req/s", "errors: none", "2 completed"] {
            #expect(t.stdout.contains(word), "table lacks '\(word)': \(t.stdout)")
        }
    }

    @Test("bad inputs are one-line validation errors")
    func badInputs() throws {
        let base = ["loadtest", "--url", "http://127.0.0.1:9", "--requests", "2", "--prompt-tokens", "8", "--max-tokens", "4"]
        let cases: [([String], String)] = [
            (base, "--concurrency"),
            (base + ["--concurrency", "2", "--rate", "1"], "not both"),
            (base + ["--concurrency", "0"], "--concurrency"),
            (base + ["--rate", "-1"], "--rate"),
            (base + ["--concurrency", "1", "--slo", "ttft"], "--slo"),
            (base + ["--concurrency", "1", "--slo", "speed=5"], "--slo"),
            (base + ["--concurrency", "1", "--slo", "ttft=-5"], "--slo"),
            (["loadtest", "--url", "localhost:8080", "--concurrency", "1", "--requests", "1", "--prompt-tokens", "8", "--max-tokens", "4"], "--url"),
            (["loadtest", "--url", "http://127.0.0.1:9", "--concurrency", "1", "--requests", "0", "--prompt-tokens", "8", "--max-tokens", "4"], "--requests"),
            (["loadtest", "--url", "http://127.0.0.1:9", "--concurrency", "1", "--requests", "1", "--prompt-tokens", "0", "--max-tokens", "4"], "--prompt-tokens"),
        ]
        for (args, mention) in cases {
            let r = try CLI.run(args)
            #expect(r.status != 0, "\(args) succeeded")
            #expect(r.stderr.contains(mention), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"))
        }
        // Nothing listens on port 9: model discovery fails with a message that says what to check.
        let r = try CLI.run(base + ["--concurrency", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("/v1/models"), "\(r.stderr)")
    }
}
