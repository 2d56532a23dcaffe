import Foundation
import Optimizer
import Spec

/// The servers of one running trial, and how to reach them.
public struct TrialHandle: Sendable {
    /// Base URLs (one per replica); requests are spread over them.
    public var baseURLs: [String]
    /// Processes this trial started (none for an external upstream).
    public var processes: [ServerProcess]
    /// The "model" field requests carry; nil: whatever GET /v1/models lists first.
    public var modelName: String?
    public var apiKey: String?
    public init(baseURLs: [String], processes: [ServerProcess], modelName: String?, apiKey: String? = nil) {
        self.baseURLs = baseURLs; self.processes = processes; self.modelName = modelName; self.apiKey = apiKey
    }
}

/// What a configuration means in the spec's terms: the spec's own backend section, and the
/// spec's `replicas` (nil where the backend runs none, e.g. an upstream: the spec keeps its own).
/// Writing a winner back is `spec.backend = settings.backend` (and the replicas).
public struct ServingSettings: Sendable, Equatable {
    public var backend: BackendSpec
    public var replicas: Int?
    public init(backend: BackendSpec, replicas: Int? = nil) { self.backend = backend; self.replicas = replicas }
}

/// A serving backend the optimizer can tune: it declares its search space, launches servers for
/// one configuration on 127.0.0.1 and stops them. Every backend is measured the same way, through
/// the OpenAI API (`TrialEvaluator`).
public protocol ServingBackend: Sendable {
    /// `native`, `llamacpp`, `openai`.
    var name: String { get }
    func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace
    /// Starts the servers for `config` and returns once they are ready.
    func launch(_ config: Config, startupTimeout: Double) async throws(TrialFailure) -> TrialHandle
    /// The configuration as the spec's backend section and replicas.
    func settings(_ config: Config) -> ServingSettings
    /// The backend's own default for each knob on a machine of `cores` cores (what a study pins
    /// when it does not search a knob).
    func defaults(cores: Int) -> [String: KnobValue]
}

extension ServingBackend {
    /// Stops the trial's processes; returns the sum of their peak RSS when known.
    public func stop(_ h: TrialHandle) async -> Int64? {
        var total: Int64 = 0
        var known = false
        for p in h.processes {
            if let r = await p.stop() { total += r; known = true }
        }
        return known ? total : nil
    }

    /// nil while every process is alive; otherwise how the first dead one ended.
    public func exited(_ h: TrialHandle) async -> (oom: Bool, text: String)? {
        for p in h.processes where !p.isAlive { return await p.exitDescription() }
        return nil
    }
}

/// Starts `count` servers (the same config, each on its own port) in parallel and waits for all
/// of them; on any failure the started ones are stopped.
func launchReplicas(count: Int, startupTimeout: Double, readyPath: String,
                    command: @Sendable (_ port: Int) -> (String, [String])) async throws(TrialFailure) -> [ServerProcess] {
    var started: [ServerProcess] = []
    do {
        for _ in 0..<max(count, 1) {
            let port = try freePort()
            let (exe, args) = command(port)
            started.append(try ServerProcess.start(executable: exe, arguments: args, port: port))
        }
        for p in started { try await p.waitReady(path: readyPath, timeout: startupTimeout) }
        return started
    } catch {
        for p in started { _ = await p.stop() }
        throw error
    }
}
