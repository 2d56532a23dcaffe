import Foundation
import Testing
@testable import Spec
@testable import Deploy
import Yams

/// Golden manifests live in Fixtures/golden/<combo>.yaml (combos in Fixtures/combos.txt).
/// Regenerate after an intended change with:
///   AUTOGLM_UPDATE_GOLDEN=1 swift test --filter DeployTests
/// then review the diff (`git diff Tests/DeployTests/Fixtures/golden`).
@Suite struct RenderTests {
    static func render(_ combo: Fixture.Combo) throws -> RenderResult {
        let spec = try SpecLoader.load(yaml: Fixture.text(combo.spec), file: combo.spec,
                                       environment: combo.env, variables: [:]).spec
        return KubeRenderer.render(spec, options: RenderOptions(kubeVersion: try KubeVersion.parse(combo.kube)))
    }

    @Test func goldenManifests() throws {
        let update = ProcessInfo.processInfo.environment["AUTOGLM_UPDATE_GOLDEN"] == "1"
        let combos = try Fixture.combos()
        #expect(combos.count >= 7)
        for combo in combos {
            let rendered = try Self.render(combo).stream
            let path = Fixture.dir + "/golden/\(combo.name).yaml"
            if update {
                try rendered.write(toFile: path, atomically: true, encoding: .utf8)
                continue
            }
            let golden = try? String(contentsOfFile: path, encoding: .utf8)
            #expect(golden == rendered,
                    "\(combo.name): rendered manifests differ from \(path); if intended, run AUTOGLM_UPDATE_GOLDEN=1 swift test --filter DeployTests and review the diff")
        }
    }

    @Test func renderIsDeterministicAndParses() throws {
        for combo in try Fixture.combos() {
            let a = try Self.render(combo).stream
            let b = try Self.render(combo).stream
            #expect(a == b)
            // Every document is valid YAML that reads back with the same top-level key order.
            let docs = try Array(Yams.load_all(yaml: a))
            #expect(docs.count == (try Self.render(combo)).objects.count)
            for case let node? in try Array(Yams.compose_all(yaml: a)) {
                #expect(node.mapping?.keys.prefix(3).compactMap(\.string) == ["apiVersion", "kind", "metadata"])
            }
        }
    }

    func objects(_ name: String) throws -> [String: YAMLValue] {
        let combo = try #require(try Fixture.combos().first { $0.name == name })
        var out: [String: YAMLValue] = [:]
        // The first object of each kind (the spec's ConfigMap comes before the adapter rules').
        for o in try Self.render(combo).objects where out[o.kind] == nil { out[o.kind] = o.value }
        return out
    }

    @Test func objectOrderAndKinds() throws {
        let gpu = try #require(try Fixture.combos().first { $0.name == "gpu-queue-pvc" })
        #expect(try Self.render(gpu).objects.map(\.kind) == [
            "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment",
            "HorizontalPodAutoscaler", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor",
        ])
        let cpu = try #require(try Fixture.combos().first { $0.name == "cpu-emptydir" })
        #expect(try Self.render(cpu).objects.map(\.kind) == [
            "ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
        ])
        #expect(try Self.render(cpu).files.map(\.name) == [
            "01-serviceaccount.yaml", "02-configmap.yaml", "03-service.yaml", "04-deployment.yaml",
            "05-poddisruptionbudget.yaml",
        ])
    }

    @Test func apiVersionsFollowKubeVersion() throws {
        #expect(try objects("gpu-queue-pvc")["HorizontalPodAutoscaler"]?["apiVersion"] == .string("autoscaling/v2"))
        #expect(try objects("gpu-queue-pvc")["PodDisruptionBudget"]?["apiVersion"] == .string("policy/v1"))
        #expect(try objects("gpu-kube-1.22")["HorizontalPodAutoscaler"]?["apiVersion"] == .string("autoscaling/v2beta2"))
        #expect(try objects("gpu-kube-1.22")["PodDisruptionBudget"]?["apiVersion"] == .string("policy/v1"))
        #expect(try objects("gpu-kube-1.20")["PodDisruptionBudget"]?["apiVersion"] == .string("policy/v1beta1"))
    }

    @Test func deploymentShape() throws {
        let o = try objects("gpu-queue-pvc")
        let dep = try #require(o["Deployment"])
        let pod = try #require(dep["spec"]?["template"]?["spec"])
        #expect(dep["spec"]?["replicas"] == nil)  // the HPA owns replicas
        #expect(pod["tolerations"] == .list([.map([YAMLField("key", .string("nvidia.com/gpu")),
                                                   YAMLField("operator", .string("Exists")),
                                                   YAMLField("effect", .string("NoSchedule"))])]))
        #expect(pod["nodeSelector"]?["nvidia.com/gpu.present"] == .string("true"))
        #expect(pod["terminationGracePeriodSeconds"] == .int(75))
        #expect(pod["securityContext"]?["runAsNonRoot"] == .bool(true))
        #expect(pod["securityContext"]?["seccompProfile"]?["type"] == .string("RuntimeDefault"))
        guard case .list(let containers)? = pod["containers"], let c = containers.first,
              case .list(let inits)? = pod["initContainers"], let pull = inits.first else {
            Issue.record("no containers")
            return
        }
        #expect(c["command"] == YAMLValue.strings(["autoglm", "serve", "--config", "/etc/autoglm/autoglm.yaml"]))
        #expect(pull["command"] == YAMLValue.strings([
            "autoglm", "pull", "hf://THUDM/glm-4-9b-chat-GGUF/glm-4-9b-chat-Q4_K_M.gguf", "--version", "1.0.0",
            "--models-dir", "/models"]))
        #expect(c["resources"]?["limits"]?["nvidia.com/gpu"] == .int(1))
        #expect(c["readinessProbe"]?["httpGet"]?["path"] == .string("/readyz"))
        #expect(c["livenessProbe"]?["httpGet"]?["path"] == .string("/healthz"))
        #expect(c["securityContext"]?["readOnlyRootFilesystem"] == .bool(true))
        #expect(c["securityContext"]?["capabilities"]?["drop"] == YAMLValue.strings(["ALL"]))
        #expect(c["securityContext"]?["runAsUser"] == .int(10001))
        // startup probe budget from the spec: 90 × 10 s
        #expect(c["startupProbe"]?["failureThreshold"] == .int(90))
        let hpa = try #require(o["HorizontalPodAutoscaler"])
        guard case .list(let metrics)? = hpa["spec"]?["metrics"], let m = metrics.first else {
            Issue.record("no metrics")
            return
        }
        #expect(m["pods"]?["metric"]?["name"] == .string("autoglm:num_requests_waiting"))
        #expect(m["pods"]?["target"]?["averageValue"] == .string("4"))
        #expect(o["PodDisruptionBudget"]?["spec"]?["maxUnavailable"] == .int(1))  // minReplicas 2 in prod
    }

    /// `server.grpcPort` opens the gRPC API in the pod (serve reads it from the mounted spec): the
    /// container and the Service carry it as `grpc` beside `http`; without it only `http`.
    @Test func grpcPortIsAContainerAndServicePort() throws {
        let text = try String(contentsOfFile: Fixture.repoRoot + "/examples/gemma3-cpu.yaml", encoding: .utf8)
        let spec = try SpecLoader.load(yaml: text, file: "gemma3-cpu.yaml", variables: [:]).spec
        #expect(spec.server.grpcPort == 50051)
        func ports(_ spec: Spec) throws -> (container: YAMLValue?, service: YAMLValue?) {
            let objs = KubeRenderer.render(spec).objects
            let dep = try #require(objs.first { $0.kind == "Deployment" }).value
            let svc = try #require(objs.first { $0.kind == "Service" }).value
            guard case .list(let cs)? = dep["spec"]?["template"]?["spec"]?["containers"] else { return (nil, nil) }
            return (cs.first { $0["name"] == .string("autoglm") }?["ports"], svc["spec"]?["ports"])
        }
        let (c, s) = try ports(spec)
        #expect(c == .list([
            .obj(("name", .string("http")), ("containerPort", .int(8080)), ("protocol", .string("TCP"))),
            .obj(("name", .string("grpc")), ("containerPort", .int(50051)), ("protocol", .string("TCP"))),
        ]))
        #expect(s == .list([
            .obj(("name", .string("http")), ("port", .int(8080)), ("targetPort", .string("http")), ("protocol", .string("TCP"))),
            .obj(("name", .string("grpc")), ("port", .int(50051)), ("targetPort", .string("grpc")), ("protocol", .string("TCP")),
                 ("appProtocol", .string("kubernetes.io/h2c"))),
        ]))
        var off = spec
        off.server.grpcPort = 0
        let (c0, s0) = try ports(off)
        #expect(c0 == .list([.obj(("name", .string("http")), ("containerPort", .int(8080)), ("protocol", .string("TCP")))]))
        #expect(s0 == .list([.obj(("name", .string("http")), ("port", .int(8080)), ("targetPort", .string("http")), ("protocol", .string("TCP")))]))
    }

    @Test func cpuDefaultsAndSecrets() throws {
        let o = try objects("cpu-emptydir")
        let c: YAMLValue? = {
            if case .list(let cs)? = o["Deployment"]?["spec"]?["template"]?["spec"]?["containers"] { return cs.first }
            return nil
        }()
        // Default startup budget covers a 10-minute model load.
        let period = c?["startupProbe"]?["periodSeconds"], failures = c?["startupProbe"]?["failureThreshold"]
        if case .int(let p)? = period, case .int(let f)? = failures { #expect(p * f >= 600) } else { Issue.record("no startup probe") }
        #expect(o["Deployment"]?["spec"]?["template"]?["spec"]?["tolerations"] == nil)
        #expect(o["Deployment"]?["spec"]?["replicas"] == .int(1))
        #expect(o["PodDisruptionBudget"]?["spec"]?["minAvailable"] == .int(1))
        #expect(o["HorizontalPodAutoscaler"] == nil)

        // API keys: secretKeyRef env in the pod, only env names in the ConfigMap.
        let gpu = try objects("gpu-queue-pvc")
        guard case .string(let config)? = gpu["ConfigMap"]?["data"]?["autoglm.yaml"] else {
            Issue.record("no config")
            return
        }
        #expect(config.contains("env: AUTOGLM_API_KEY_0"))
        #expect(!config.contains("secretRef"))
        let podSpec = try SpecLoader.load(yaml: config, file: "configmap", variables: [:]).spec
        #expect(podSpec.server.apiKeys == [.env("AUTOGLM_API_KEY_0")])
        // hpa-rps is backend openai: nothing to download, so its modelCache.pvc renders no claim.
        let rps = try objects("hpa-rps-pvc")
        #expect(rps["PersistentVolumeClaim"] == nil)
        let cpuHPA = try objects("hpa-cpu")["HorizontalPodAutoscaler"]
        if case .list(let ms)? = cpuHPA?["spec"]?["metrics"] {
            #expect(ms.first?["resource"]?["target"]?["averageUtilization"] == .int(75))
        } else { Issue.record("no cpu metric") }
    }

    @Test func kubeVersionParsing() throws {
        #expect(try KubeVersion.parse("1.30") == KubeVersion(major: 1, minor: 30))
        #expect(try KubeVersion.parse("v1.22.3") == KubeVersion(major: 1, minor: 22))
        #expect(throws: DeployError.self) { try KubeVersion.parse("1.18") }
        #expect(throws: DeployError.self) { try KubeVersion.parse("2.0") }
        #expect(throws: DeployError.self) { try KubeVersion.parse("latest") }
        do {
            _ = try KubeVersion.parse("1.x")
        } catch {
            #expect(error.description == "--kube-version '1.x' is not a Kubernetes version; write it as 1.MINOR, e.g. --kube-version 1.30")
        }
    }

    @Test func emitterQuoting() {
        #expect(YAMLEmitter.quote("true") == "\"true\"")
        #expect(YAMLEmitter.quote("8Gi") == "\"8Gi\"")
        #expect(YAMLEmitter.quote("a: b") == "\"a: b\"")
        #expect(YAMLEmitter.quote("app.kubernetes.io/name") == "app.kubernetes.io/name")
        #expect(YAMLEmitter.quote("") == "\"\"")
        #expect(YAMLEmitter.quote("say \"hi\"\n") == "\"say \\\"hi\\\"\\n\"")
    }
}

