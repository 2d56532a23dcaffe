import Foundation
import Testing
@testable import Spec
@testable import Deploy

@Suite struct SpecDecodingTests {
    @Test func examplesDecode() throws {
        let cpuText = try String(contentsOfFile: Fixture.repoRoot + "/examples/gemma3-cpu.yaml", encoding: .utf8)
        let cpu = try SpecLoader.load(yaml: cpuText, file: "gemma3-cpu.yaml", variables: [:]).spec
        #expect(cpu.name == "gemma3-cpu")
        #expect(cpu.model == ModelSpec(ref: "gemma3-270m", channel: "stable"))
        #expect(cpu.backend.type == .native)
        #expect(cpu.backend.threads == 4)
        #expect(cpu.resources.cpu == "4")
        #expect(cpu.resources.memory == "2Gi")
        #expect(cpu.modelCache == .emptyDir(sizeLimit: "2Gi"))
        #expect(cpu.environmentNames == ["dev", "prod"])
        #expect(cpu.server.port == 8080)
        #expect(cpu.image == Spec.defaultImage)

        let gpuText = try String(contentsOfFile: Fixture.repoRoot + "/examples/glm-4-9b-gpu.yaml", encoding: .utf8)
        let gpu = try SpecLoader.load(yaml: gpuText, file: "glm.yaml", variables: [:]).spec
        #expect(gpu.resources.gpu == 1)
        #expect(gpu.backend.type == .llamacpp)
        #expect(gpu.autoscaling?.metric == .queue)
        #expect(gpu.autoscaling?.maxReplicas == 4)
        #expect(gpu.modelCache == .pvc(name: nil, size: "50Gi", storageClass: "standard"))
        #expect(gpu.server.apiKeys == [.secretRef(name: "glm-api-keys", key: "primary")])
        #expect(gpu.probes.startup.failureThreshold == 90)
        #expect(gpu.monitoring.serviceMonitor)
        // Every overlay of every example is valid.
        for (text, file) in [(cpuText, "cpu"), (gpuText, "gpu")] {
            let r = SpecLoader.validate(yaml: text, file: file, variables: [:])
            #expect(r.errors.isEmpty, "\(r.errors)")
        }
    }

    @Test func kindMayBeOmittedAndDefaultsApply() throws {
        let s = try SpecLoader.load(yaml: minimal, file: "t.yaml", variables: [:]).spec
        #expect(s.server.port == 8080)
        #expect(s.replicas == 1)
        #expect(s.backend.type == .native)
        #expect(s.modelCache == .emptyDir(sizeLimit: nil))
        #expect(s.autoscaling == nil)
    }

    @Test func overlayDeepMerges() throws {
        let yaml = minimal + """
        replicas: 1
        resources:
          cpu: "2"
          memory: 4Gi
        server:
          apiKeys:
            - env: A
            - env: B
        environments:
          prod:
            replicas: 3
            resources:
              cpu: "8"
            server:
              apiKeys:
                - env: C
        """
        let base = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(base.replicas == 1)
        #expect(base.resources.cpu == "2")
        let prod = try SpecLoader.load(yaml: yaml, file: "t.yaml", environment: "prod", variables: [:]).spec
        #expect(prod.replicas == 3)                  // scalar replaced
        #expect(prod.resources.cpu == "8")           // nested scalar replaced
        #expect(prod.resources.memory == "4Gi")      // sibling kept (maps merge)
        #expect(prod.server.apiKeys == [.env("C")])  // list replaced, not appended
        #expect(prod.environmentNames == ["prod"])
    }

