import Core
import ArgumentParser
import Backends
import Fleet
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Registry
import Server
import Spec

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run a spec as a local fleet: replicas behind one OpenAI-compatible gateway.",
        discussion: """
        Starts `replicas` servers of the spec's backend on 127.0.0.1 (each on a port the kernel \
        picks; restarted with backoff when one dies; they die with this process) and serves one \
        front door on server.port with the same auth, limits, logs, /healthz, /readyz and /metrics \
        as `serve`, balancing requests by gateway.policy (round-robin, least-outstanding, \
        prefix-affinity). A request that could not reach its replica before anything was sent is \
        retried once on another. GET /fleet/status (and `autoglm fleet status`) shows the replicas.

        With autoscaling.enabled, the replica count follows autoscaling.rules (or the default rules \
        from metric/target) and, with autoscaling.predictive, a forecast of the arrival rate, \
        within minReplicas...maxReplicas; every decision is logged with its reason and counted in \
        autoglm:fleet_scale_events_total{reason}.

        While it runs, the spec file is watched: a change to the model or backend section is rolled \
        out one replica at a time (a new replica ready before an old one is drained), or — with \
        rollout.canaryPercent — as a canary that gets that share of requests and is promoted or \
        rolled back by rollout.analysis. SIGTERM drains: /readyz answers 503, in-flight requests \
        finish, the replicas stop.
        """)

    @Argument(help: "The autoglm.yaml to run (default: autoglm.yaml).") var spec = "autoglm.yaml"
    @Option(name: .long, help: "Environments overlay of the spec to apply.") var env: String?
    @OptionGroup var tracing: TracingOptions
    @Option(name: .long, help: "Address the gateway binds (default: 127.0.0.1).") var host = "127.0.0.1"
    @Option(name: .long, help: "Gateway port (default: server.port).") var port: Int?
    @Option(name: .long, help: "Replicas to start (default: the spec's replicas).") var replicas: Int?
    @Option(name: .long, help: "Balancing policy: round-robin, least-outstanding or prefix-affinity (default: the spec's gateway.policy).") var policy: String?
    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable; also AUTOGLM_API_KEYS and server.apiKeys).") var apiKeys: [String] = []
    @Option(name: .customLong("served-model-name"), help: "Model name in the API (default: the registry's name of the model).") var servedModelName: String?
    @Option(name: .customLong("max-queue"), help: "Requests beyond the replicas' slots before 429.") var maxQueue = ServingDefaults.maxQueue
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM (and a replica being replaced) waits for in-flight requests.") var drainTimeout: Double?
    @Option(name: .customLong("log-format"), help: "text or json.") var logFormat = "text"
    @Option(name: .customLong("replica-url"), help: "Route to servers that already run (repeatable; e.g. the pods behind a headless Service) instead of starting replicas: the gateway alone, no scaling or rollouts.") var replicaURLs: [String] = []
    @Option(name: .customLong("watch-interval"), help: "Seconds between checks of the spec file for changes (0: do not watch).") var watchInterval: Double = 2

    func validate() throws {
        try FlagRange.check("--port", port, 0...65535)
        try FlagRange.check("--replicas", replicas, 1...64)
        if let policy, BalancePolicy(rawValue: policy) == nil { throw ValidationError(FleetError.unknownPolicy(policy).description) }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
        guard watchInterval >= 0 else { throw ValidationError("--watch-interval must be ≥ 0 seconds") }
        for u in replicaURLs {
            guard let url = URL(string: u), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw ValidationError("--replica-url '\(u)' is not an http:// or https:// URL; e.g. http://10.0.0.7:8080")
            }
        }
        if !replicaURLs.isEmpty && replicas != nil { throw ValidationError("--replicas starts replicas; with --replica-url the gateway routes to those servers only: drop one of them") }
    }

    func run() async throws {
        let json = LogFormat(rawValue: logFormat) == .json
        LoggingSystem.bootstrap { label in json ? AnyLogHandlerBox.json(label) : AnyLogHandlerBox.text(label) }
        let logger = Logger(label: "autoglm.up")
        // The gateway's spans here; the replicas (`autoglm serve` children) get the same settings.
        let server = (try? Serve.parse(["--config", spec] + (env.map { ["--env", $0] } ?? [])).loadServeSpec(spec, env: env))?.server
        try tracing.exportToChildren(service: "autoglm-serve", spec: server)
        let trace = try tracing.start(service: "autoglm-up", spec: server, logger: logger)
        try await withTracing(trace) { try await up(logger: logger) }
    }

    func up(logger: Logger) async throws {
        // `serve`'s own rules for the spec, the model, the keys and the HTTP side.
        var serveArgs = ["--config", spec, "--host", host, "--max-queue", String(maxQueue), "--log-format", logFormat]
        if let env { serveArgs += ["--env", env] }
        if let port { serveArgs += ["--port", String(port)] }
        if let drainTimeout { serveArgs += ["--drain-timeout", String(drainTimeout)] }
        for k in apiKeys { serveArgs += ["--api-key", k] }
        let serve = try Serve.parse(serveArgs)
        let environment = ProcessInfo.processInfo.environment

        let loaded = try serve.loadServeSpec(spec, env: env)
        let internalKey = FleetSpec.internalKey()
        let (template, name) = replicaURLs.isEmpty
            ? try makeTemplate(loaded, serve: serve, environment: environment, key: internalKey)
            : (FleetSpec.remoteTemplate(urls: replicaURLs, apiKey: try serve.upstreamKey(loaded, environment: environment),
                                        slots: loaded.backend.maxSeqs), servedModelName ?? loaded.name)
        let drain = drainTimeout ?? Double(loaded.server.drainTimeoutSeconds)
        var cfg = try serve.serverConfig(loaded, servedModelName: name, host: host, port: port ?? loaded.server.port, drainTimeout: drain)
        let pool = ReplicaPool(policy: policy.flatMap(BalancePolicy.init(rawValue:)) ?? loaded.gateway.policy,
                               affinityThreshold: loaded.gateway.affinityThreshold, slotsPerReplica: template.slots)
        let scaling = replicaURLs.isEmpty ? loaded.autoscaling.flatMap { $0.enabled ? $0 : nil } : nil
        // With autoscaling the replicas start within its bounds.
        let initial = replicaURLs.isEmpty
            ? scaling.map { min(max(replicas ?? loaded.replicas, $0.minReplicas), $0.maxReplicas) } ?? (replicas ?? loaded.replicas)
            : replicaURLs.count
        let metrics = ServerMetrics(modelName: name)
        let specFile = spec, overlay = env, interval = replicaURLs.isEmpty ? watchInterval : 0
        let fleet = FleetRouter(pool: pool, template: template, replicas: initial, drainTimeout: drain,
                                metrics: metrics, log: { logger.info("\($0)") }) { fleet in
            let scaler = scaling.map { s in Task { await FleetControl.autoscale(fleet, spec: s) } }
            defer { scaler?.cancel() }
            guard interval > 0 else {
                await scaler?.value
                return
            }
            // Watch the spec; roll out a changed model or backend section.
            var last = try? String(contentsOfFile: specFile, encoding: .utf8)
            while !fleet.isStopped {
                try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                guard let text = try? String(contentsOfFile: specFile, encoding: .utf8), text != last else { continue }
                last = text
                do {
                    let next = try SpecLoader.load(yaml: text, file: specFile, environment: overlay, variables: SpecLoader.processEnvironment()).spec
                    let (t, _) = try makeTemplate(next, serve: serve, environment: environment, key: internalKey)
                    guard t.version != fleet.template.version else {
                        if scaling == nil && next.replicas != fleet.stableCount {
                            await fleet.scale(to: next.replicas, reason: "spec", detail: "\(specFile) now asks for \(next.replicas) replicas")
                        } else {
                            logger.info("\(specFile) changed; the replicas' model and backend did not: nothing to roll out")
                        }
                        continue
                    }
                    let deadline = Double(next.rollout.progressDeadlineSeconds ?? RolloutSpec.defaultProgressDeadlineSeconds)
                    if let p = next.rollout.canaryPercent {
                        _ = await FleetControl.canary(fleet, to: t, percent: p, analysis: next.rollout.analysis ?? CanaryAnalysisSpec(),
                                                      deadline: deadline)
                    } else {
                        _ = await Rollout.rolling(fleet, to: t, deadline: deadline)
                    }
                } catch let e as SpecError {
                    logger.error("\(specFile) changed but is not valid; the fleet keeps running as it was", metadata: ["errors": "\(e.diagnostics.map(\.description).joined(separator: " | "))"])
                } catch {
                    logger.error("\(specFile) changed but cannot be rolled out: \(error)")
                }
            }
        }
        cfg.extraRoutes.append { router in
            router.get("/fleet/status") { _, _ in FrontDoor.json(.ok, fleet.status()) }
        }
        logger.info("fleet", metadata: [
            "backend": "\(loaded.backend.type.rawValue)", "model": "\(name)", "version": "\(template.version)",
            "replicas": "\(initial)", "policy": "\(pool.policy.rawValue)",
            "autoscaling": "\(scaling.map { "\($0.minReplicas)...\($0.maxReplicas), \($0.effectiveRules.count) rules\($0.predictive?.enabled == true ? ", predictive" : "")" } ?? "off")",
            "host": "\(host)", "port": "\(cfg.port)", "auth": "\(cfg.apiKeys.isEmpty ? "off" : "\(cfg.apiKeys.count) keys")",
        ])
        let server = ProxyServer(router: fleet, config: cfg, logger: logger, metrics: metrics)
        try await server.run()
        logger.info("drained; exiting")
    }

    /// The replica template of a spec, and the model name the gateway serves.
    func makeTemplate(_ s: Spec, serve: Serve, environment: [String: String], key: String) throws -> (ReplicaTemplate, String) {
        var modelPath: String?
        var name = s.name
        switch s.backend.type {
        case .native, .llamacpp:
            let resolved = try serve.resolveSpecModel(s.model)
            modelPath = resolved.path
            name = resolved.name
        case .vllm:
            name = VLLMBackend.repoID(s.model.ref) ?? s.model.ref
        case .openai:
            break
        }
        if let n = servedModelName { name = n }
        let inputs = FleetSpec.Inputs(modelPath: modelPath, servedModelName: name, selfExecutable: Self.selfExecutable,
                                      upstreamKey: try serve.upstreamKey(s, environment: environment), environment: environment)
        do {
            return (try FleetSpec.template(s, inputs, internalKey: key), name)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// This binary (native replicas are `autoglm serve` processes).
    static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Inspect a running `autoglm up` fleet.", subcommands: [FleetStatus.self])
}

struct FleetStatus: AsyncParsableCommand {
    static func percent(_ v: JSONValue?) -> String {
        switch v {
        case .int(let i)?: return "\(i)%"
        case .double(let d)?: return String(format: "%.1f%%", d)
        default: return "-"
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Replicas, versions, sets, in-flight requests and health of a running fleet.")

    @Option(name: .long, help: "The gateway's address.") var url = "http://127.0.0.1:8080"
    @Option(name: .customLong("api-key"), help: "API key (default: the first of AUTOGLM_API_KEYS).") var apiKey: String?
    @Flag(name: .long, help: "Print the JSON as the gateway answers it.") var json = false

    func run() async throws {
        guard let u = URL(string: url.hasSuffix("/") ? url + "fleet/status" : url + "/fleet/status"), u.scheme != nil else {
            throw ValidationError("--url '\(url)' is not a URL; e.g. http://127.0.0.1:8080")
        }
        var req = URLRequest(url: u)
        req.timeoutInterval = 5
        let key = apiKey ?? Serve.environmentKeys(ProcessInfo.processInfo.environment)?.first
        if let key { req.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        let data: Data, resp: URLResponse
        do { (data, resp) = try await URLSession.shared.data(for: req) } catch {
            FileHandle.standardError.write(Data("error: no fleet answers at \(url) (\(error.localizedDescription)); is `autoglm up` running there?\n".utf8))
            throw ExitCode(1)
        }
        let code = (resp as? HTTPURLResponse)?.statusCode ?? 0
        guard code == 200, let value = try? JSONValue.parse(data) else {
            FileHandle.standardError.write(Data("error: \(url)/fleet/status answered HTTP \(code)\(code == 401 ? " (pass --api-key)" : ""): \(String(decoding: data.prefix(200), as: UTF8.self))\n".utf8))
            throw ExitCode(1)
        }
        if json { print(String(decoding: data, as: UTF8.self)); return }
        print("policy: \(value["policy"]?.string ?? "?")   canary share: \(value["canary_percent"]?.int ?? 0)%")
        if let e = value["last_scale_event"]?.string { print("last scale event: \(e)") }
        if let r = value["last_rollout"]?.string { print("last rollout: \(r)") }
        print("ID  SET     VERSION                          WEIGHT  IN-FLIGHT  SERVED  FAILED  STATE")
        if case .array(let rs)? = value["replicas"] {
            for r in rs {
                func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
                print(pad("\(r["id"]?.int ?? 0)", 4) + pad(r["set"]?.string ?? "", 8) + pad(r["version"]?.string ?? "", 33)
                      + pad(Self.percent(r["weight_percent"]), 8) + pad("\(r["in_flight"]?.int ?? 0)", 11) + pad("\(r["served"]?.int ?? 0)", 8) + pad("\(r["failed"]?.int ?? 0)", 8)
                      + (r["state"]?.string ?? ""))
            }
        }
    }
}