@Suite struct ContainerfileTests {
    @Test func structure() throws {
        let lines = ContainerBuild.containerfile.split(separator: "\n").map(String.init)
        let froms = lines.filter { $0.hasPrefix("FROM ") }
        #expect(froms.count == 2)
        #expect(froms.first?.hasPrefix("FROM swift:6.") == true)
        #expect(froms.first?.hasSuffix(" AS build") == true)
        #expect(froms.last?.contains("debian:") == true && froms.last?.contains("slim") == true)
        #expect(ContainerBuild.containerfile.contains("swift build -c release --static-swift-stdlib"))
        #expect(lines.contains("COPY --from=build /out/autoglm /usr/local/bin/autoglm"))
        #expect(lines.contains("USER 10001:10001"))
        #expect(lines.contains("VOLUME [\"/models\"]"))
        #expect(lines.contains("EXPOSE 8080"))
        #expect(lines.contains("ENTRYPOINT [\"autoglm\"]"))
        // USER comes after the last FROM (the runtime stage runs as non-root).
        let lastFrom = try #require(lines.lastIndex { $0.hasPrefix("FROM ") })
        let user = try #require(lines.firstIndex { $0.hasPrefix("USER ") })
        #expect(user > lastFrom)
        let ignore = ContainerBuild.dockerignore.split(separator: "\n").map(String.init)
        #expect(ignore.contains(".build") && ignore.contains(".git") && ignore.contains("models"))
    }