    @Test func unknownEnvironmentListsKnownOnes() {
        let yaml = minimal + "environments:\n  dev: {}\n  prod: {replicas: 2}\n"
        #expect(errors(yaml, env: "stage") == [
            "t.yaml:5:1: unknown environment 'stage' (--env); known environments: dev, prod",
        ])
        #expect(errors(minimal, env: "prod") == [
            "t.yaml: unknown environment 'prod' (--env): this file defines no environments; add 'environments: {prod: {...}}' or drop --env",
        ])
    }

    @Test func variableSubstitution() throws {
        let yaml = minimal + """
        image: ${IMAGE}
        replicas: ${REPLICAS:-2}
        server:
          port: ${PORT:-8080}
        backend:
          type: openai
          url: "http://${HOST:-localhost}:8000/v1?x=$${literal}"
        """
        let set = try SpecLoader.load(yaml: yaml, file: "t.yaml",
                                      variables: ["IMAGE": "reg/autoglm:1", "REPLICAS": "5", "HOST": "vllm"]).spec
        #expect(set.image == "reg/autoglm:1")
        #expect(set.replicas == 5)                   // a substituted plain scalar is an int
        #expect(set.server.port == 8080)             // default used
        #expect(set.backend.url == "http://vllm:8000/v1?x=${literal}")
        let def = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: ["IMAGE": "x"]).spec
        #expect(def.replicas == 2)
        #expect(def.backend.url == "http://localhost:8000/v1?x=${literal}")
        #expect(errors(yaml) == [
            "t.yaml:5:8: image: environment variable IMAGE is not set; export it or write ${IMAGE:-default}",
        ])
        #expect(errors(yaml, vars: ["IMAGE": "x", "REPLICAS": "many"]) == [
            "t.yaml:6:11: replicas must be an integer between 0 and 1000, got 'many'",
        ])
    }

    @Test func resolvedSpecRoundTrips() throws {
        for file in ["specs/cpu.yaml", "specs/gpu.yaml", "specs/hpa-cpu.yaml", "specs/hpa-rps.yaml", "specs/fleet.yaml"] {
            let text = try Fixture.text(file)
            for env in [nil, "prod"] as [String?] {
                guard let loaded = try? SpecLoader.load(yaml: text, file: file, environment: env, variables: [:]) else { continue }
                let printed = SpecEncoder.yaml(loaded.spec)
                var again = try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec
                again.environmentNames = loaded.spec.environmentNames
                #expect(again == loaded.spec, "\(file) \(env ?? "-")")
                #expect(SpecEncoder.yaml(again) == printed)
            }
        }
    }
}

