import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// The spec loader under hostile or very large input: anchors/aliases are refused without
/// being expanded, validation stays linear in the file, and every number is range-checked.
/// Time is only ever bounded generously (a hang guard), never compared with a tight figure.
@Suite struct SpecHardeningTests {
    static func anchorError(_ pos: String, _ token: String, file: String = "t.yaml") -> String {
        "\(file):\(pos): YAML anchors/aliases (&name, *name) are not supported in autoglm.yaml (found '\(token)'); write the value out or use 'environments' overlays"
    }

    /// The classic "billion laughs": `a` holds 9 strings, `b` 9 aliases of `a`, … `i` 9 aliases
    /// of `h`: expanded, 9^9 (387 million) strings from about half a kilobyte of text.
    static func aliasBomb(levels: Int = 9, width: Int = 9) -> String {
        let names = (0..<levels).map { String(UnicodeScalar(UInt8(97 + $0))) }
        var lines = ["apiVersion: autoglm/v1", "name: demo", "model: {ref: gemma3-270m}"]
        lines.append("\(names[0]): &\(names[0]) [" + Array(repeating: "\"lol\"", count: width).joined(separator: ", ") + "]")
        for i in 1..<levels {
            lines.append("\(names[i]): &\(names[i]) [" + Array(repeating: "*\(names[i - 1])", count: width).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func aliasBombIsRefusedWithoutExpansion() {
        let bomb = Self.aliasBomb()
        #expect(bomb.utf8.count < 1_300)
        var found: [String] = []
        var validated: (errors: [Diagnostic], notes: [Diagnostic]) = ([], [])
        let elapsed = ContinuousClock().measure {
            found = errors(bomb)
            validated = SpecLoader.validate(yaml: bomb, file: "t.yaml", variables: [:])
        }
        #expect(found == [Self.anchorError("4:4", "&a")])
        #expect(validated.errors.map(\.description) == [Self.anchorError("4:4", "&a")])
        #expect(validated.notes.isEmpty)
        // Expanding would take minutes and gigabytes; refusing takes milliseconds.
        #expect(elapsed < .seconds(10), "alias bomb took \(elapsed)")
        print("alias bomb (\(bomb.utf8.count) bytes): load + validate in \(elapsed)")
    }

    @Test func aliasesAsKeysAreNotHashedEither() {
        // Yams' duplicate-key check hashes every key of a mapping: with `*i` as a key that
        // would walk all 9^8 expanded copies. The key is refused before that can happen.
        let keyBomb = Self.aliasBomb() + "? *i\n: x\n"
        let bigger = Self.aliasBomb(levels: 12, width: 12) + "? [*l, *l]\n: x\n"
        let elapsed = ContinuousClock().measure {
            #expect(errors(keyBomb) == [Self.anchorError("4:4", "&a")])
            #expect(errors(bigger) == [Self.anchorError("4:4", "&a")])
        }
        #expect(elapsed < .seconds(10), "alias keys took \(elapsed)")
    }

    @Test func everyAnchorOrAliasFormIsRefusedAtItsPosition() {
        // An alias whose anchor does not exist is refused the same way (not "undefined alias").
        #expect(errors(minimal + "replicas: *count\n") == [Self.anchorError("5:11", "*count")])
        #expect(errors(minimal + "replicas: &count 2\n") == [Self.anchorError("5:11", "&count")])
        #expect(errors("apiVersion: autoglm/v1\nname: demo\nmodel: &m {ref: x}\n") == [Self.anchorError("3:8", "&m")])
        #expect(errors(minimal + "server:\n  <<: *defaults\n") == [Self.anchorError("6:7", "*defaults")])
        #expect(errors(minimal + "environments:\n  prod: *base\n") == [Self.anchorError("6:9", "*base")])
        #expect(errors(minimal + "*key : 1\n") == [Self.anchorError("5:1", "*key")])
        #expect(errors(minimal + "rollout: {maxSurge: *s}\n") == [Self.anchorError("5:21", "*s")])
        // Only the first one in the file is reported: one line, not one per use.
        #expect(errors(minimal + "a: &x 1\nb: *x\nc: *x\n") == [Self.anchorError("5:4", "&x")])
    }

    @Test func starsThatAreNotAliasesAreKeptAsWritten() throws {
        let yaml = """
        apiVersion: autoglm/v1   # *not an alias, &not an anchor
        name: demo
        model:
          ref: "models/*.gguf"
        image: registry.example/a*b:latest

        """
        let spec = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]).spec
        #expect(spec.model.ref == "models/*.gguf")
        #expect(spec.image == "registry.example/a*b:latest")
        // (GGUF file names: model.ref must also be a reference `autoglm pull` accepts.)
        let forms: [(String, String)] = [
            ("'*single.gguf'", "*single.gguf"),
            ("\"*double.gguf\"", "*double.gguf"),
            (">-\n    *folded\n    *text.gguf", "*folded *text.gguf"),
            ("|-\n    *literal.gguf", "*literal.gguf"),
            ("part-one\n    *part-two.gguf", "part-one *part-two.gguf"),
            ("\"\u{E000}*private.gguf\"", "\u{E000}*private.gguf"),
            ("\"a*b&c.gguf\"", "a*b&c.gguf"),
            ("${MODEL:-*default.gguf}", "*default.gguf"),
        ]
        #expect(YAMLTree.aliasMarker(for: "a: b") == .notNeeded)
        #expect(YAMLTree.aliasMarker(for: "a: \"*\u{E000}\"") == .use("\u{E001}"))
        for (written, expected) in forms {
            let text = "apiVersion: autoglm/v1\nname: demo\nmodel:\n  ref: \(written)\n"
            let loaded = try SpecLoader.load(yaml: text, file: "t.yaml", variables: [:])
            #expect(loaded.spec.model.ref == expected, "ref: \(written)")
        }
    }

    // MARK: linear validation

    struct Generated {
        var yaml: String
        var errors: [String]
        var notes: [String]
    }

    /// A spec with `count` environments of about 1 KB each. Every 100th overlay asks for a GPU
    /// (a note), a few carry a planted error; the base has one error that overlays do not fix.
    static func manyEnvironments(_ count: Int) -> Generated {
        var lines = [
            "apiVersion: autoglm/v1",
            "name: demo",
            "model:",
            "  ref: gemma3-270m",
            "resources:",
            "  cpu: \"2\"",
            "  memory: 4Gi",
            "probes:",
            "  startup: {periodSeconds: 0}",
            "environments:",
        ]
        var errors = ["t.yaml:9:28: probes.startup.periodSeconds (0) must be between 1 and 3600"]
        var notes: [String] = []
        let padding = "    # " + String(repeating: "-", count: 720)
        for i in 0..<count {
            let name = "env-\(i)"
            lines += [
                "  \(name):",
                "    replicas: \(i % 7 + 1)",
                "    resources:",
                "      cpu: \"\(i % 16 + 1)\"",
                "      memory: \(i % 64 + 1)Gi",
            ]
            if i % 100 == 7 {
                lines.append("      nvidia.com/gpu: 1")
                notes.append("t.yaml:\(lines.count):23: resources.nvidia.com/gpu: the native backend runs on CPU; the GPU is requested for the pod but not used by the engine (use backend.type llamacpp to use it)")
            }
            lines += [
                "    server:",
                "      port: \(8000 + i % 1000)",
                "      drainTimeoutSeconds: \(i % 60)",
                "    backend:",
                "      threads: \(i % 8 + 1)",
                "      maxSeqs: \(i % 16 + 1)",
                "      kvCacheMB: \(256 * (i % 8 + 1))",
                "      contextLength: 4096",
                "    rollout: {strategy: RollingUpdate, maxSurge: 25%, maxUnavailable: 0}",
            ]
            if i % 250 == 3 {
                lines.append("    replica: 3")
                errors.append("t.yaml:\(lines.count):5: replica: unknown key 'replica'; did you mean 'replicas'? (with --env \(name))")
            }
            if i % 250 == 5 {
                lines.append("    monitoring: {serviceMonitor: maybe}")
                errors.append("t.yaml:\(lines.count):34: monitoring.serviceMonitor must be true or false, got 'maybe' (with --env \(name))")
            }
            lines.append(padding)
        }
        return Generated(yaml: lines.joined(separator: "\n") + "\n", errors: errors, notes: notes)
    }

    @Test func aThousandEnvironmentsValidateInLinearTime() throws {
        let g = Self.manyEnvironments(1_000)
        #expect(g.yaml.utf8.count > 1_000_000)
        var result: (errors: [Diagnostic], notes: [Diagnostic]) = ([], [])
        let elapsed = ContinuousClock().measure {
            result = SpecLoader.validate(yaml: g.yaml, file: "t.yaml", variables: [:])
        }
        print("validate, 1,000 environments (\(g.yaml.utf8.count) bytes): \(elapsed)")
        #expect(result.errors.map(\.description) == g.errors)
        #expect(result.notes.map(\.description) == g.notes)
        #expect(elapsed < .seconds(20), "validate of 1,000 environments took \(elapsed)")

        // One overlay of the big file, loaded directly, carries its own values.
        var loaded: LoadedSpec?
        let one = ContinuousClock().measure {
            loaded = try? SpecLoader.load(yaml: g.yaml.replacingOccurrences(of: "startup: {periodSeconds: 0}", with: "startup: {periodSeconds: 5}"),
                                          file: "t.yaml", environment: "env-407", variables: [:])
        }
        let spec = try #require(loaded).spec
        #expect(spec.replicas == 407 % 7 + 1)
        #expect(spec.resources.cpu == "\(407 % 16 + 1)" && spec.resources.memory == "\(407 % 64 + 1)Gi")
        #expect(spec.resources.gpu == 1)
        #expect(spec.server.port == 8407 && spec.backend.kvCacheMB == 256 * (407 % 8 + 1))
        #expect(spec.environmentNames.count == 1_000)
        #expect(one < .seconds(20))
    }

    @Test func manyKeysValidateInLinearTime() throws {
        let apiKeys = 30_000, unknown = 8_000, envs = 1_000
        var lines = ["apiVersion: autoglm/v1", "name: demo", "model: {ref: gemma3-270m}", "server:", "  apiKeys:"]
        for i in 0..<apiKeys { lines.append("    - env: KEY_\(i)") }
        var expected: [String] = []
        let known = SpecDecoder.topKeys.joined(separator: ", ")
        for i in 0..<unknown {
            lines.append("x-annotation-\(i): value-\(i)")
            expected.append("t.yaml:\(lines.count):1: x-annotation-\(i): unknown key 'x-annotation-\(i)'; known keys: \(known)")
        }
        // A key far longer than any known one: no edit-distance table of its size is built.
        let huge = String(repeating: "k", count: 200_000)
        lines += ["? \(huge)", ": 1"]
        let shown = String(repeating: "k", count: 64) + "… (200000 characters)"
        expected.append("t.yaml:\(lines.count - 1):3: \(shown): unknown key '\(shown)'; known keys: \(known)")
        lines.append("environments:")
        for i in 0..<envs { lines.append("  e\(i): {replicas: \(i % 5)}") }
        let yaml = lines.joined(separator: "\n") + "\n"
        #expect(yaml.utf8.count > 1_000_000)

        var result: (errors: [Diagnostic], notes: [Diagnostic]) = ([], [])
        let elapsed = ContinuousClock().measure {
            result = SpecLoader.validate(yaml: yaml, file: "t.yaml", variables: [:])
        }
        print("validate, \(apiKeys) apiKeys + \(unknown) unknown keys + \(envs) environments (\(yaml.utf8.count) bytes): \(elapsed)")
        // Each base error once, untagged: the overlays do not touch those keys.
        #expect(result.errors.count == expected.count)
        #expect(result.errors.map(\.description) == expected)
        #expect(result.notes.isEmpty)
        #expect(elapsed < .seconds(20), "validate of many keys took \(elapsed)")

        let valid = lines.prefix(5 + apiKeys).joined(separator: "\n") + "\n"
        let spec = try SpecLoader.load(yaml: valid, file: "t.yaml", variables: [:]).spec
        #expect(spec.server.apiKeys.count == apiKeys)
        #expect(spec.server.apiKeys.last == .env("KEY_\(apiKeys - 1)"))
    }

    /// The straightforward validation (every overlay loaded on its own, errors that the base
    /// does not have tagged) is the oracle for `validate`'s one-pass version.
    static func naiveErrors(_ yaml: String) throws -> [String] {
        var base: [Diagnostic] = []
        do { _ = try SpecLoader.load(yaml: yaml, file: "t.yaml", variables: [:]) } catch { base = error.diagnostics }
        let tree = try YAMLTree.parse(yaml, file: "t.yaml")
        guard case .mapping(let envs, _)? = tree["environments"] else { return SpecLoader.dedupe(base).map(\.description) }
        var all = base
        for env in envs {
            do { _ = try SpecLoader.load(yaml: yaml, file: "t.yaml", environment: env.key, variables: [:]) } catch {
                for d in error.diagnostics {
                    if base.contains(d) { all.append(d) } else {
                        var t = d
                        t.message += " (with --env \(env.key))"
                        all.append(t)
                    }
                }
            }
        }
        return SpecLoader.dedupe(all).map(\.description)
    }

    @Test func validateAgreesWithLoadingEveryOverlay() throws {
        let yaml = """
        apiVersion: autoglm/v1
        name: demo
        model: {ref: gemma3-270m}
        replicas: 2
        backend: {type: native, threads: 4}
        resources: {cpu: "2", nvidia.com/gpu: 1}
        autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 3}
        server: {port: 8080, drainTimeoutSeconds: 99999}
        frobnicate: 1
        environments:
          ok: {replicas: 3}
          bad-replicas: {replicas: 9}
          fix-server: {server: {drainTimeoutSeconds: 10}}
          keep-server: {server: {port: 9090}}
          openai: {backend: {type: openai, url: "http://up:8000/v1"}}
          llama: {backend: {type: llamacpp, kvCacheType: q8_0, flashAttention: maybe}}
          scale: {autoscaling: {maxReplicas: 1}}
          cpu-metric: {autoscaling: {metric: cpu}, resources: {cpu: null}}
          Bad_Name: {}
          notmap: 3
          empty:
          nested: {environments: {x: {}}, kind: Other}
          vars: {image: "${IMG}"}
          unknown: {replica: 1, backend: {thread: 2}, probes: {startup: {periodSeconds: .inf}}}
          renamed: {name: Demo, model: {ref: ""}}
        """
        let oracle = try Self.naiveErrors(yaml)
        let result = SpecLoader.validate(yaml: yaml, file: "t.yaml", variables: [:])
        #expect(result.errors.map(\.description) == oracle)
        #expect(oracle.count > 12, "the oracle sees the planted errors: \(oracle)")
        // Notes come from the base and every overlay.
        let notes = result.notes.map(\.message)
        #expect(notes.contains("resources.nvidia.com/gpu: the native backend runs on CPU; the GPU is requested for the pod but not used by the engine (use backend.type llamacpp to use it)"))
        #expect(notes.contains("resources.nvidia.com/gpu: backend openai forwards to an upstream; the GPU is requested for the pod but not used"))
        #expect(notes.contains("backend.threads is ignored by backend openai (the upstream owns its engine settings)"))
    }

    @Test func unknownEnvironmentListIsBoundedAndSuggests() {
        var yaml = minimal + "environments:\n"
        for i in 0..<500 { yaml += "  env-\(i): {}\n" }
        let e = errors(yaml, env: "env-4999")
        #expect(e == ["t.yaml:5:1: unknown environment 'env-4999' (--env); did you mean 'env-499'? known environments: env-0, env-1, env-2, env-3, env-4, env-5, env-6, env-7, env-8, env-9, … (500 in all)"])
    }

    // MARK: numeric ranges

    /// Errors for one `key: value` line, at top level or under `section`.
    static func numberErrors(_ section: String?, _ key: String, _ value: String, prefix: String = "") -> [String] {
        var yaml = minimal + prefix
        if let section { yaml += "\(section):\n  \(key): \(value)\n" } else { yaml += "\(key): \(value)\n" }
        return errors(yaml)
    }

    /// "L:C" of the value of that line: minimal is 4 lines, `prefix` adds its own.
    static func at(_ section: String?, _ key: String, prefix: String = "") -> String {
        let line = 5 + prefix.filter { $0 == "\n" }.count + (section == nil ? 0 : 1)
        let column = (section == nil ? 0 : 2) + key.count + 3
        return "t.yaml:\(line):\(column)"
    }

    @Test func integersOutsideTheirRangeNameTheRange() {
        // (section, key, value, message after "t.yaml:L:C: ")
        let cases: [(String?, String, String, String)] = [
            (nil, "replicas", ".inf", "replicas must be an integer between 0 and 1000, got '.inf' (not a finite number)"),
            (nil, "replicas", "-.Inf", "replicas must be an integer between 0 and 1000, got '-.Inf' (not a finite number)"),
            (nil, "replicas", ".nan", "replicas must be an integer between 0 and 1000, got '.nan' (not a finite number)"),
            (nil, "replicas", "2.5", "replicas must be an integer between 0 and 1000, got '2.5' (not a whole number)"),
            (nil, "replicas", "1e3", "replicas must be an integer between 0 and 1000, got '1e3' (write it as a plain integer)"),
            (nil, "replicas", "99999999999999999999", "replicas must be an integer between 0 and 1000, got '99999999999999999999' (far above the maximum)"),
            (nil, "replicas", "-99999999999999999999", "replicas must be an integer between 0 and 1000, got '-99999999999999999999' (far below the minimum)"),
            (nil, "replicas", "0x10", "replicas must be an integer between 0 and 1000, got '0x10' (write it as a plain decimal number)"),
            (nil, "replicas", "\"3\"", "replicas must be an integer between 0 and 1000, got string \"3\"; write it without quotes"),
            (nil, "replicas", "true", "replicas must be an integer between 0 and 1000, got 'true'"),
            (nil, "replicas", "[1]", "replicas must be an integer between 0 and 1000, got a list"),
            (nil, "replicas", "1001", "replicas (1001) must be between 0 and 1000"),
            ("backend", "threads", "1025", "backend.threads (1025) must be between 1 and 1024"),
            ("backend", "threads", ".inf", "backend.threads must be an integer between 1 and 1024, got '.inf' (not a finite number)"),
            ("backend", "maxSeqs", "4097", "backend.maxSeqs (4097) must be between 1 and 4096"),
            ("backend", "maxBatchedTokens", "1048577", "backend.maxBatchedTokens (1048577) must be between 1 and 1048576"),
            ("backend", "kvCacheMB", "4194305", "backend.kvCacheMB (4194305) must be between 1 and 4194304"),
            ("backend", "kvCacheMB", "1e12", "backend.kvCacheMB must be an integer between 1 and 4194304, got '1e12' (write it as a plain integer)"),
            ("backend", "contextLength", "15", "backend.contextLength (15) must be between 16 and 2097152"),
            ("backend", "batchWaitMs", ".nan", "backend.batchWaitMs must be an integer between 0 and 10000, got '.nan' (not a finite number)"),
            ("server", "port", "0", "server.port (0) must be between 1 and 65535"),
            ("server", "port", "65536", "server.port (65536) must be between 1 and 65535"),
            ("server", "port", "80.5", "server.port must be an integer between 1 and 65535, got '80.5' (not a whole number)"),
            ("server", "drainTimeoutSeconds", "3601", "server.drainTimeoutSeconds (3601) must be between 0 and 3600"),
            ("server", "drainTimeoutSeconds", "-.inf", "server.drainTimeoutSeconds must be an integer between 0 and 3600, got '-.inf' (not a finite number)"),
            ("resources", "nvidia.com/gpu", "17", "resources.nvidia.com/gpu (17) must be between 0 and 16"),
            ("resources", "nvidia.com/gpu", "1.5", "resources.nvidia.com/gpu must be an integer between 0 and 16, got '1.5' (not a whole number)"),
            ("autoscaling", "minReplicas", "0", "autoscaling.minReplicas (0) must be between 1 and 1000"),
            ("autoscaling", "maxReplicas", "1001", "autoscaling.maxReplicas (1001) must be between 1 and 1000"),
            ("autoscaling", "target", "100001", "autoscaling.target (100001) must be between 1 and 100000"),
            ("rollout", "canaryPercent", "101", "rollout.canaryPercent (101) must be between 1 and 99"),
            ("rollout", "progressDeadlineSeconds", "86401", "rollout.progressDeadlineSeconds (86401) must be between 1 and 86400"),
            ("rollout", "progressDeadlineSeconds", ".inf", "rollout.progressDeadlineSeconds must be an integer between 1 and 86400, got '.inf' (not a finite number)"),
            ("rollout", "maxSurge", "1001", "rollout.maxSurge must be an integer between 0 and 1000 or a percentage between 0% and 100% (e.g. '25%'), got '1001'"),
            ("rollout", "maxSurge", "101%", "rollout.maxSurge must be an integer between 0 and 1000 or a percentage between 0% and 100% (e.g. '25%'), got '101%'"),
            ("rollout", "maxUnavailable", ".inf", "rollout.maxUnavailable must be an integer between 0 and 1000 or a percentage between 0% and 100% (e.g. '25%'), got '.inf'"),
        ]
        for (section, key, value, message) in cases {
            #expect(Self.numberErrors(section, key, value) == ["\(Self.at(section, key)): \(message)"], "\(section ?? "").\(key): \(value)")
        }
        // Probes are one level deeper.
        let probeCases: [(String, String, String)] = [
            ("initialDelaySeconds", "3601", "probes.startup.initialDelaySeconds (3601) must be between 0 and 3600"),
            ("periodSeconds", "0", "probes.startup.periodSeconds (0) must be between 1 and 3600"),
            ("failureThreshold", "10001", "probes.startup.failureThreshold (10001) must be between 1 and 10000"),
            ("timeoutSeconds", ".inf", "probes.startup.timeoutSeconds must be an integer between 1 and 3600, got '.inf' (not a finite number)"),
        ]
        for (key, value, message) in probeCases {
            let e = errors(minimal + "probes:\n  startup:\n    \(key): \(value)\n")
            #expect(e == ["t.yaml:7:\(4 + key.count + 3): \(message)"], "probes.startup.\(key): \(value)")
        }
        // A cpu autoscaling target is a percentage.
        #expect(errors(minimal + "resources: {cpu: \"1\"}\nautoscaling:\n  metric: cpu\n  target: 101\n")
                == ["t.yaml:8:11: autoscaling.target (101) must be between 1 and 100"])
    }

