import Spec
import ArgumentParser
import Core
import Deploy
import Registry
import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func printErr(_ s: String) {
    let line = Array((s.hasSuffix("\n") ? s : s + "\n").utf8)
    line.withUnsafeBytes { buf in
        var off = 0
        while off < buf.count, let base = buf.baseAddress {
            let n = write(2, base + off, buf.count - off)
            if n <= 0 { return }
            off += n
        }
    }
}

/// Loads a spec for rendering, printing every error and exiting 1 on failure. With
/// `checkHub`, the model must also be pullable (`checkModelsOnHub`) — what `deploy render` and
/// `deploy apply` check unless `--offline`.
private func loadSpecOrExit(_ file: String, env: String?, checkHub: Bool = false) throws -> LoadedSpec {
    let text: String
    do { text = try SpecLoader.readFile(file) } catch {
        printErr(error.description)
        throw ExitCode(1)
    }
    let loaded: LoadedSpec
    do {
        loaded = try SpecLoader.load(yaml: text, file: file, environment: env,
                                     variables: SpecLoader.processEnvironment())
    } catch {
        for d in error.diagnostics { printErr(d.description) }
        throw ExitCode(1)
    }
    if checkHub {
        for n in loaded.notes { printErr("note: " + n.description) }
        if !checkModelsOnHub(file, text: text, env: env, out: { printErr($0) }) { throw ExitCode(1) }
    }
    return loaded
}

/// Asks the Hugging Face Hub whether each model the spec (the overlay `env`, else the base and
/// every overlay) names can be pulled: a missing repository or revision, no file of the
/// quantization, a gated repository without a token, a repository vLLM cannot load. Prints each
/// problem as one `FILE: model.ref 'REF': …` line (on `out`) and what a quantization picked (as a
/// note); returns whether all passed. `HF_HUB_OFFLINE=1` skips the hub as `--offline` does.
func checkModelsOnHub(_ file: String, text: String, env: String?, out: (String) -> Void) -> Bool {
    let vars = SpecLoader.processEnvironment()
    var specs: [(String?, Spec)] = []
    let base = try? SpecLoader.load(yaml: text, file: file, environment: env, variables: vars)
    if let base {
        specs.append((env, base.spec))
        if env == nil {
            for e in base.spec.environmentNames {
                if let l = try? SpecLoader.load(yaml: text, file: file, environment: e, variables: vars) { specs.append((e, l.spec)) }
            }
        }
    }
    let check = HubModelCheck()
    var seen = Set<String>()
    var ok = true
    for (e, spec) in specs {
        guard let t = spec.hubTarget else { continue }
        let key = "\(t.ref)|\(t.revision ?? "")|\(t.loadsRepository)"
        guard seen.insert(key).inserted else { continue }
        let suffix = e.map { " (with --env \($0))" } ?? ""
        do {
            if case .available(let what) = try check.check(ref: t.ref, revision: t.revision, loadsRepository: t.loadsRepository),
               RefSyntax.hubQuant(t.ref) != nil {
                printErr("note: \(file): model.ref '\(t.ref)' is \(what) on the hub\(suffix)")
            }
        } catch {
            ok = false
            out("\(file): model.ref '\(t.ref)' cannot be pulled\(suffix): \(error.description) (--offline skips this check)")
        }
    }
    return ok
}

/// `autoglm validate FILE [--env E] [--print] [--offline]`
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an autoglm.yaml and report every problem with file:line:column.")

    @Argument(help: "The spec file.") var file: String = "autoglm.yaml"
    @Option(name: .long, help: "Apply this environments overlay (default: check the base and every overlay).")
    var env: String?
    @Flag(name: .long, help: "Print the resolved spec (overlay applied, ${VAR} substituted) as YAML.")
    var print = false
    @Flag(name: .long, help: "Do not ask the Hugging Face Hub whether the model can be pulled (also: HF_HUB_OFFLINE=1).")
    var offline = false

    func run() throws {
        let text: String
        do { text = try SpecLoader.readFile(file) } catch {
            printErr(error.description)
            throw ExitCode(1)
        }
        let vars = SpecLoader.processEnvironment()
        let result = SpecLoader.validate(yaml: text, file: file, environment: env, variables: vars)
        for n in result.notes { printErr("note: " + n.description) }
        guard result.errors.isEmpty else {
            for e in result.errors { Swift.print(e.description) }
            throw ExitCode(1)
        }
        if !offline, !checkModelsOnHub(file, text: text, env: env, out: { Swift.print($0) }) { throw ExitCode(1) }
        if print {
            let loaded = try loadSpecOrExit(file, env: env)
            Swift.print(SpecEncoder.yaml(loaded.spec), terminator: "")
        } else {
            Swift.print("\(file): valid")
        }
    }
}

