import Foundation
import Testing

/// `autoglm validate` of the seeds' short form, its validate-time Hub check (against a static
/// stand-in for the Hub's model-info API served by Python's http.server), and `deploy -f`.
@Suite struct ShortFormCLITests {
    static let seed = """
        model: THUDM/glm-4-9b-chat
        version: v1.0
        replicas: 3
        resources:
          limits:
            nvidia.com/gpu: 1
            memory: 24Gi
        autoscaling:
          enabled: true
          minReplicas: 2
          maxReplicas: 10

        """

    /// A directory served over HTTP on loopback: `/api/models/ORG/REPO/revision/REV` answers the
    /// file at that path (the Hub's model-info JSON), anything else 404.
    final class StaticHub {
        let process = Process()
        let port: Int
        init(root: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", root]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            let handle = out.fileHandleForReading
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                line += chunk
            }
            // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
            let text = String(decoding: line, as: UTF8.self)
            port = text.components(separatedBy: " port ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        }
        var endpoint: String { "http://127.0.0.1:\(port)" }
        deinit {
            // SIGKILL, not terminate(): children of the test process have been seen to outlive a
            // SIGTERM here (then waitUntilExit never returns; the reason this test once hung).
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    static func modelInfo(_ root: String, repo: String, files: [String]) throws {
        let dir = root + "/api/models/" + repo + "/revision"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let siblings = files.map { "{\"rfilename\": \"\($0)\"}" }.joined(separator: ", ")
        try "{\"id\": \"\(repo)\", \"sha\": \"0123456789abcdef0123456789abcdef01234567\", \"siblings\": [\(siblings)]}"
            .write(toFile: dir + "/main", atomically: true, encoding: .utf8)
    }

    func env(_ extra: [String: String]) -> [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HF_HUB_OFFLINE"] = nil
        e["HF_TOKEN"] = nil
        e["HUGGING_FACE_HUB_TOKEN"] = nil
        for (k, v) in extra { e[k] = v }
        return e
    }

    @Test func validatesAndPrintsTheSeedOffline() throws {
        let path = try CLI.temporaryFile("seed-\(UInt32.random(in: 0...UInt32.max)).yaml", Array(Self.seed.utf8))
        let r = try CLI.run(["validate", path, "--offline", "--print"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.hasPrefix("apiVersion: autoglm/v1\nkind: Deployment\nname: glm-4-9b-chat\nmodel:\n  ref: THUDM/glm-4-9b-chat\n  version: \"1.0.0\"\nbackend:\n  type: vllm\n"), "\(r.stdout)")
        #expect(r.stdout.contains("replicas: 3\nresources:\n  memory: \"24Gi\"\n  nvidia.com/gpu: 1\nautoscaling:\n  enabled: true\n  minReplicas: 2\n  maxReplicas: 10\n"), "\(r.stdout)")
        #expect(r.stderr.contains("so backend vllm serves its safetensors"), "\(r.stderr)")
    }

    @Test func validateAsksTheHub() throws {
        let root = NSTemporaryDirectory() + "autoglm-statichub-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.modelInfo(root, repo: "THUDM/glm-4-9b-chat", files: ["config.json", "model-00001-of-00002.safetensors"])
        try Self.modelInfo(root, repo: "org/Tiny-GGUF", files: ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"])
        let hub = try StaticHub(root: root)
        #expect(hub.port > 0)
        let e = env(["HF_ENDPOINT": hub.endpoint])

        let seed = try CLI.temporaryFile("seed-hub-\(UInt32.random(in: 0...UInt32.max)).yaml", Array(Self.seed.utf8))
        let ok = try CLI.run(["validate", seed], environment: e)
        #expect(ok.status == 0 && ok.stdout == "\(seed): valid\n", "\(ok.stdout) \(ok.stderr)")

        // Without a GPU the short form picks the native engine, which this repository cannot feed.
        let cpu = try CLI.temporaryFile("cpu-\(UInt32.random(in: 0...UInt32.max)).yaml", Array("model: THUDM/glm-4-9b-chat\n".utf8))
        let noGGUF = try CLI.run(["validate", cpu], environment: e)
        #expect(noGGUF.status == 1)
        #expect(noGGUF.stdout.contains("model.ref 'hf://THUDM/glm-4-9b-chat:Q4_K_M' cannot be pulled: hf://THUDM/glm-4-9b-chat holds no GGUF file: it is a safetensors (transformers) repository"), "\(noGGUF.stdout)")
        #expect(try CLI.run(["validate", cpu, "--offline"], environment: e).status == 0)

        let quant = try CLI.temporaryFile("q-\(UInt32.random(in: 0...UInt32.max)).yaml", Array("model: org/Tiny-GGUF\nquant: Q8_0\n".utf8))
        let picked = try CLI.run(["validate", quant], environment: e)
        #expect(picked.status == 0, "\(picked.stdout) \(picked.stderr)")
        #expect(picked.stderr.contains("model.ref 'hf://org/Tiny-GGUF:Q8_0' is hf://org/Tiny-GGUF@main/tiny-Q8_0.gguf on the hub"), "\(picked.stderr)")
        let missingQuant = try CLI.temporaryFile("q5-\(UInt32.random(in: 0...UInt32.max)).yaml", Array("model: org/Tiny-GGUF\nquant: Q5_K_M\n".utf8))
        let q5 = try CLI.run(["validate", missingQuant], environment: e)
        #expect(q5.status == 1 && q5.stdout.contains("has no GGUF file of quantization Q5_K_M; it has Q4_K_M, Q8_0"), "\(q5.stdout)")

        let nope = try CLI.temporaryFile("nope-\(UInt32.random(in: 0...UInt32.max)).yaml", Array("model: org/Nope\nresources: {limits: {nvidia.com/gpu: 1}}\n".utf8))
        let missing = try CLI.run(["validate", nope], environment: e)
        #expect(missing.status == 1 && missing.stdout.contains("model.ref 'org/Nope' cannot be pulled: fetching hf://org/Nope@main failed: not found (HTTP 404): repository 'org/Nope' or its revision 'main' does not exist"), "\(missing.stdout)")
        // deploy render checks too (the pod would fail to pull it otherwise).
        let render = try CLI.run(["deploy", "render", nope], environment: e)
        #expect(render.status == 1 && render.stderr.contains("model.ref 'org/Nope' cannot be pulled"), "\(render.stderr)")
        #expect(try CLI.run(["deploy", "render", nope, "--offline"], environment: e).status == 0)
    }

    /// `deploy -f FILE` runs `deploy apply FILE`: the same failure for the same unreachable cluster.
    @Test func deployDashFIsApply() throws {
        let path = try CLI.temporaryFile("f-\(UInt32.random(in: 0...UInt32.max)).yaml",
                                         Array("model: gemma3-270m\n".utf8))
        let missingConfig = NSTemporaryDirectory() + "no-such-kubeconfig-\(getpid())"
        let viaF = try CLI.run(["deploy", "-f", path, "--kubeconfig", missingConfig, "--offline"])
        let viaApply = try CLI.run(["deploy", "apply", path, "--kubeconfig", missingConfig, "--offline"])
        #expect(viaF.status == 1 && viaApply.status == 1)
        #expect(viaF.stderr == viaApply.stderr && viaF.stderr.contains(missingConfig), "\(viaF.stderr) | \(viaApply.stderr)")
        // A spec error is reported the same way through -f (the spec is read first).
        let bad = try CLI.temporaryFile("fbad-\(UInt32.random(in: 0...UInt32.max)).yaml", Array("model: Not A Model!\n".utf8))
        let badF = try CLI.run(["deploy", "-f", bad, "--kubeconfig", missingConfig])
        #expect(badF.status == 1 && badF.stderr.contains("model 'Not A Model!' is neither a Hugging Face repository"), "\(badF.stderr)")
        let none = try CLI.run(["deploy"])
        #expect(none.status == 1 && none.stderr.contains("autoglm deploy -f FILE"), "\(none.stderr)")
        let two = try CLI.run(["deploy", "apply", path, "-f", bad])
        #expect(two.status == 1 && two.stderr.contains("two spec files given"), "\(two.stderr)")
    }
}