    @Test func quantitiesOutsideTheirRangeNameTheRange() {
        let cases: [(String, String, String, String)] = [
            ("resources", "cpu", "\"5000\"", "resources.cpu '5000' is out of range; use a quantity between 1m and 4096 (cores), e.g. '4' or '500m'"),
            ("resources", "cpu", "\"0\"", "resources.cpu '0' is out of range; use a quantity between 1m and 4096 (cores), e.g. '4' or '500m'"),
            ("resources", "cpu", "1n", "resources.cpu '1n' is out of range; use a quantity between 1m and 4096 (cores), e.g. '4' or '500m'"),
            ("resources", "cpu", "1e999", "resources.cpu '1e999' is out of range; use a quantity between 1m and 4096 (cores), e.g. '4' or '500m'"),
            ("resources", "cpu", "1e99999999999999999999", "resources.cpu '1e99999999999999999999' is out of range; use a quantity between 1m and 4096 (cores), e.g. '4' or '500m'"),
            ("resources", "cpu", ".inf", "resources.cpu '.inf' is not a Kubernetes quantity; write e.g. '4' or '500m' (suffixes m, k, M, G, Ki, Mi, Gi, Ti)"),
            ("resources", "memory", "65Ti", "resources.memory '65Ti' is out of range; use a quantity between 1 byte and 64Ti, e.g. '16Gi'"),
            ("resources", "memory", "\"0\"", "resources.memory '0' is out of range; use a quantity between 1 byte and 64Ti, e.g. '16Gi'"),
            ("resources", "memory", String(repeating: "9", count: 400) + "Gi",
             "resources.memory '\(String(repeating: "9", count: 64))… (402 characters)' is out of range; use a quantity between 1 byte and 64Ti, e.g. '16Gi'"),
            ("resources", "memory", ".nan", "resources.memory '.nan' is not a Kubernetes quantity; write e.g. '16Gi' (suffixes m, k, M, G, Ki, Mi, Gi, Ti)"),
        ]
        for (section, key, value, message) in cases {
            #expect(Self.numberErrors(section, key, value) == ["\(Self.at(section, key)): \(message)"], "\(section).\(key): \(value)")
        }
        #expect(errors(minimal + "modelCache:\n  pvc:\n    size: 2Pi\n")
                == ["t.yaml:7:11: modelCache.pvc.size '2Pi' is out of range; use a quantity between 1 byte and 1Pi, e.g. '50Gi'"])
        #expect(errors(minimal + "modelCache:\n  emptyDir:\n    sizeLimit: 1e400\n")
                == ["t.yaml:7:16: modelCache.emptyDir.sizeLimit '1e400' is out of range; use a quantity between 1 byte and 1Pi, e.g. '20Gi'"])
        // In range, every suffix still decodes.
        for (cpu, memory) in [("500m", "1Gi"), ("4", "64Ti"), ("0.5", "1.5e9"), ("1.5e2", "512M"), ("1k", "1")] {
            #expect(errors(minimal + "resources: {cpu: \"\(cpu)\", memory: \"\(memory)\"}\n") == [], "\(cpu) \(memory)")
        }
        #expect(quantityValue("16Gi") == 17_179_869_184)
        #expect(quantityValue("500m") == 0.5)
        #expect(quantityValue("1.5e2") == 150)
        #expect(quantityValue("2k") == 2000)
    }
}
