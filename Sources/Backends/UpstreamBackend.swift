import Foundation
import Optimizer
import Spec

/// An OpenAI-compatible server that is already running (vLLM, a hosted API, another autoglm):
/// nothing to launch or tune, so its study is one measured trial of the same workload, to compare
/// with the tuned local backends.
public struct UpstreamBackend: ServingBackend {
    public let url: String
    public let apiKey: String?
    public var name: String { "openai" }
    public static let knob = "upstream"

    public init(url: String, apiKey: String?) {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        if u.hasSuffix("/v1") { u.removeLast(3) }
        self.url = u
        self.apiKey = apiKey
    }

    public func searchSpace(machine: MachineLimits, tokensPerSequence: Int) throws -> SearchSpace {
        try SearchSpace(knobs: [Knob(Self.knob, .categorical([url]))])
    }

    public func defaults(cores: Int) -> [String: KnobValue] { [Self.knob: .category(url)] }

    public func settings(_ c: Config) -> ServingSettings {
        var b = BackendSpec()
        b.type = .openai
        b.url = url
        return ServingSettings(backend: b)
    }

    public func launch(_ c: Config, startupTimeout: Double) async throws(TrialFailure) -> TrialHandle {
        let deadline = Date().addingTimeInterval(startupTimeout)
        var last: Int?
        repeat {
            last = await httpStatus(url + "/v1/models", apiKey: apiKey, timeout: 10)
            if last == 200 { return TrialHandle(baseURLs: [url], processes: [], modelName: nil, apiKey: apiKey) }
            if last == 401 || last == 403 {
                throw TrialFailure(reason: .crash, detail: "GET \(url)/v1/models answered HTTP \(last ?? 0): give the upstream's key with --upstream-api-key or OPENAI_API_KEY")
            }
            try? await Task.sleep(for: .milliseconds(500))
        } while Date() < deadline
        throw TrialFailure(reason: .timeout, detail: "GET \(url)/v1/models did not answer 200 within \(Int(startupTimeout)) s (last: \(last.map { "HTTP \($0)" } ?? "no connection"))")
    }
}
