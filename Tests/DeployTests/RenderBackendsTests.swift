import Foundation
import Testing
@testable import Spec
@testable import Deploy
import Backends

/// The pod each backend gets: native and llamacpp pull a GGUF in an init container and serve it;
/// vllm runs `vllm serve` beside autoglm's front door; openai is the front door alone.
@Suite struct RenderBackendsTests {
    func objects(_ combo: String) throws -> [String: YAMLValue] {
        let c = try #require(try Fixture.combos().first { $0.name == combo })
        var out: [String: YAMLValue] = [:]
        for o in try RenderTests.render(c).objects { out[o.kind] = o.value }
        return out
    }

    func pod(_ o: [String: YAMLValue]) throws -> YAMLValue {
        try #require(o["Deployment"]?["spec"]?["template"]?["spec"])
    }

    func list(_ v: YAMLValue?) -> [YAMLValue] {
        if case .list(let l)? = v { return l }
        return []
    }

    func container(_ pod: YAMLValue, _ name: String) -> YAMLValue? {
        list(pod["containers"]).first { $0["name"] == .string(name) }
    }

    func env(_ c: YAMLValue?, _ name: String) -> YAMLValue? {
        list(c?["env"]).first { $0["name"] == .string(name) }
    }

    func names(_ v: YAMLValue?) -> [String] {
        list(v).compactMap { if case .string(let s)? = $0["name"] { return s } else { return nil } }
    }

    @Test func llamacppPullsAndServesWithLlamaServer() throws {
        let p = try pod(objects("llamacpp-cpu"))
        #expect(names(p["initContainers"]) == ["pull-model"])
        #expect(names(p["containers"]) == ["autoglm"])
        let c = try #require(container(p, "autoglm"))
        #expect(c["command"] == .strings(["autoglm", "serve", "--config", "/etc/autoglm/autoglm.yaml"]))
        #expect(env(c, "AUTOGLM_LLAMA_SERVER")?["value"] == .string("/usr/local/bin/llama-server"))
        #expect(c["resources"]?["limits"]?["nvidia.com/gpu"] == nil)
        // With GPUs: the GPU limit on the serving container (the gpu combos are llamacpp).
        let g = try pod(objects("gpu-queue-pvc"))
        #expect(container(g, "autoglm")?["resources"]?["limits"]?["nvidia.com/gpu"] == .int(1))
        #expect(env(container(g, "autoglm"), "AUTOGLM_LLAMA_SERVER") != nil)
    }

    @Test func nativeHasNoLlamaServer() throws {
        let p = try pod(objects("cpu-emptydir"))
        #expect(env(container(p, "autoglm"), "AUTOGLM_LLAMA_SERVER") == nil)
        #expect(names(p["initContainers"]) == ["pull-model"])
    }