/// `autoglm deploy ...`
struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deploy a spec: render manifests, apply them to Kubernetes, follow and roll back rollouts.",
        discussion: "autoglm deploy -f FILE [options] is autoglm deploy apply FILE [options].",
        subcommands: [Render.self, Containerfile.self, Apply.self, Status.self, Rollback.self, Delete.self],
        defaultSubcommand: Apply.self)

    /// `autoglm deploy render [FILE] [--env E] [--kube-version 1.XX] [-o DIR]`
    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Render deterministic Kubernetes manifests from autoglm.yaml.")

        @Argument(help: "The spec file.") var file: String = "autoglm.yaml"
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @Option(name: .customLong("kube-version"), help: "Target Kubernetes version (1.19 or later).")
        var kubeVersion: String = KubeVersion.default.description
        @Option(name: .shortAndLong, help: "Write one file per object into this directory instead of stdout.")
        var output: String?
        @Flag(name: .long, help: "Do not ask the Hugging Face Hub whether the model can be pulled (also: HF_HUB_OFFLINE=1).")
        var offline = false

        func run() throws {
            let kv: KubeVersion
            do { kv = try KubeVersion.parse(kubeVersion) } catch {
                printErr(error.description)
                throw ExitCode(1)
            }
            let loaded = try loadSpecOrExit(file, env: env, checkHub: !offline)
            let result = KubeRenderer.render(loaded.spec, options: RenderOptions(kubeVersion: kv))
            for n in result.notes { printErr("note: " + n) }
            if let output {
                do {
                    for path in try result.write(to: output) { printErr("wrote \(path)") }
                } catch {
                    printErr(error.description)
                    throw ExitCode(1)
                }
            } else {
                Swift.print(result.stream, terminator: "")
            }
        }
    }

    /// `autoglm deploy containerfile [-o DIR]`
    struct Containerfile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a multi-stage Containerfile and .dockerignore for the autoglm image.")

        @Option(name: .shortAndLong, help: "Directory to write into.") var output: String = "."

        func run() throws {
            do {
                for path in try ContainerBuild.write(to: output) { printErr("wrote \(path)") }
            } catch {
                printErr(error.description)
                throw ExitCode(1)
            }
        }
    }
}

// MARK: - cluster commands (apply / status / rollback / delete)

/// Where the cluster is: the usual kubectl flags.
struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster).")
    var kubeconfig: String?
    @Option(name: .long, help: "kubeconfig context to use (default: its current-context).")
    var context: String?
    @Option(name: .shortAndLong, help: "Namespace (default: the context's namespace, else 'default').")
    var namespace: String?
    @Option(name: .customLong("request-timeout"), help: "Seconds one API request may take.")
    var requestTimeout: Int = 30

    func validate() throws {
        if requestTimeout < 1 || requestTimeout > 3600 {
            throw ValidationError("--request-timeout must be between 1 and 3600 seconds (got \(requestTimeout))")
        }
    }

    func connection() throws -> KubeConnectionConfig {
        do {
            return try KubeConfigLoader.load(kubeconfig: kubeconfig, context: context, namespace: namespace)
        } catch {
            printErr("error: " + error.description)
            throw ExitCode(1)
        }
    }
}

/// Runs async cluster work from a synchronous command and waits for it.
private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws(KubeError) -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do throws(KubeError) { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    switch box.get() {
    case .success(let v)?: return v
    case .failure(let e)?:
        LiveLine.shared.finish()
        printErr("error: " + e.description)
        throw ExitCode(1)
    case nil:
        throw ExitCode(1)
    }
}

/// Guarded by `lock`.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, KubeError>?
    func set(_ r: Result<T, KubeError>) { lock.withLock { value = r } }
    func get() -> Result<T, KubeError>? { lock.withLock { value } }
}

/// The live progress line on stderr: rewritten in place on a terminal, one line per change otherwise.
/// Guarded by `lock`.
final class LiveLine: @unchecked Sendable {
    static let shared = LiveLine()
    private let lock = NSLock()
    private var last = ""
    private var open = false
    private let tty = isatty(2) != 0

    func show(_ line: String) {
        lock.withLock {
            guard line != last else { return }
            last = line
            if tty {
                printErrRaw("\r\u{1B}[K" + line)
                open = true
            } else {
                printErr(line)
            }
        }
    }

    func say(_ line: String) {
        finish()
        printErr(line)
    }

    func finish() {
        lock.withLock {
            if open { printErrRaw("\n") }
            open = false
            last = ""
        }
    }

