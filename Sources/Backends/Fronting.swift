import Foundation
import Server
import Spec

/// Why a spec's backend cannot be fronted; each message says what to change.
public enum BackendError: Error, CustomStringConvertible, Equatable {
    case programNotFound(program: String, detail: String)
    case missingURL(BackendType)
    case missingModelPath
    case upstreamRefusedKey(url: String, status: Int)

    public var description: String {
        switch self {
        case .programNotFound(let program, let detail): return "\(program) not found: \(detail)"
        case .missingURL(let t):
            return "backend.type \(t.rawValue) needs the upstream's address: set backend.url (e.g. http://vllm:8000/v1) or pass --backend-url"
        case .missingModelPath: return "backend.type llamacpp needs a GGUF model: set model.ref"
        case .upstreamRefusedKey(let url, let status):
            return "\(url) refused autoglm's key (HTTP \(status)): set backend.apiKey ({env: VAR} or a secretRef), or $AUTOGLM_UPSTREAM_API_KEY, to a key the upstream accepts"
        }
    }
}

/// The serving layer's entry for `serve`: the backend a spec names, as an `Upstream` the front
/// door forwards to (native is served in-process and never comes here).
public enum Fronting {
    /// What `serve` needs besides the spec.
    public struct Inputs: Sendable {
        /// The GGUF file (llamacpp).
        public var modelPath: String?
        public var servedModelName: String
        /// `--backend-url`: front a server of the spec's backend that already runs there.
        public var backendURL: String?
        /// Bearer key for an openai upstream.
        public var upstreamKey: String?
        public var environment: [String: String]
        public init(modelPath: String?, servedModelName: String, backendURL: String?, upstreamKey: String?, environment: [String: String]) {
            self.modelPath = modelPath; self.servedModelName = servedModelName; self.backendURL = backendURL
            self.upstreamKey = upstreamKey; self.environment = environment
        }
    }

    /// What must be there before anything is pulled or started: the program (llamacpp, vllm)
    /// or the upstream's address (openai).
    public static func preflight(_ spec: Spec, backendURL: String?, environment: [String: String]) throws(BackendError) {
        let b = spec.backend
        if backendURL != nil { return }
        switch b.type {
        case .native: return
        case .openai: if b.url == nil { throw .missingURL(.openai) }
        case .llamacpp:
            if LlamaCppBackend.locate(explicit: b.executable, environment: environment) == nil { throw llamaServerMissing(b) }
        case .vllm:
            if locateProgram(b.executable, named: VLLMBackend.program, environment: environment) == nil { throw vllmMissing(b) }
        }
    }

    static func llamaServerMissing(_ b: BackendSpec) -> BackendError {
        .programNotFound(program: "llama-server", detail: b.executable.map { "backend.executable \($0) is not an executable file" }
            ?? "set backend.executable or $AUTOGLM_LLAMA_SERVER to its path, put it on $PATH, or build it with bench/build-llama-server.sh")
    }

    static func vllmMissing(_ b: BackendSpec) -> BackendError {
        .programNotFound(program: "vllm", detail: b.executable.map { "backend.executable \($0) is not an executable file" }
            ?? "install vLLM (pip install vllm) so `vllm` is on $PATH, set backend.executable, or run it yourself and pass --backend-url")
    }

    public static func upstream(_ spec: Spec, _ inp: Inputs, log: @escaping @Sendable (String) -> Void) throws(BackendError) -> any Upstream {
        let b = spec.backend
        let gpus = spec.resources.gpu ?? 0
        if let url = inp.backendURL ?? (b.type == .openai ? b.url : nil) {
            // Something already serves the API there: watch it and forward.
            let ready = b.type == .openai ? "/v1/models" : "/health"
            return RemoteUpstream(url: url, apiKey: b.type == .openai ? inp.upstreamKey : nil,
                                  slots: b.type == .openai ? nil : b.maxSeqs, readyPath: ready, log: log)
        }
        switch b.type {
        case .native, .openai:
            throw .missingURL(b.type)
        case .llamacpp:
            guard let model = inp.modelPath else { throw .missingModelPath }
            guard let exe = LlamaCppBackend.locate(explicit: b.executable, environment: inp.environment) else { throw llamaServerMissing(b) }
            let name = inp.servedModelName
            return ManagedServer(program: "llama-server", slots: b.maxSeqs, readyPath: "/health", announces: true, log: log) { port in
                (exe, LlamaCppBackend.serveArguments(backend: b, gpus: gpus, modelPath: model, servedModelName: name, port: port))
            }
        case .vllm:
            guard let exe = locateProgram(b.executable, named: VLLMBackend.program, environment: inp.environment) else { throw vllmMissing(b) }
            let (model, name) = (spec.model, inp.servedModelName)
            return ManagedServer(program: "vllm", slots: b.maxSeqs, readyPath: "/health", log: log) { port in
                (exe, VLLMBackend.serveArguments(model: model, backend: b, gpus: gpus, servedModelName: name, host: "127.0.0.1", port: port))
            }
        }
    }

    /// An explicit path (must be executable), else `name` on `$PATH`.
    static func locateProgram(_ explicit: String?, named name: String, environment: [String: String]) -> String? {
        let fm = FileManager.default
        if let e = explicit { return fm.isExecutableFile(atPath: e) ? e : nil }
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            let p = String(dir) + "/" + name
            if fm.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}
