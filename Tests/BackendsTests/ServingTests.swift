import Backends
import Foundation
import Server
import Spec
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ServingTests {
    static func value(_ args: [String], _ flag: String) -> String? {
        guard let i = args.firstIndex(of: flag), i + 1 < args.count else { return nil }
        return args[i + 1]
    }

    /// `/metrics` of the real llama-server (llama.cpp b1-0c1e570, `--metrics`) after one request.
    static let llamaCppMetrics = """
    # HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
    # TYPE llamacpp:prompt_tokens_total counter
    llamacpp:prompt_tokens_total 30
    llamacpp:prompt_tokens_cached_total 0
    llamacpp:prompt_seconds_total 1.01953
    llamacpp:tokens_predicted_total 5
    llamacpp:tokens_predicted_seconds_total 1.96387
    llamacpp:n_decode_total 5
    llamacpp:prompt_tokens_seconds 29.4254
    llamacpp:predicted_tokens_seconds 2.03679
    llamacpp:requests_processing 1
    llamacpp:requests_deferred 3
    llamacpp:n_busy_slots_per_decode 1
    """

    @Test func llamaCppMetricsMapOntoAutoglmNames() {
        let s = BackendMetrics.map(Self.llamaCppMetrics)
        #expect(s == BackendStats(running: 1, waiting: 3, kvUsage: nil, promptTokens: 30, generationTokens: 5))
    }

    /// vLLM's series carry labels (model_name, engine); several label sets are summed.
    @Test func vllmMetricsMapOntoAutoglmNamesSummingLabels() {
        let text = """
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running{engine="0",model_name="glm"} 3.0
        vllm:num_requests_running{engine="1",model_name="glm"} 2.0
        vllm:num_requests_waiting{engine="0",model_name="glm"} 7.0
        vllm:kv_cache_usage_perc{engine="0",model_name="glm"} 0.25
        vllm:prompt_tokens_total{engine="0",model_name="glm"} 1200.0
        vllm:generation_tokens_total{engine="0",model_name="glm"} 340.0
        vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="glm"} 0.0
        garbage line without value
        vllm:num_requests_waiting{engine="1",model_name="glm"} NaN
        """
        #expect(BackendMetrics.map(text) == BackendStats(running: 5, waiting: 7, kvUsage: 0.25, promptTokens: 1200, generationTokens: 340))
        #expect(BackendMetrics.map("# nothing known\nfoo_total 3\n") == nil)
    }

    @Test func llamaServerServeArgumentsFollowTheSpec() {
        var b = BackendSpec()
        b.type = .llamacpp
        b.threads = 6; b.maxSeqs = 4; b.contextLength = 1024; b.maxBatchedTokens = 512; b.ubatchTokens = 128
        b.kvCacheType = .q8_0; b.flashAttention = true
        let a = LlamaCppBackend.serveArguments(backend: b, gpus: 1, modelPath: "/m.gguf", servedModelName: "glm", port: 9000)
        #expect(Self.value(a, "-m") == "/m.gguf" && Self.value(a, "--port") == "9000" && Self.value(a, "--host") == "127.0.0.1")
        #expect(Self.value(a, "--alias") == "glm" && a.contains("--metrics"))
        #expect(Self.value(a, "-t") == "6" && Self.value(a, "-np") == "4")
        #expect(Self.value(a, "-c") == "4096", "per-sequence context × slots")
        #expect(Self.value(a, "-b") == "512" && Self.value(a, "-ub") == "128")
        #expect(Self.value(a, "-ctk") == "q8_0" && Self.value(a, "-ctv") == "q8_0" && Self.value(a, "-fa") == "on")
        #expect(Self.value(a, "-ngl") == String(BackendSpec.allGPULayers), "GPUs requested: offload every layer")
        b.gpuLayers = 20
        #expect(Self.value(LlamaCppBackend.serveArguments(backend: b, gpus: 1, modelPath: "/m", servedModelName: "g", port: 1), "-ngl") == "20")
        // Nothing set: llama-server's own defaults, no GPU offload without GPUs.
        let bare = LlamaCppBackend.serveArguments(backend: BackendSpec(), gpus: 0, modelPath: "/m", servedModelName: "g", port: 1)
        for f in ["-t", "-np", "-c", "-b", "-ub", "-ctk", "-fa", "-ngl"] { #expect(!bare.contains(f), "\(f) in \(bare)") }
    }

    @Test func missingProgramsAndAddressesAreClearErrors() {
        var spec = Spec(name: "x", model: ModelSpec(ref: "/m.gguf"))
        spec.backend.type = .llamacpp
        spec.backend.executable = "/nonexistent/llama-server"
        let inputs = Fronting.Inputs(modelPath: "/m.gguf", servedModelName: "x", backendURL: nil, upstreamKey: nil, environment: ["PATH": "/nonexistent"])
        #expect(throws: BackendError.self) { _ = try Fronting.upstream(spec, inputs, log: { _ in }) }
        do { _ = try Fronting.upstream(spec, inputs, log: { _ in }) } catch {
            #expect(error.description.contains("backend.executable /nonexistent/llama-server"))
        }
        spec.backend.executable = nil
        do { _ = try Fronting.upstream(spec, inputs, log: { _ in }) } catch {
            #expect(error.description.contains("llama-server not found") && error.description.contains("AUTOGLM_LLAMA_SERVER"))
        }
        spec.backend.type = .vllm
        spec.model.ref = "THUDM/glm-4-9b-chat-hf"
        do { _ = try Fronting.upstream(spec, inputs, log: { _ in }) } catch {
            #expect(error.description.contains("vllm not found") && error.description.contains("--backend-url"))
        }
        spec.backend.type = .openai
        #expect(throws: BackendError.missingURL(.openai)) { _ = try Fronting.upstream(spec, inputs, log: { _ in }) }
        // With --backend-url a vLLM that already runs is fronted, no program needed.
        spec.backend.type = .vllm
        var remote = inputs
        remote.backendURL = "http://127.0.0.1:8000/v1/"
        #expect((try? Fronting.upstream(spec, remote, log: { _ in }))?.baseURL == "http://127.0.0.1:8000")
    }

    /// A supervised process that dies is reported down at once and started again.
    @Test func supervisedProcessIsRestartedAfterItDies() async throws {
        let script = try #require(Bundle.module.path(forResource: "fake_backend", ofType: "py", inDirectory: "Fixtures"))
        let python = try #require(["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let m = ManagedServer(program: "fake", slots: 2, readyPath: "/health", log: { _ in }) { port in
            (python, [script, "--port", String(port)])
        }
        let watcher = Task { await m.run() }
        func waitFor(_ what: String, _ cond: () -> Bool) async throws {
            for _ in 0..<60000 where !cond() { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cond(), "\(what)")
        }
        try await waitFor("ready") { m.state == .ready }
        #expect(await m.stats() == BackendStats(running: 2, waiting: 5))
        let first = try #require(m.pid)
        kill(first, SIGKILL)
        try await waitFor("down after the kill") { if case .down = m.state { return true } else { return false } }
        #expect(!m.health.ok)
        try await waitFor("ready again") { m.state == .ready && m.starts == 2 }
        #expect(m.pid != nil && m.pid != first && m.health.ok)
        let second = try #require(m.pid)
        await m.stop()
        _ = await watcher.value
        #expect(kill(second, 0) != 0 || (try? String(contentsOfFile: "/proc/\(second)/stat", encoding: .utf8))?.contains(") Z") == true,
                "stop() ends the process")
    }
}
