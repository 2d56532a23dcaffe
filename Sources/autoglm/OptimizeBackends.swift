import Foundation
import LoadGen
import Optimizer
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A running trial server.
struct TrialHandle: Sendable {
    var baseURL: String
    var process: ProcessBox
    var logPath: String
    var pid: Int32 { process.process.processIdentifier }
}

/// Foundation's Process reaps the child itself; the box lets handles share it across tasks.
final class ProcessBox: @unchecked Sendable {
    let process: Process
    init(_ p: Process) { process = p }
}

/// Why a trial could not start or died.
struct TrialFailure: Error, CustomStringConvertible {
    var reason: InfeasibleReason
    var detail: String
    var description: String { "\(reason.rawValue): \(detail)" }
}

/// A serving backend the optimizer can tune: it declares its search space, launches a server
/// for one configuration and stops it.
protocol ServingBackend: Sendable {
    var name: String { get }
    func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace
    /// Starts a server for `config` and returns once it is ready (or throws a TrialFailure).
    func launch(_ config: Config, startupTimeout: Double) async throws -> TrialHandle
    /// Stops the server; returns its peak resident set size in bytes when known.
    func stop(_ handle: TrialHandle) async -> Int64?
    /// True while the server process is alive.
    func isAlive(_ handle: TrialHandle) -> Bool
    /// The knobs as the spec's backend fields.
    func specFields(_ config: Config) -> [String: Int]
}

/// The built-in engine, launched as `autoglm serve` (this same binary) on 127.0.0.1.
struct NativeBackend: ServingBackend {
    let modelPath: String
    let facts: ModelFacts
    let contextLength: Int
    var name: String { "native" }

    func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace {
        try ServingSpaces.native(machine: machine, model: facts, tokensPerSequence: tokensPerSequence)
    }

    func specFields(_ c: Config) -> [String: Int] {
        var out: [String: Int] = ["contextLength": contextLength]
        for k in [NativeKnob.threads, NativeKnob.maxSeqs, NativeKnob.maxBatchedTokens, NativeKnob.kvCacheMB] {
            if let v = c.int(k) { out[k] = v }
        }
        return out
    }

    static var executable: String {
        if let p = Bundle.main.executablePath, FileManager.default.isExecutableFile(atPath: p) { return p }
        return CommandLine.arguments[0]
    }

    func launch(_ c: Config, startupTimeout: Double) async throws -> TrialHandle {
        let port = try freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-trial-\(getpid())-\(port).log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: NativeBackend.executable)
        p.arguments = ["serve", "--model", modelPath, "--host", "127.0.0.1", "--port", String(port),
                       "--threads", String(c.int(NativeKnob.threads) ?? 1),
                       "--max-seqs", String(c.int(NativeKnob.maxSeqs) ?? 1),
                       "--max-batched-tokens", String(c.int(NativeKnob.maxBatchedTokens) ?? 512),
                       "--kv-cache-mb", String(c.int(NativeKnob.kvCacheMB) ?? 512),
                       "--ctx", String(contextLength), "--served-model-name", "trial"]
        let fh = FileHandle(forWritingAtPath: log)
        p.standardOutput = fh
        p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw TrialFailure(reason: .crash, detail: "could not start \(NativeBackend.executable): \(error)")
        }
        let handle = TrialHandle(baseURL: "http://127.0.0.1:\(port)", process: ProcessBox(p), logPath: log)
        let deadline = Date().addingTimeInterval(startupTimeout)
        while Date() < deadline {
            if !isAlive(handle) {
                p.waitUntilExit()
                let oom = p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL
                throw TrialFailure(reason: oom ? .oom : .crash,
                                   detail: "server exited (\(p.terminationReason == .uncaughtSignal ? "signal" : "status") \(p.terminationStatus)) before ready: \(tail(log))")
            }
            if await httpStatus("\(handle.baseURL)/readyz") == 200 { return handle }
            try? await Task.sleep(for: .milliseconds(200))
        }
        _ = await stop(handle)
        throw TrialFailure(reason: .timeout, detail: "not ready after \(Int(startupTimeout)) s: \(tail(log))")
    }

    func isAlive(_ h: TrialHandle) -> Bool {
        h.process.process.isRunning
    }

    /// How an exited server ended, with the end of its log; `oom` when the kernel killed it.
    func exitDescription(_ h: TrialHandle) -> (oom: Bool, text: String) {
        let p = h.process.process
        p.waitUntilExit()
        let signaled = p.terminationReason == .uncaughtSignal
        return (signaled && p.terminationStatus == SIGKILL,
                "\(signaled ? "signal" : "status") \(p.terminationStatus): \(tail(h.logPath))")
    }

    func stop(_ h: TrialHandle) async -> Int64? {
        let peak = NativeBackend.peakRSS(pid: h.pid)
        kill(h.pid, SIGTERM)
        for _ in 0..<50 {
            if !isAlive(h) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if isAlive(h) {
            kill(h.pid, SIGKILL)
            h.process.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: h.logPath)
        return peak
    }

    /// VmHWM (peak RSS) from /proc/PID/status, in bytes.
    static func peakRSS(pid: Int32) -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    private func tail(_ path: String) -> String {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        let lines = s.split(separator: "\n").suffix(3).joined(separator: " | ")
        return lines.isEmpty ? "(empty log)" : String(lines.suffix(400))
    }
}

/// A TCP port the kernel says is free now (bound to port 0, then released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TrialFailure(reason: .crash, detail: "socket() failed: errno \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TrialFailure(reason: .crash, detail: "bind() failed: errno \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let got = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard got == 0 else { throw TrialFailure(reason: .crash, detail: "getsockname() failed: errno \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// HTTP status of a GET, nil when the connection fails.
func httpStatus(_ url: String) async -> Int? {
    guard let u = URL(string: url) else { return nil }
    var req = URLRequest(url: u)
    req.timeoutInterval = 2
    do {
        let (_, resp) = try await URLSession.shared.data(for: req)
        return (resp as? HTTPURLResponse)?.statusCode
    } catch {
        return nil
    }
}