@Suite struct SpecValidationTests {
    @Test func unknownKeysSuggestTheClosest() {
        let yaml = minimal + """
        replica: 2
        autoscaling:
          enabled: true
          maxReplica: 3
          maxReplicas: 3
        modelcache: {}
        frobnicate: 1
        """
        #expect(errors(yaml) == [
            "t.yaml:5:1: replica: unknown key 'replica'; did you mean 'replicas'?",
            "t.yaml:8:3: autoscaling.maxReplica: unknown key 'maxReplica'; did you mean 'maxReplicas'?",
            "t.yaml:10:1: modelcache: unknown key 'modelcache'; did you mean 'modelCache'?",
            "t.yaml:11:1: frobnicate: unknown key 'frobnicate'; known keys: apiVersion, kind, name, model, backend, server, image, replicas, resources, autoscaling, probes, rollout, modelCache, monitoring, gateway, environments, version, quant",
        ])
    }

    @Test func wrongTypesAndRanges() {
        let yaml = minimal + """
        replicas: three
        server:
          port: 70000
          drainTimeoutSeconds: "30"
        backend:
          type: nativ
          threads: 0
        autoscaling: [1, 2]
        monitoring:
          serviceMonitor: maybe
        rollout:
          maxSurge: 150%
          canaryPercent: 101
        """
        #expect(errors(yaml) == [
            "t.yaml:5:11: replicas must be an integer between 0 and 1000, got 'three'",
            "t.yaml:7:9: server.port (70000) must be between 1 and 65535",
            "t.yaml:8:24: server.drainTimeoutSeconds must be an integer between 0 and 3600, got string \"30\"; write it without quotes",
            "t.yaml:10:9: backend.type 'nativ' is not one of native, llamacpp, vllm, openai; did you mean 'native'?",
            "t.yaml:11:12: backend.threads (0) must be between 1 and 1024",
            "t.yaml:12:14: autoscaling must be a mapping (key: value lines), got a list",
            "t.yaml:14:19: monitoring.serviceMonitor must be true or false, got 'maybe'",
            "t.yaml:16:13: rollout.maxSurge must be an integer between 0 and 1000 or a percentage between 0% and 100% (e.g. '25%'), got '150%'",
            "t.yaml:17:18: rollout.canaryPercent (101) must be between 1 and 99",
        ])
    }

    @Test func autoscalingBounds() {
        let yaml = """
        apiVersion: autoglm/v1
        name: demo
        model:
          ref: gemma3-270m
        replicas: 5
        autoscaling:
          enabled: true
          minReplicas: 2
          maxReplicas: 1
        """
        #expect(errors(yaml) == [
            "t.yaml:5:11: replicas (5) must be within autoscaling.minReplicas (2) and autoscaling.maxReplicas (1) when autoscaling is enabled; remove replicas or change it",
            "t.yaml:9:16: autoscaling.maxReplicas (1) must be ≥ minReplicas (2); raise maxReplicas or lower minReplicas",
        ])
        #expect(errors(minimal + "autoscaling:\n  enabled: true\n") == [
            "t.yaml:6:3: autoscaling.maxReplicas is required when autoscaling is enabled; add e.g. 'maxReplicas: 4'",
        ])
        #expect(errors(minimal + "autoscaling: {enabled: true, maxReplicas: 3, metric: cpu}\n") == [
            "t.yaml:5:54: autoscaling.metric cpu needs resources.cpu: the autoscaler measures utilization against the CPU request; set resources.cpu (e.g. '4')",
        ])
    }

    @Test func modelRules() {
        let both = """
        apiVersion: autoglm/v1
        name: Demo_1
        model:
          ref: gemma3-270m
          version: 1.0
          channel: stable
        """
        #expect(errors(both) == [
            "t.yaml:2:7: name 'Demo_1' must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit (e.g. 'glm-4-9b')",
            "t.yaml:5:12: model.version '1.0' is not a SemVer version (expected three dot-separated numbers, found 2 part(s)); write MAJOR.MINOR.PATCH, e.g. '1.0.0' (quote it)",
            "t.yaml:6:12: model: set either version or channel, not both; remove one",
        ])
        #expect(errors("apiVersion: autoglm/v2\nkind: Service\n") == [
            "t.yaml:1:1: name is required; add e.g. 'name: my-model' (a DNS-1123 label, used for every Kubernetes object)",
            "t.yaml:1:1: model is required; add 'model: {ref: gemma3-270m}' (a registry alias, hf://ORG/REPO/FILE.gguf, or a path), or in the short form 'model: ORG/REPO'",
            "t.yaml:1:13: apiVersion 'autoglm/v2' is not supported; use 'autoglm/v1'",
            "t.yaml:2:7: kind 'Service' is not supported; use 'Deployment' (or omit kind)",
        ])
    }

    @Test func resourcesApiKeysBackendCache() {
        let yaml = minimal + """
        resources:
          cpu: 2 cores
          memory: 16GB
          nvidia.com/gpu: one
        server:
          apiKeys:
            - sk-live-123
            - secretRef: {name: keys}
        backend:
          type: openai
        modelCache:
          pvc: {name: cache}
          emptyDir: {}
        """
        #expect(errors(yaml) == [
            "t.yaml:6:8: resources.cpu '2 cores' is not a Kubernetes quantity; write e.g. '4' or '500m' (suffixes m, k, M, G, Ki, Mi, Gi, Ti)",
            "t.yaml:7:11: resources.memory '16GB' is not a Kubernetes quantity; write e.g. '16Gi' (suffixes m, k, M, G, Ki, Mi, Gi, Ti)",
            "t.yaml:8:19: resources.nvidia.com/gpu must be an integer between 0 and 16, got 'one'",
            "t.yaml:11:7: server.apiKeys[0]: literal API keys are not allowed (they would end up in a ConfigMap); use {secretRef: {name: SECRET, key: KEY}} or {env: VAR}",
            "t.yaml:12:18: server.apiKeys[1].secretRef.key is required (the key inside the Secret)",
            "t.yaml:14:3: backend.url is required for backend type openai; set it to the upstream's base URL, e.g. 'http://vllm:8000/v1'",
            "t.yaml:16:3: modelCache: set either pvc or emptyDir, not both",
        ])
    }

    @Test func malformedEmptyAndDuplicate() {
        #expect(errors("") == [
            "t.yaml: file is empty; write at least 'apiVersion: autoglm/v1', 'name:' and 'model: {ref: ...}' (see examples/gemma3-cpu.yaml)",
        ])
        #expect(errors("# only a comment\n") == errors(""))
        let bad = errors("name: demo\nmodel:\n  ref: [unclosed\n")
        #expect(bad.count == 1)
        #expect(bad.first?.hasPrefix("t.yaml:4:1: malformed YAML: ") == true, "\(bad)")
        #expect(errors(minimal + "replicas: 1\nreplicas: 2\n") == [
            "t.yaml:5:1: duplicate key 'replicas' in the same mapping; keep only one",
        ])
        #expect(errors("- a\n- b\n") == [
            "t.yaml:1:1: the top level must be a mapping (apiVersion:, name:, model: ...), got a list",
        ])
    }

    @Test func gpuWithNativeBackendIsOnlyANote() throws {
        let loaded = try SpecLoader.load(yaml: minimal + "resources:\n  nvidia.com/gpu: 1\n", file: "t.yaml", variables: [:])
        #expect(loaded.notes.map(\.description) == [
            "t.yaml:6:19: resources.nvidia.com/gpu: the native backend runs on CPU; the GPU is requested for the pod but not used by the engine (use backend.type llamacpp to use it)",
        ])
    }

    @Test func validateChecksEveryOverlay() {
        let yaml = minimal + """
        environments:
          prod:
            replicas: -1
        """
        let r = SpecLoader.validate(yaml: yaml, file: "t.yaml", variables: [:])
        #expect(r.errors.map(\.description) == [
            "t.yaml:7:15: replicas (-1) must be between 0 and 1000 (with --env prod)",
        ])
    }

    @Test func suggestionDistance() {
        #expect(suggestion(for: "autoscale", among: SpecDecoder.topKeys) == "autoscaling")
        #expect(suggestion(for: "imgae", among: SpecDecoder.topKeys) == "image")
        #expect(suggestion(for: "xyz", among: SpecDecoder.topKeys) == nil)
        #expect(isQuantity("500m") && isQuantity("16Gi") && isQuantity("1.5") && isQuantity("1e3"))
        #expect(!isQuantity("16GB") && !isQuantity("-1") && !isQuantity("") && !isQuantity("Gi"))
        #expect(isSemVer("1.2.3-rc.1+build.5") && !isSemVer("01.2.3") && !isSemVer("1.2"))
    }
}