    @Test func vllmRunsBesideTheFrontDoor() throws {
        let o = try objects("vllm-tp2-pvc")
        let p = try pod(o)
        #expect(p["initContainers"] == nil)  // vLLM downloads the repo itself
        #expect(names(p["containers"]) == ["vllm", "autoglm"])
        let v = try #require(container(p, "vllm"))
        #expect(v["image"] == .string(BackendSpec.defaultVLLMImage))
        #expect(v["command"] == .strings(["vllm"]))
        let spec = try SpecLoader.load(yaml: Fixture.text("specs/vllm.yaml"), file: "vllm.yaml", variables: [:]).spec
        #expect(v["args"] == .strings(VLLMBackend.serveArguments(model: spec.model, backend: spec.backend, gpus: 2,
                                                                 servedModelName: "THUDM/glm-4-9b-chat-hf",
                                                                 host: "127.0.0.1", port: 8000)))
        guard case .list(let args)? = v["args"] else { Issue.record("no args"); return }
        #expect(args.prefix(2) == [.string("serve"), .string("THUDM/glm-4-9b-chat-hf")])
        #expect(args.contains(.string("--tensor-parallel-size")) && args.contains(.string("0.9")))
        #expect(v["resources"]?["limits"]?["nvidia.com/gpu"] == .int(2))
        #expect(v["resources"]?["limits"]?["memory"] == .string("64Gi"))
        #expect(env(v, "HF_HOME")?["value"] == .string("/models/huggingface"))
        #expect(env(v, "HF_TOKEN")?["valueFrom"]?["secretKeyRef"] == .obj(
            ("name", .string("glm-vllm-hf-token")), ("key", .string("token")), ("optional", .bool(true))))
        #expect(list(v["volumeMounts"]).contains(.obj(("name", .string("shm")), ("mountPath", .string("/dev/shm")))))
        #expect(list(v["volumeMounts"]).contains(.obj(("name", .string("models")), ("mountPath", .string("/models")))))
        #expect(v["readinessProbe"] == nil && v["ports"] == nil)  // loopback only; the front door is probed

        let front = try #require(container(p, "autoglm"))
        #expect(front["command"] == .strings(["autoglm", "serve", "--config", "/etc/autoglm/autoglm.yaml",
                                              "--backend-url", "http://127.0.0.1:8000"]))
        #expect(front["resources"]?["limits"]?["nvidia.com/gpu"] == nil)
        #expect(front["readinessProbe"]?["httpGet"]?["path"] == .string("/readyz"))
        #expect(front["livenessProbe"]?["httpGet"]?["path"] == .string("/healthz"))
        #expect(front["startupProbe"]?["httpGet"]?["path"] == .string("/readyz"))
        #expect(list(front["ports"]).first?["name"] == .string("http"))
        #expect(env(front, "AUTOGLM_API_KEY_0")?["valueFrom"]?["secretKeyRef"]?["name"] == .string("glm-keys"))
        #expect(!names(front["volumeMounts"]).contains("models"))

        let shm = list(p["volumes"]).first { $0["name"] == .string("shm") }
        #expect(shm?["emptyDir"]?["medium"] == .string("Memory"))
        #expect(names(p["volumes"]) == ["config", "models", "tmp", "shm"])
        #expect(p["nodeSelector"]?["nvidia.com/gpu.present"] == .string("true"))
        #expect(o["PersistentVolumeClaim"]?["metadata"]?["name"] == .string("glm-vllm-models"))
        #expect(o["Service"]?["spec"]?["ports"].map(list)?.first?["targetPort"] == .string("http"))
    }

    @Test func openaiIsTheFrontDoorAlone() throws {
        let o = try objects("openai-upstream")
        let p = try pod(o)
        #expect(p["initContainers"] == nil)
        #expect(names(p["containers"]) == ["autoglm"])
        #expect(names(p["volumes"]) == ["config", "tmp"])
        #expect(o["PersistentVolumeClaim"] == nil)
        let c = try #require(container(p, "autoglm"))
        #expect(c["command"] == .strings(["autoglm", "serve", "--config", "/etc/autoglm/autoglm.yaml"]))
        #expect(env(c, "AUTOGLM_UPSTREAM_API_KEY")?["valueFrom"]?["secretKeyRef"] == .obj(
            ("name", .string("upstream-key")), ("key", .string("token"))))
        #expect(env(c, "AUTOGLM_MODELS_DIR") == nil)
        // The ConfigMap names the env var, never the Secret.
        guard case .string(let config)? = o["ConfigMap"]?["data"]?["autoglm.yaml"] else { Issue.record("no config"); return }
        #expect(!config.contains("upstream-key") && !config.contains("secretRef"))
        let podSpec = try SpecLoader.load(yaml: config, file: "configmap", variables: [:]).spec
        #expect(podSpec.backend.apiKey == .env("AUTOGLM_UPSTREAM_API_KEY"))
        #expect(podSpec.server.apiKeys == [.env("AUTOGLM_API_KEY_0")])
    }

    @Test func envKeysPassThroughWithANote() throws {
        let yaml = minimal + "backend: {type: openai, url: 'https://u.example/v1', apiKey: {env: UP_KEY}}\n"
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        let r = KubeRenderer.render(spec)
        #expect(KubeRenderer.podSpec(spec).backend.apiKey == .env("UP_KEY"))
        #expect(r.notes.contains("backend.apiKey reads $UP_KEY, which the rendered Deployment does not set; prefer {secretRef: {name, key}} for Kubernetes"))
    }

    @Test func thePodDropsThisMachinesExecutable() throws {
        let yaml = minimal + "backend: {type: llamacpp, executable: /home/me/llama.cpp/build/bin/llama-server}\n"
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(KubeRenderer.podSpec(spec).backend.executable == nil)
        #expect(KubeRenderer.render(spec).notes.contains {
            $0.hasPrefix("backend.executable (/home/me/llama.cpp/build/bin/llama-server) is for running on this machine")
        })
    }

    @Test func vllmImageOverride() throws {
        let yaml = try Fixture.text("specs/vllm.yaml").replacingOccurrences(of: "  quantization: fp8\n",
                                                                           with: "  image: registry.example/vllm:custom\n")
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        let dep = try #require(KubeRenderer.render(spec).objects.first { $0.kind == "Deployment" })
        let p = try #require(dep.value["spec"]?["template"]?["spec"])
        #expect(container(p, "vllm")?["image"] == .string("registry.example/vllm:custom"))
        #expect(container(p, "autoglm")?["image"] == .string(Spec.defaultImage))
    }
}
