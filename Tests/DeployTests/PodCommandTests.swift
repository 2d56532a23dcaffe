import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import Yams
@testable import Spec
@testable import Deploy

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The commands the renderer puts into a pod run with the real `autoglm` binary: the rendered
/// manifest stream is parsed back (Yams), the init and main containers' commands and env are
/// taken as rendered, and only the paths are moved (/models and /etc/autoglm to temporary
/// directories; the spec's port is a free one). The pull must succeed, the server must become
/// ready, answer a chat completion with the Secret's API key, and exit 0 on SIGTERM.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct PodCommandTests {
    static var binary: String {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("autoglm").path
    }

    static var gemma: String? {
        let dir = ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
        let p = dir + "/gemma3-270m-q4_k_m.gguf"
        if FileManager.default.fileExists(atPath: p) { return p }
        Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
        return nil
    }

    /// A port nobody listens on right now (bound to 0, read back, released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0 else { throw TestFailure("bind() failed") }
        let named = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw TestFailure("getsockname() failed") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    struct Container {
        var command: [String]
        /// name → value; secretKeyRef entries carry "secret:NAME/KEY".
        var env: [(String, String)]
    }

    static func container(_ any: Any?) throws -> Container {
        guard let c = any as? [String: Any], let cmd = c["command"] as? [String] else {
            throw TestFailure("a container without a command: \(String(describing: any))")
        }
        var env: [(String, String)] = []
        for e in (c["env"] as? [[String: Any]]) ?? [] {
            guard let name = e["name"] as? String else { continue }
            if let v = e["value"] as? String {
                env.append((name, v))
            } else if let ref = (e["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any],
                      let sn = ref["name"] as? String, let sk = ref["key"] as? String {
                env.append((name, "secret:\(sn)/\(sk)"))
            }
        }
        return Container(command: cmd, env: env)
    }

    final class Output: @unchecked Sendable {
        let lock = NSLock()
        var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    /// Starts `command` (its first word, `autoglm`, replaced by the built binary) with exactly `env`.
    static func start(_ command: [String], env: [String: String], output: Output) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = Array(command.dropFirst())
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if !d.isEmpty { output.append(d) }
        }
        try p.run()
        return p
    }

    static func waitExit(_ p: Process, seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !p.isRunning
    }

    static func http(_ method: String, _ url: String, body: String? = nil, bearer: String? = nil) async -> (Int, String) {
        guard let u = URL(string: url) else { return (-1, "bad url") }
        var r = URLRequest(url: u)
        r.httpMethod = method
        r.timeoutInterval = 120
        if let body {
            r.httpBody = Data(body.utf8)
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let bearer { r.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        do {
            let (data, resp) = try await URLSession.shared.data(for: r)
            return ((resp as? HTTPURLResponse)?.statusCode ?? -1, String(decoding: data, as: UTF8.self))
        } catch {
            return (-1, "\(error)")
        }
    }

    @Test func renderedPullAndServeCommandsRun() async throws {
        guard let model = Self.gemma else { return }
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("autoglm-pod-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        let modelsDir = root + "/models", etcDir = root + "/etc", home = root + "/home"
        for d in [modelsDir, etcDir, home] { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }

        let port = try Self.freePort()
        let specText = """
        apiVersion: autoglm/v1
        name: podtest
        model:
          ref: \(model)
          channel: prod
        backend:
          threads: 2
          maxSeqs: 2
          maxBatchedTokens: 64
          kvCacheMB: 32
          contextLength: 256
          kvCacheType: f16
          batchWaitMs: 5
        server:
          port: \(port)
          drainTimeoutSeconds: 5
          apiKeys:
            - secretRef: {name: podtest-keys, key: token}

        """
        let spec = try SpecLoader.load(yaml: specText, file: "podtest.yaml", variables: [:]).spec
        let stream = KubeRenderer.render(spec).stream
        let docs = try Array(Yams.load_all(yaml: stream)).compactMap { $0 as? [String: Any] }
        let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
        let configMap = try #require(docs.first { $0["kind"] as? String == "ConfigMap" })
        let podSpec = try #require(((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let initC = try Self.container((podSpec["initContainers"] as? [Any])?.first)
        let mainC = try Self.container((podSpec["containers"] as? [Any])?.first)
        let mainDict = try #require((podSpec["containers"] as? [[String: Any]])?.first)
        let configMount = try #require((mainDict["volumeMounts"] as? [[String: Any]])?.first { $0["name"] as? String == "config" })
        #expect(configMount["mountPath"] as? String == "/etc/autoglm")
        let containerPort = (mainDict["ports"] as? [[String: Any]])?.first?["containerPort"] as? Int
        #expect(containerPort == port)
        #expect(initC.command.first == "autoglm" && mainC.command.first == "autoglm")

        // The ConfigMap's files as the volume presents them.
        let data = try #require(configMap["data"] as? [String: String])
        for (name, text) in data { try text.write(toFile: etcDir + "/" + name, atomically: true, encoding: .utf8) }

        // Only paths move; a Secret reference becomes the Secret's value, as the kubelet does.
        let secret = "s3cret-\(UInt32.random(in: 0...UInt32.max))"
        func move(_ s: String) -> String {
            if s == "/models" || s.hasPrefix("/models/") { return modelsDir + s.dropFirst("/models".count) }
            if s == "/etc/autoglm" || s.hasPrefix("/etc/autoglm/") { return etcDir + s.dropFirst("/etc/autoglm".count) }
            return s
        }
        func environment(_ c: Container) -> [String: String] {
            var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": home]
            for (k, v) in c.env {
                env[k] = v == "secret:podtest-keys/token" ? secret : move(v)
            }
            return env
        }
        let pullCmd = initC.command.map(move)
        let serveCmd = mainC.command.map(move)
        #expect(pullCmd.contains(modelsDir), "the init container names the models dir: \(initC.command)")
        #expect(serveCmd.contains { $0.hasPrefix(etcDir) }, "the server reads the mounted spec: \(mainC.command)")

        // 1. The init container.
        let pullOut = Output()
        let pull = try Self.start(pullCmd, env: environment(initC), output: pullOut)
        #expect(await Self.waitExit(pull, seconds: 300), "pull did not finish")
        #expect(pull.terminationStatus == 0, "pull failed: \(pullOut.text)")
        #expect(fm.fileExists(atPath: modelsDir + "/registry.sqlite"))

        // 2. The server.
        let serveOut = Output()
        let serve = try Self.start(serveCmd, env: environment(mainC), output: serveOut)
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
        let base = "http://127.0.0.1:\(port)"
        var ready = false
        for _ in 0..<1200 where serve.isRunning {
            if await Self.http("GET", base + "/readyz").0 == 200 { ready = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ready, "serve never became ready: \(serveOut.text)")
        guard ready else { return }
        let body = #"{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":4,"temperature":0}"#
        let (denied, _) = await Self.http("POST", base + "/v1/chat/completions", body: body)
        #expect(denied == 401, "the spec's secretRef key must be required")
        let (status, answer) = await Self.http("POST", base + "/v1/chat/completions", body: body, bearer: secret)
        #expect(status == 200, "chat completion: \(answer)")
        let parsed = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any]
        let choice = (parsed?["choices"] as? [[String: Any]])?.first
        #expect((choice?["message"] as? [String: Any])?["content"] is String)
        let completionTokens = (parsed?["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0
        #expect((1...4).contains(completionTokens))

        // 3. SIGTERM: drain and exit 0.
        kill(serve.processIdentifier, SIGTERM)
        #expect(await Self.waitExit(serve, seconds: 60), "serve did not stop on SIGTERM")
        #expect(serve.terminationReason == .exit && serve.terminationStatus == 0, "serve exit: \(serveOut.text)")

        // The server used what the init container pulled (nothing fetched twice), and nothing
        // was written to $HOME (the pod's root filesystem is read-only).
        #expect(!serveOut.text.contains("pulled "), "serve pulled again: \(serveOut.text)")
        let blobs = try fm.contentsOfDirectory(atPath: modelsDir + "/blobs").filter { $0.hasPrefix("sha256-") }
        #expect(blobs.count == 1)
        #expect(try fm.contentsOfDirectory(atPath: home).isEmpty)
    }

    /// `serve --config` runs every backend type; what it cannot run is one line naming what is
    /// missing and how to fix it, exit 1, before anything is pulled.
    @Test func serveConfigNamesWhatABackendLacks() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("autoglm-podref-\(getpid())").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let cases = [
            ("llamacpp", "model: {ref: gemma3-270m}\nbackend:\n  type: llamacpp", "llama-server not found"),
            ("vllm", "model: {ref: THUDM/glm-4-9b-chat-hf}\nresources: {nvidia.com/gpu: 1}\nbackend:\n  type: vllm", "vllm not found"),
            ("mystery", "model: {ref: gemma3-270m}\nbackend:\n  type: mystery", "backend.type"),
        ]
        for (name, body, mention) in cases {
            let path = dir + "/\(name).yaml"
            try "apiVersion: autoglm/v1\nname: x\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
            let out = Output()
            let p = try Self.start(["autoglm", "serve", "--config", path],
                                   env: ["PATH": "/usr/bin:/bin", "HOME": dir, "AUTOGLM_HOME": dir + "/reg"], output: out)
            p.waitUntilExit()
            #expect(p.terminationStatus == 1, "\(name): \(out.text)")
            #expect(out.text.contains(mention), "\(name): \(out.text)")
            #expect(out.text.split(separator: "\n").filter { $0.hasPrefix("error:") }.count == 1, "one error line: \(out.text)")
            #expect(!fm.fileExists(atPath: dir + "/reg/blobs"), "nothing may be pulled for a spec that cannot run")
        }
    }

    /// Runs the binary to completion; returns (status, stdout + stderr).
    static func run(_ args: [String], env: [String: String]) async throws -> (Int32, String) {
        let out = Output()
        let p = try start(["autoglm"] + args, env: env, output: out)
        _ = await waitExit(p, seconds: 120)
        try await Task.sleep(for: .milliseconds(50))  // let the pipe handler take the last bytes
        return (p.terminationStatus, out.text)
    }

    /// `pull --channel` / `--models-dir`: the registry home is $AUTOGLM_MODELS_DIR when nothing
    /// else names one; a channel that already names a registered version fetches nothing; a user
    /// channel is pointed at what was pulled; `models show ID:CHANNEL` (the lookup `serve` does)
    /// agrees with what pull reported.
    @Test func pullChannelAndModelsDir() async throws {
        let fm = FileManager.default
        let file = Fixture.repoRoot + "/Tests/ModelsTests/Fixtures/reference/glm4-q.gguf"
        let dir = fm.temporaryDirectory.appendingPathComponent("autoglm-pullch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try fm.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let viaEnv = ["PATH": "/usr/bin:/bin", "HOME": dir + "/home", "AUTOGLM_MODELS_DIR": dir + "/models"]
        let plain = ["PATH": "/usr/bin:/bin", "HOME": dir + "/home"]
        let md = ["--models-dir", dir + "/models"]

        var (status, out) = try await Self.run(["pull", file, "--channel", "prod", "--json"], env: viaEnv)
        #expect(status == 0, "\(out)")
        #expect(fm.fileExists(atPath: dir + "/models/registry.sqlite"), "AUTOGLM_MODELS_DIR is the registry home")
        #expect(out.contains("\"version\" : \"1.0.0\""))
        (status, out) = try await Self.run(["models", "show", "glm4-q:prod", "--json"] + ["--home", dir + "/models"], env: plain)
        #expect(status == 0 && out.contains("\"version\" : \"1.0.0\"") && out.contains("\"prod\""), "\(out)")

        // A second version; prod still names 1.0.0 and nothing is fetched for it, latest names 2.0.0.
        (status, out) = try await Self.run(["pull", file, "--version", "2.0.0"] + md, env: plain)
        #expect(status == 0, "\(out)")
        (status, out) = try await Self.run(["pull", file, "--channel", "prod"] + md, env: plain)
        #expect(status == 0 && out.contains("glm4-q:prod is 1.0.0, already registered: nothing to fetch"), "\(out)")
        (status, out) = try await Self.run(["pull", file, "--channel", "latest"] + md, env: plain)
        #expect(status == 0 && out.contains("glm4-q:latest is 2.0.0, already registered"), "\(out)")
        #expect(!fm.fileExists(atPath: dir + "/home/.cache"), "nothing goes to ~/.cache when a models dir is named")

        // Conflicting or malformed requests are one clear error each.
        (status, out) = try await Self.run(["pull", file, "--version", "1.0.0", "--channel", "prod"] + md, env: plain)
        #expect(status != 0 && out.contains("give one of them"), "\(out)")
        (status, out) = try await Self.run(["pull", file, "--channel", "1.0.0"] + md, env: plain)
        #expect(status != 0 && out.contains("--version"), "\(out)")
        (status, out) = try await Self.run(["pull", file, "--home", dir + "/other"] + md, env: plain)
        #expect(status != 0 && out.contains("--models-dir and --home"), "\(out)")
    }

    /// Flags given with --config override the spec; unset flags take the spec's values; the host
    /// defaults to 0.0.0.0 with --config. Read from the server's start-up log line, then SIGTERM.
    @Test func flagsOverrideTheSpec() async throws {
        guard let model = Self.gemma else { return }
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("autoglm-override-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let specPort = try Self.freePort(), flagPort = try Self.freePort()
        try """
        apiVersion: autoglm/v1
        name: ov
        model: {ref: not-a-model-anywhere}
        backend: {maxSeqs: 4, maxBatchedTokens: 96, kvCacheMB: 40, kvCacheType: f32, batchWaitMs: 20, contextLength: 128}
        server: {port: \(specPort), drainTimeoutSeconds: 3}

        """.write(toFile: dir + "/s.yaml", atomically: true, encoding: .utf8)
        let out = Output()
        let p = try Self.start(["autoglm", "serve", "--config", dir + "/s.yaml", "--model", model, "--port", String(flagPort),
                                "--max-seqs", "3", "--batch-wait-ms", "7", "--threads", "2"],
                               env: ["PATH": "/usr/bin:/bin", "HOME": dir, "AUTOGLM_HOME": dir + "/reg"], output: out)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var line = ""
        for _ in 0..<1200 where p.isRunning {
            if let l = out.text.split(separator: "\n").first(where: { $0.contains("serving") }) { line = String(l); break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!line.isEmpty, "no start-up line: \(out.text)")
        for field in ["port=\(flagPort)", "max_seqs=3", "batch_wait_ms=7",               // flags
                      "max_batched_tokens=96", "kv_cache_mb=40", "kv_type=f32", "ctx=128",  // spec
                      "host=0.0.0.0"] {
            #expect(line.contains(field), "\(field) missing in: \(line)")
        }
        // The flag's port is the one bound (SIGTERM is handled once the server is up).
        var ready = false
        for _ in 0..<600 where p.isRunning {
            if await Self.http("GET", "http://127.0.0.1:\(flagPort)/readyz").0 == 200 { ready = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ready, "not ready on --port \(flagPort): \(out.text)")
        kill(p.processIdentifier, SIGTERM)
        #expect(await Self.waitExit(p, seconds: 60))
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(out.text)")
    }
}