    @Test func writesFiles() throws {
        let dir = NSTemporaryDirectory() + "autoglm-cf-\(getpid())/nested"
        defer { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "autoglm-cf-\(getpid())") }
        let written = try ContainerBuild.write(to: dir)
        #expect(written == [dir + "/Containerfile", dir + "/.dockerignore"])
        #expect(try String(contentsOfFile: dir + "/Containerfile", encoding: .utf8) == ContainerBuild.containerfile)
    }
}

/// Runs scripts/validate-manifests.sh --goldens (kubernetes-validate --strict on every golden).
/// CI installs the validator with `pip install kubernetes-validate`; without it this test FAILS.
@Suite struct KubernetesValidateTests {
    @Test func goldensPassKubernetesValidate() throws {
        guard try bash(["-c", "command -v kubernetes-validate"]).status == 0 else {
            Issue.record("kubernetes-validate is not on PATH; install it with 'pip install kubernetes-validate' (CI must) so the rendered manifests are schema-checked")
            return
        }
        let run = try bash([Fixture.repoRoot + "/scripts/validate-manifests.sh", "--goldens"])
        #expect(run.status == 0, "scripts/validate-manifests.sh --goldens failed:\n\(run.out)")
    }

    /// Every examples/*.yaml, the base and each environments overlay, rendered and checked with
    /// kubernetes-validate --strict (scripts/validate-manifests.sh --dir).
    @Test func examplesPassKubernetesValidate() throws {
        guard try bash(["-c", "command -v kubernetes-validate"]).status == 0 else {
            Issue.record("kubernetes-validate is not on PATH; install it with 'pip install kubernetes-validate' (CI must) so the rendered manifests are schema-checked")
            return
        }
        let fm = FileManager.default
        let dir = NSTemporaryDirectory() + "autoglm-examples-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let examples = try fm.contentsOfDirectory(atPath: Fixture.repoRoot + "/examples").filter { $0.hasSuffix(".yaml") }.sorted()
        var rendered = 0
        for file in examples {
            let text = try String(contentsOfFile: Fixture.repoRoot + "/examples/" + file, encoding: .utf8)
            let base = try SpecLoader.load(yaml: text, file: file, variables: [:])
            for env in [nil] + base.spec.environmentNames.map(Optional.some) {
                let spec = try SpecLoader.load(yaml: text, file: file, environment: env, variables: [:]).spec
                let name = file.replacingOccurrences(of: ".yaml", with: "") + (env.map { "-" + $0 } ?? "")
                let r = KubeRenderer.render(spec)
                try r.stream.write(toFile: dir + "/\(name).yaml", atomically: true, encoding: .utf8)
                rendered += 1
                // The canary Deployment `deploy apply` makes from it (rollout.canaryPercent).
                if let d = r.objects.first(where: { $0.kind == "Deployment" }) {
                    try KubeCanary.canaryBody(JSONValue(d.value), replicas: 1).serialized()
                        .write(toFile: dir + "/\(name)-canary.yaml", atomically: true, encoding: .utf8)
                }
            }
        }
        #expect(rendered >= 9, "examples and overlays rendered: \(rendered)")
        let run = try bash([Fixture.repoRoot + "/scripts/validate-manifests.sh", "--dir", dir])
        let out = run.out
        #expect(run.status == 0, "scripts/validate-manifests.sh --dir failed:\n\(out)")
        #expect(out.components(separatedBy: "\nok ").count - 1 >= 2 * rendered, "\(out)")
    }
}