@Suite struct BackendEngineKnobTests {
    @Test func kvCacheTypeAndBatchWaitDecodeAndRoundTrip() throws {
        let yaml = minimal + """
        backend:
          kvCacheType: f32
          batchWaitMs: 250
        """
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(spec.backend.kvCacheType == .f32)
        #expect(spec.backend.batchWaitMs == 250)
        let printed = SpecEncoder.yaml(spec)
        #expect(printed.contains("kvCacheType: f32"))
        #expect(printed.contains("batchWaitMs: 250"))
        let again = try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec
        #expect(again == spec)
    }

    @Test func grpcPortDecodesRoundTripsAndIsRangeChecked() throws {
        let spec = try SpecLoader.load(yaml: minimal + "server:\n  grpcPort: 9090\n", file: "t.yaml", variables: [:]).spec
        #expect(spec.server.grpcPort == 9090)
        let printed = SpecEncoder.yaml(spec)
        #expect(printed.contains("grpcPort: 9090"))
        #expect(try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec == spec)
        let plain = try SpecLoader.load(yaml: minimal, file: "t.yaml", variables: [:]).spec
        #expect(plain.server.grpcPort == nil)
        #expect(!SpecEncoder.yaml(plain).contains("grpcPort"))
        #expect(errors(minimal + "server:\n  grpcPort: 70000\n").first?.contains("server.grpcPort") == true)
        let clash = errors(minimal + "server:\n  port: 9000\n  grpcPort: 9000\n").first ?? ""
        #expect(clash.contains("server.grpcPort 9000 is also server.port"), "\(clash)")
    }

    @Test func absentKnobsStayUnsetAndAreNotPrinted() throws {
        let spec = try SpecLoader.load(yaml: minimal, file: "t.yaml", variables: [:]).spec
        #expect(spec.backend.kvCacheType == nil)
        #expect(spec.backend.batchWaitMs == nil)
        let printed = SpecEncoder.yaml(spec)
        #expect(!printed.contains("kvCacheType"))
        #expect(!printed.contains("batchWaitMs"))
    }