    static func handler(_ event: KubeEvent) {
        switch event {
        case .applied(let s): shared.say(s)
        case .note(let s): shared.say("note: " + s)
        case .rollout(let snap): shared.show(snap.line)
        case .rollingBack(let s): shared.say(s)
        case .analysis(let s): shared.show(s)
        }
    }
}

private func printErrRaw(_ s: String) {
    let bytes = Array(s.utf8)
    bytes.withUnsafeBytes { buf in
        var off = 0
        while off < buf.count, let base = buf.baseAddress {
            let n = write(2, base + off, buf.count - off)
            if n <= 0 { return }
            off += n
        }
    }
}

extension Deploy {
    /// `autoglm deploy apply [FILE] [--env E] [cluster options]`
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the spec to a Kubernetes cluster, watch the rollout, roll back automatically on failure.",
            discussion: """
            Renders the manifests for the server's Kubernetes version and checks, before changing \
            anything, that the cluster serves every object's kind (e.g. the ServiceMonitor CRD) and \
            that you may do what apply does (SelfSubjectAccessReviews). Then writes each object \
            (server-side apply with field manager 'autoglm' where supported, create/replace \
            otherwise; the config is an immutable ConfigMap named after its content, so a config \
            change is a new revision) and follows the Deployment's rollout. If the rollout fails \
            (e.g. ProgressDeadlineExceeded), a write is refused or the wait times out, what this \
            apply changed is undone (the previous revision's pod template and config back, created \
            objects deleted, changed ones restored) and the command exits 1 saying why and what was \
            undone. After a healthy rollout, ConfigMaps no retained revision uses are deleted.

            With rollout.canaryPercent, a changed pod template first runs as deployment \
            NAME-canary (about that share of the Service's endpoints, track label canary) and is \
            judged against rollout.analysis (the keys 'autoglm up' uses) from both tracks' pods' \
            /metrics, read through the API server's pod proxy: promoted (the stable Deployment \
            takes the template, the canary is removed) or aborted (canary removed, stable set \
            untouched, exit 1 with the reason).
            """)

        @Argument(help: "The spec file.") var positionalFile: String?
        @Option(name: [.customShort("f"), .customLong("file")], help: "The spec file (`autoglm deploy -f FILE` is `deploy apply FILE`).")
        var fileOption: String?
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @OptionGroup var cluster: ClusterOptions
        @Flag(name: .long, help: "Do not ask the Hugging Face Hub whether the model can be pulled (also: HF_HUB_OFFLINE=1).")
        var offline = false
        @Option(name: .customLong("kube-version"), help: "Render for this Kubernetes version (default: the server's).")
        var kubeVersion: String?
        @Option(name: .customLong("apply-mode"), help: "auto, server-side or client-side (create/replace).")
        var applyMode: String = ApplyMode.auto.rawValue
        @Flag(name: .customLong("no-rollback"), help: "Leave a failed or timed-out rollout in place instead of rolling back (a refused write is always undone).")
        var noRollback = false
        @Flag(name: .customLong("create-namespace"), help: "Create the namespace if it does not exist.")
        var createNamespace = false
        @Option(name: .long, help: "Seconds to wait for the rollout (default: progressDeadlineSeconds + 60).")
        var timeout: Int?
        @Flag(name: .customLong("no-canary"), help: "Roll a changed pod template out directly, even when the spec sets rollout.canaryPercent.")
        var noCanary = false
        @OptionGroup var tracing: TracingOptions

        func run() throws {
            let file: String
            switch DeployAlias.specFile(positional: positionalFile, option: fileOption) {
            case .success(let f): file = f
            case .failure(let e):
                printErr("error: " + e.description)
                throw ExitCode(1)
            }
            guard let mode = ApplyMode(rawValue: applyMode) else {
                printErr("error: --apply-mode '\(applyMode)' is not one of auto, server-side, client-side")
                throw ExitCode(1)
            }
            var forced: KubeVersion?
            if let kubeVersion {
                do { forced = try KubeVersion.parse(kubeVersion) } catch {
                    printErr(error.description)
                    throw ExitCode(1)
                }
            }
            let loaded = try loadSpecOrExit(file, env: env, checkHub: !offline)
            let conn = try cluster.connection()
            let requestTimeout = cluster.requestTimeout
            var options = KubeDeployOptions()
            options.applyMode = mode
            options.autoRollback = !noRollback
            options.timeoutSeconds = timeout
            options.createNamespace = createNamespace
            options.canary = noCanary ? nil : CanaryOptions(spec: loaded.spec)
            let spec = loaded.spec
            let forcedVersion = forced
            let opts = options
            let trace = try tracing.start(service: "autoglm-deploy", logger: Logger(label: "autoglm.deploy"))
            let report = try tracedCommand(trace, "deploy apply") { try blocking { () async throws(KubeError) -> ApplyReport in
                try await KubeClient.with(conn, requestTimeoutSeconds: requestTimeout) { client throws(KubeError) in
                    let (git, server) = try await client.serverVersion()
                    if server < KubeVersion.minimum {
                        throw .serverTooOld(version: git, minimum: KubeVersion.minimum.description)
                    }
                    let kv = forcedVersion ?? server
                    LiveLine.shared.say("\(conn.server) (Kubernetes \(git)), namespace \(conn.namespace)")
                    let rendered = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: kv))
                    for n in rendered.notes { LiveLine.shared.say("note: " + n) }
                    let deployer = KubeDeployer(client: client, namespace: conn.namespace, progress: LiveLine.handler)
                    return try await deployer.apply(rendered.objects, options: opts)
                }
            } }
            LiveLine.shared.finish()
            if report.succeeded {
                Swift.print("deployment/\(spec.name): \(report.summary)")
            } else {
                printErr("error: " + report.summary)
                throw ExitCode(1)
            }
        }
    }

    /// `autoglm deploy status [FILE] [--name N]`
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarise the deployment: replicas, revision, conditions, history.")

        @Argument(help: "The spec file (only its name is used).") var file: String = "autoglm.yaml"
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @Option(name: .long, help: "Deployment name (instead of reading it from the spec).") var name: String?
        @OptionGroup var cluster: ClusterOptions

        func run() throws {
            let deployment = try name ?? loadSpecOrExit(file, env: env).spec.name
            let conn = try cluster.connection()
            let requestTimeout = cluster.requestTimeout
            let report = try blocking { () async throws(KubeError) -> StatusReport in
                try await KubeClient.with(conn, requestTimeoutSeconds: requestTimeout) { client throws(KubeError) in
                    try await KubeDeployer(client: client, namespace: conn.namespace).status(deployment)
                }
            }
            Swift.print("namespace \(conn.namespace) on \(conn.server)")
            Swift.print(report.summary, terminator: "")
            if case .failed = report.snapshot.state { throw ExitCode(1) }
        }
    }

    /// `autoglm deploy rollback [FILE] [--to-revision N]`
    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a previous revision's pod template (with its config) and wait until it is healthy.")

        @Argument(help: "The spec file (only its name is used).") var file: String = "autoglm.yaml"
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @Option(name: .long, help: "Deployment name (instead of reading it from the spec).") var name: String?
        @Option(name: .customLong("to-revision"), help: "Revision to go back to (default: the one before the live one).")
        var toRevision: Int?
        @Option(name: .long, help: "Seconds to wait for the rollback (default: progressDeadlineSeconds + 60).")
        var timeout: Int?
        @OptionGroup var cluster: ClusterOptions

        func run() throws {
            let deployment = try name ?? loadSpecOrExit(file, env: env).spec.name
            let conn = try cluster.connection()
            let requestTimeout = cluster.requestTimeout
            var options = KubeDeployOptions()
            options.timeoutSeconds = timeout
            let revision = toRevision
            let opts = options
            let report = try blocking { () async throws(KubeError) -> RollbackReport in
                try await KubeClient.with(conn, requestTimeoutSeconds: requestTimeout) { client throws(KubeError) in
                    try await KubeDeployer(client: client, namespace: conn.namespace, progress: LiveLine.handler)
                        .rollback(deployment, toRevision: revision, options: opts)
                }
            }
            LiveLine.shared.finish()
            Swift.print("deployment/\(deployment): rolled back from revision \(report.fromRevision.map(String.init) ?? "?") to the template of revision \(report.toRevision) (live as revision \(report.liveRevision.map(String.init) ?? "?")\(report.configMaps.isEmpty ? "" : ", config " + report.configMaps.joined(separator: ", "))); all replicas ready")
        }
    }

    /// `autoglm deploy delete [FILE]`
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete every object the spec renders (model cache claim included).")

        @Argument(help: "The spec file.") var file: String = "autoglm.yaml"
        @Option(name: .long, help: "Apply this environments overlay.") var env: String?
        @OptionGroup var cluster: ClusterOptions

        func run() throws {
            let spec = try loadSpecOrExit(file, env: env).spec
            let conn = try cluster.connection()
            let requestTimeout = cluster.requestTimeout
            _ = try blocking { () async throws(KubeError) -> [String] in
                try await KubeClient.with(conn, requestTimeoutSeconds: requestTimeout) { client throws(KubeError) in
                    // The server's version picks the API versions the objects were created with.
                    let (_, server) = try await client.serverVersion()
                    let objects = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: max(server, KubeVersion.minimum))).objects
                    return try await KubeDeployer(client: client, namespace: conn.namespace, progress: LiveLine.handler)
                        .delete(objects)
                }
            }
        }
    }
}
