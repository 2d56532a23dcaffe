import Backends
import Foundation
import Server
import Spec
import Synchronization

/// Why a spec cannot run as a fleet; each message says what to change.
public enum FleetError: Error, CustomStringConvertible, Equatable {
    case backend(String)
    case missingModelPath(BackendType)
    case unknownPolicy(String)

    public var description: String {
        switch self {
        case .backend(let why): return why
        case .missingModelPath(let t): return "backend.type \(t.rawValue) needs a GGUF model: set model.ref"
        case .unknownPolicy(let p):
            return "unknown balancing policy '\(p)'; use one of \(BalancePolicy.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}

/// A spec's replicas, as the fleet starts them: every replica a server on 127.0.0.1, port 0.
public enum FleetSpec {
    /// What `up` knows besides the spec.
    public struct Inputs: Sendable {
        /// The GGUF file (native, llamacpp).
        public var modelPath: String?
        public var servedModelName: String
        /// This program (native replicas are `autoglm serve` processes).
        public var selfExecutable: String
        /// Bearer key for an openai upstream.
        public var upstreamKey: String?
        public var environment: [String: String]
        public init(modelPath: String?, servedModelName: String, selfExecutable: String, upstreamKey: String?, environment: [String: String]) {
            self.modelPath = modelPath; self.servedModelName = servedModelName; self.selfExecutable = selfExecutable
            self.upstreamKey = upstreamKey; self.environment = environment
        }
    }

    /// What a replica of `spec` runs, for `fleet status` and to tell a changed spec on reload:
    /// the model reference and version, and a digest of the backend section.
    public static func version(_ spec: Spec) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in "\(spec.backend)|\(spec.model)".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        // A path shows as its file name.
        let ref = spec.model.ref.contains("/") && !spec.model.ref.contains("://") && spec.model.ref.hasSuffix(".gguf")
            ? String(spec.model.ref.split(separator: "/").last ?? "") : spec.model.ref
        let model = spec.model.version.map { "\(ref)@\($0)" } ?? ref
        return "\(model)#\(String(h, radix: 16).prefix(8))"
    }

    /// The replica template of `spec`. Native replicas get a key of their own (`internalKey`), so
    /// only the gateway reaches them.
    public static func template(_ spec: Spec, _ inp: Inputs, internalKey: String) throws(FleetError) -> ReplicaTemplate {
        let b = spec.backend
        let gpus = spec.resources.gpu ?? 0
        let name = inp.servedModelName
        let version = version(spec)
        switch b.type {
        case .native:
            guard let model = inp.modelPath else { throw .missingModelPath(.native) }
            let exe = inp.selfExecutable
            return ReplicaTemplate(version: version, slots: b.maxSeqs ?? NativeBackend.defaultMaxSeqs) { log in
                ManagedServer(program: "autoglm serve", slots: b.maxSeqs ?? NativeBackend.defaultMaxSeqs, readyPath: "/readyz",
                              announces: true, apiKey: internalKey,
                              // The only key the replica takes (not on its command line, where `ps` shows it).
                              environment: ["AUTOGLM_API_KEYS": internalKey], log: log) { port in
                    (exe, NativeBackend.serveArguments(backend: b, modelPath: model, servedModelName: name, port: port))
                }
            }
        case .llamacpp:
            guard let model = inp.modelPath else { throw .missingModelPath(.llamacpp) }
            guard let exe = LlamaCppBackend.locate(explicit: b.executable, environment: inp.environment) else {
                do { try Fronting.preflight(spec, backendURL: nil, environment: inp.environment) } catch { throw .backend(error.description) }
                throw .backend("llama-server not found")
            }
            return ReplicaTemplate(version: version, slots: b.maxSeqs) { log in
                ManagedServer(program: "llama-server", slots: b.maxSeqs, readyPath: "/health", announces: true, log: log) { port in
                    (exe, LlamaCppBackend.serveArguments(backend: b, gpus: gpus, modelPath: model, servedModelName: name, port: port))
                }
            }
        case .vllm, .openai:
            // vLLM replicas (one GPU set each) and upstreams run through the same serving layer as `serve`.
            do { try Fronting.preflight(spec, backendURL: nil, environment: inp.environment) } catch { throw .backend(error.description) }
            let inputs = Fronting.Inputs(modelPath: inp.modelPath, servedModelName: name, backendURL: nil,
                                         upstreamKey: inp.upstreamKey, environment: inp.environment)
            _ = try fronted(spec, inputs, log: { _ in })
            return ReplicaTemplate(version: version, slots: b.maxSeqs) { log in
                (try? fronted(spec, inputs, log: log)) ?? RemoteUpstream(url: b.url ?? "", apiKey: nil, slots: nil, readyPath: "/health", log: log)
            }
        }
    }

    static func fronted(_ spec: Spec, _ inputs: Fronting.Inputs, log: @escaping @Sendable (String) -> Void) throws(FleetError) -> any Upstream {
        do { return try Fronting.upstream(spec, inputs, log: log) } catch { throw .backend(error.description) }
    }

    /// Servers that already run (pods behind a headless Service, other hosts): one replica per URL,
    /// probed at `/v1/models` with `apiKey`; the fleet starts nothing.
    public static func remoteTemplate(urls: [String], apiKey: String?, slots: Int?) -> ReplicaTemplate {
        let next = Mutex(0)
        return ReplicaTemplate(version: "remote", slots: slots) { log in
            let i = next.withLock { n -> Int in defer { n += 1 }; return n }
            return RemoteUpstream(url: urls.isEmpty ? "" : urls[i % urls.count], apiKey: apiKey, slots: slots, readyPath: "/v1/models", log: log)
        }
    }

    /// A random key for the fleet's own replicas (hex, 128 bits).
    public static func internalKey() -> String {
        var g = SystemRandomNumberGenerator()
        return "autoglm-fleet-" + (0..<4).map { _ in String(g.next() as UInt32, radix: 16) }.joined()
    }
}
