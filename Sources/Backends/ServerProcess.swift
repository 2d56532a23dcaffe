import Foundation
import Optimizer
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Why a trial could not start or died.
public struct TrialFailure: Error, CustomStringConvertible {
    public var reason: InfeasibleReason
    public var detail: String
    public init(reason: InfeasibleReason, detail: String) { self.reason = reason; self.detail = detail }
    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// One server subprocess of a trial: started with its output in a log file, polled until a
/// readiness URL answers 200, stopped with SIGTERM (SIGKILL after 5 s).
/// Foundation's Process reaps the child itself; the class lets handles share it across tasks.
public final class ServerProcess: @unchecked Sendable {
    public let process: Process
    public let logPath: String
    public let baseURL: String
    public var pid: Int32 { process.processIdentifier }

    private init(process: Process, logPath: String, baseURL: String) {
        self.process = process; self.logPath = logPath; self.baseURL = baseURL
    }

    /// Starts `executable arguments` (which must make it listen on `port` of 127.0.0.1).
    public static func start(executable: String, arguments: [String], port: Int, environment: [String: String] = [:]) throws(TrialFailure) -> ServerProcess {
        let (p, log) = try spawn(executable: executable, arguments: arguments, environment: environment)
        return ServerProcess(process: p, logPath: log, baseURL: "http://127.0.0.1:\(port)")
    }

    /// Starts `executable arguments` (which must make it listen on port 0 of 127.0.0.1, so the
    /// kernel picks a free port — no race with another process taking it) and waits until the
    /// server announces its address in its output ("listening on [http://]HOST:PORT", as
    /// llama-server and `autoglm serve` print it). Throws when it exits or stays silent for `timeout`.
    public static func startAnnouncing(executable: String, arguments: [String], timeout: Double,
                                       environment: [String: String] = [:]) async throws(TrialFailure) -> ServerProcess {
        let (p, log) = try spawn(executable: executable, arguments: arguments, environment: environment)
        let unknown = ServerProcess(process: p, logPath: log, baseURL: "")
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), let port = announcedPort(text) {
                return ServerProcess(process: p, logPath: log, baseURL: "http://127.0.0.1:\(port)")
            }
            if !unknown.isAlive {
                let why = await unknown.exitDescription()
                throw TrialFailure(reason: why.oom ? .oom : .crash, detail: "\(executable) exited (\(why.text)) before it announced its address")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let tail = unknown.tail()
        _ = await unknown.stop()
        throw TrialFailure(reason: .timeout, detail: "\(executable) did not announce its address (\"listening on HOST:PORT\") within \(Int(timeout)) s: \(tail)")
    }

    /// The port in the first "listening on [http://]HOST:PORT" line of a server's output.
    static func announcedPort(_ text: Substring) -> Int? {
        guard let r = text.range(of: "listening on ") else { return nil }
        let rest = text[r.upperBound...]
        let token = rest.prefix { !$0.isWhitespace }
        guard token.count < rest.count || rest.hasSuffix("\n"),   // the whole token has been written
              let colon = token.lastIndex(of: ":"),
              let port = Int(token[token.index(after: colon)...].filter(\.isNumber)), (1...65535).contains(port)
        else { return nil }
        return port
    }
    static func announcedPort(_ text: String) -> Int? { announcedPort(text[...]) }

    private static let logCounter = Atomic<Int>(0)

    /// Launches the process with its output in a fresh log file. The child is started from
    /// `SpawnThread` through `setpriv --pdeathsig KILL` where setpriv exists, so it dies with
    /// autoglm even when autoglm is killed with SIGKILL (no orphaned servers). `environment` is
    /// set on top of autoglm's own.
    static func spawn(executable: String, arguments: [String], environment: [String: String] = [:]) throws(TrialFailure) -> (Process, String) {
        let n = logCounter.add(1, ordering: .relaxed).newValue
        let log = FileManager.default.temporaryDirectory
            .appendingPathComponent("autoglm-server-\(getpid())-\(n).log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        if FileManager.default.isExecutableFile(atPath: setpriv) {
            p.executableURL = URL(fileURLWithPath: setpriv)
            p.arguments = ["--pdeathsig", "KILL", "--", executable] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        }
        let fh = FileHandle(forWritingAtPath: log)
        p.standardOutput = fh
        p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TrialFailure(reason: .crash, detail: "could not start \(executable): not an executable file")
        }
        let started = SpawnThread.shared.run { () -> String? in
            do { try p.run(); return nil } catch { return "\(error)" }
        }
        if let why = started { throw TrialFailure(reason: .crash, detail: "could not start \(executable): \(why)") }
        return (p, log)
    }

