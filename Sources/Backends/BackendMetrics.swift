import Foundation
import Server

/// How a backend's own Prometheus metrics map onto autoglm's names (what `/metrics` of the front
/// door exports, so dashboards and the autoscaler read one set of names whatever the backend).
/// Series with several label sets (vLLM labels by model and engine) are summed.
///
/// | autoglm                               | llama.cpp (`--metrics`)           | vLLM                                                  |
/// |---------------------------------------|-----------------------------------|-------------------------------------------------------|
/// | autoglm:num_requests_running          | llamacpp:requests_processing      | vllm:num_requests_running                             |
/// | autoglm:num_requests_waiting          | llamacpp:requests_deferred        | vllm:num_requests_waiting                             |
/// | autoglm:kv_cache_usage_ratio          | (not reported)                    | vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before 0.10) |
/// | autoglm:prompt_tokens_total           | llamacpp:prompt_tokens_total      | vllm:prompt_tokens_total                              |
/// | autoglm:generation_tokens_total       | llamacpp:tokens_predicted_total   | vllm:generation_tokens_total                          |
public enum BackendMetrics {
    static var names: [(WritableKeyPath<BackendStats, Double?>, [String])] {
        [(\.running, ["llamacpp:requests_processing", "vllm:num_requests_running"]),
         (\.waiting, ["llamacpp:requests_deferred", "vllm:num_requests_waiting"]),
         (\.kvUsage, ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
         (\.promptTokens, ["llamacpp:prompt_tokens_total", "vllm:prompt_tokens_total"]),
         (\.generationTokens, ["llamacpp:tokens_predicted_total", "vllm:generation_tokens_total"])]
    }

    /// The mapped values of a Prometheus text exposition; nil when none of the known series is there.
    public static func map(_ text: String) -> BackendStats? {
        let sums = parse(text)
        var s = BackendStats()
        var any = false
        for (key, candidates) in names {
            for n in candidates {
                if let v = sums[n] { s[keyPath: key] = v; any = true; break }
            }
        }
        return any ? s : nil
    }

    /// Sum of each metric's samples (labels dropped); comments, malformed and non-finite lines skipped.
    public static func parse(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var name: Substring
            var rest: Substring
            if let brace = line.firstIndex(of: "{") {
                name = line[..<brace]
                guard let close = line[brace...].lastIndex(of: "}") else { continue }
                rest = line[line.index(after: close)...]
            } else {
                guard let sp = line.firstIndex(of: " ") else { continue }
                name = line[..<sp]
                rest = line[sp...]
            }
            name = Substring(name.trimmingCharacters(in: .whitespaces))
            // value [timestamp]
            guard let valueText = rest.split(separator: " ", omittingEmptySubsequences: true).first,
                  let v = Double(valueText), v.isFinite else { continue }
            out[String(name), default: 0] += v
        }
        return out
    }
}