    @Test func badValuesAreReportedWithTheFix() {
        let yaml = minimal + """
        backend:
          kvCacheType: q4_0
          batchWaitMs: 20000
        """
        #expect(errors(yaml) == [
            "t.yaml:6:16: backend.kvCacheType 'q4_0' is not supported; use f16 (half the memory, the default) or f32",
            "t.yaml:7:16: backend.batchWaitMs (20000) must be between 0 and 10000",
        ])
        let llamaOnly = minimal + """
        backend:
          kvCacheType: q8_0
          ubatchTokens: 64
          flashAttention: true
        """
        #expect(errors(llamaOnly) == [
            "t.yaml:6:16: backend.kvCacheType 'q8_0' is only supported by backend type llamacpp; the native engine stores f16 (the default) or f32",
            "t.yaml:7:17: backend.ubatchTokens is a llama.cpp setting; remove it or set backend.type: llamacpp",
            "t.yaml:8:19: backend.flashAttention is a llama.cpp setting; remove it or set backend.type: llamacpp",
        ])
        let negative = minimal + """
        backend:
          batchWaitMs: -1
        """
        #expect(errors(negative) == ["t.yaml:6:16: backend.batchWaitMs (-1) must be between 0 and 10000"])
    }

    @Test func openaiBackendNotesTheNewKnobsAsIgnored() throws {
        let yaml = minimal + """
        backend:
          type: openai
          url: http://vllm:8000/v1
          kvCacheType: f16
          batchWaitMs: 5
        """
        let notes = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).notes.map(\.message)
        #expect(notes.contains("backend.kvCacheType is ignored by backend openai (the upstream owns its engine settings)"))
        #expect(notes.contains("backend.batchWaitMs is ignored by backend openai (the upstream owns its engine settings)"))
    }

    @Test func llamaCppSettingsDecodeAndRoundTrip() throws {
        let yaml = minimal + """
        backend:
          type: llamacpp
          threads: 2
          maxSeqs: 4
          maxBatchedTokens: 256
          ubatchTokens: 64
          kvCacheType: q8_0
          flashAttention: true
        """
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(spec.backend.type == .llamacpp && spec.backend.kvCacheType == .q8_0)
        #expect(spec.backend.ubatchTokens == 64 && spec.backend.flashAttention == true)
        let printed = SpecEncoder.yaml(spec)
        #expect(printed.contains("ubatchTokens: 64") && printed.contains("flashAttention: true") && printed.contains("kvCacheType: q8_0"))
        #expect(try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec == spec)
        let bad = minimal + """
        backend:
          type: llamacpp
          flashAttention: maybe
          kvCacheType: q4_0
        """
        #expect(errors(bad) == [
            "t.yaml:7:19: backend.flashAttention must be true or false, got 'maybe'",
            "t.yaml:8:16: backend.kvCacheType 'q4_0' is not supported; use f16 (half the memory, the default) or f32 or q8_0",
        ])
    }
}

/// `server.otlpEndpoint` / `server.traceSampleRatio`: the spec's form of `--otlp-endpoint` /
/// `--trace-sample-ratio` (what a pod's `serve --config` reads).
@Suite struct ServerTracingKeysTests {
    @Test func decodeRoundTripAndRange() throws {
        let yaml = minimal + """
        server:
          otlpEndpoint: http://collector:4318
          traceSampleRatio: 0.25
        """
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(spec.server.otlpEndpoint == "http://collector:4318")
        #expect(spec.server.traceSampleRatio == 0.25)
        let again = try SpecLoader.load(yaml: SpecEncoder.yaml(spec), file: "printed.yaml", variables: [:]).spec
        #expect(again == spec)
        // Unset: not printed, nothing traced.
        let plain = try SpecLoader.load(yaml: minimal, file: "t.yaml", variables: [:]).spec
        #expect(plain.server.otlpEndpoint == nil && plain.server.traceSampleRatio == nil)
        #expect(!SpecEncoder.yaml(plain).contains("otlpEndpoint"))
        let bad = errors(minimal + "server:\n  traceSampleRatio: 2\n")
        #expect(bad.count == 1 && bad[0].contains("server.traceSampleRatio"))
    }
}