    /// util-linux's setpriv (Debian: always installed), which sets the parent-death signal and execs.
    static let setpriv = "/usr/bin/setpriv"

    /// Alive by the kernel's account: Foundation learns of an exit on a dispatch queue that can lag
    /// far behind under load, so a process it still calls running is checked in /proc (a zombie
    /// or a vanished pid is dead).
    public var isAlive: Bool {
        guard process.isRunning else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat.index(close, offsetBy: 2) < stat.endIndex {
            let state = stat[stat.index(close, offsetBy: 2)]
            return state != "Z" && state != "X"
        }
        return kill(pid, 0) == 0
    }

    /// Waits up to `seconds` for Foundation to reap the process (sleeping, not blocking a
    /// thread); true once it has.
    private func reaped(within seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Waits until GET baseURL+`path` answers 200; throws (and stops the process) when it exits
    /// first or the timeout passes.
    public func waitReady(path: String, timeout: Double) async throws(TrialFailure) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !isAlive {
                let why = await exitDescription()
                throw TrialFailure(reason: why.oom ? .oom : .crash, detail: "server exited (\(why.text)) before ready")
            }
            if await httpStatus(baseURL + path) == 200 { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
        _ = await stop()
        throw TrialFailure(reason: .timeout, detail: "not ready after \(Int(timeout)) s: \(tail())")
    }

    /// How an exited server ended, with the end of its log; `oom` when the kernel killed it.
    public func exitDescription() async -> (oom: Bool, text: String) {
        guard await reaped(within: 10) else { return (false, "exited, status not yet known: \(tail())") }
        let signaled = process.terminationReason == .uncaughtSignal
        return (signaled && process.terminationStatus == SIGKILL,
                "\(signaled ? "signal" : "status") \(process.terminationStatus): \(tail())")
    }

    /// Stops the process; returns its peak resident set size in bytes when it was still readable.
    public func stop() async -> Int64? {
        let peak = ServerProcess.peakRSS(pid: pid)
        if isAlive { kill(pid, SIGTERM) }
        for _ in 0..<50 {
            if !isAlive { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if isAlive {
            kill(pid, SIGKILL)
            _ = await reaped(within: 10)
        }
        try? FileManager.default.removeItem(atPath: logPath)
        return peak
    }

    /// VmHWM (peak RSS) from /proc/PID/status, in bytes.
    public static func peakRSS(pid: Int32) -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// The last lines of the log.
    public func tail() -> String {
        guard let s = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no log)" }
        let lines = s.split(separator: "\n").suffix(3).joined(separator: " | ")
        return lines.isEmpty ? "(empty log)" : String(lines.suffix(400))
    }
}

/// A TCP port the kernel says is free now (bound to port 0, then released).
public func freePort() throws(TrialFailure) -> Int {
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

/// HTTP status of a GET (with an optional bearer key), nil when the connection fails.
public func httpStatus(_ url: String, apiKey: String? = nil, timeout: Double = 2) async -> Int? {
    guard let u = URL(string: url) else { return nil }
    var req = URLRequest(url: u)
    req.timeoutInterval = timeout
    if let k = apiKey, !k.isEmpty { req.setValue("Bearer \(k)", forHTTPHeaderField: "Authorization") }
    do {
        let (_, resp) = try await URLSession.shared.data(for: req)
        return (resp as? HTTPURLResponse)?.statusCode
    } catch {
        return nil
    }
}

/// One thread that lives as long as autoglm and starts every child process. Linux sends a child's
/// parent-death signal when the *thread* that forked it ends, and the cooperative pool's or
/// Dispatch's worker threads may end while autoglm runs on; this one never does.
final class SpawnThread: Sendable {
    static let shared = SpawnThread()
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)

    private init() {
        let t = Thread { [self] in
            while true {
                wake.wait()
                let batch = jobs.withLock { j -> [@Sendable () -> Void] in defer { j = [] }; return j }
                for job in batch { job() }
            }
        }
        t.name = "autoglm-spawn"
        t.start()
    }

    private final class Slot<T: Sendable>: Sendable {
        let value = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    /// Runs `body` on the spawn thread and returns its result (blocks the caller for that long: a
    /// posix_spawn, milliseconds).
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let slot = Slot<T>()
        jobs.withLock { $0.append { let r = body(); slot.value.withLock { $0 = r }; slot.done.signal() } }
        wake.signal()
        while true {
            slot.done.wait()
            if let r = slot.value.withLock({ $0 }) { return r }
        }
    }
}
