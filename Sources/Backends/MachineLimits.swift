import Foundation

// What a backend's search space is bounded by: the machine a trial runs on and the model it serves.

/// What the machine offers a trial.
public struct MachineLimits: Sendable, Equatable, Codable {
    public var cores: Int
    /// Bytes a trial may use in total (model weights + KV cache + overhead).
    public var memoryBytes: Int64
    public init(cores: Int, memoryBytes: Int64) { self.cores = cores; self.memoryBytes = memoryBytes }

    /// This machine: active cores and MemAvailable from /proc/meminfo (physical memory elsewhere),
    /// keeping 20% in reserve.
    public static func current() -> MachineLimits {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var available = Int64(ProcessInfo.processInfo.physicalMemory)
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let parts = line.split(separator: " ")
                if parts.count >= 2, let kb = Int64(parts[1]) { available = kb * 1024 }
            }
        }
        // Rounded down to 256 MiB so that small fluctuations do not change the space's bounds.
        let usable = available / 10 * 8
        return MachineLimits(cores: max(cores, 1), memoryBytes: (usable >> 28) << 28)
    }
}

/// What the model needs.
public struct ModelFacts: Sendable, Equatable, Codable {
    public var weightBytes: Int64
    /// KV-cache elements per token position (all layers, K and V); bytes = elements × the cache
    /// type's bytes per element.
    public var kvElementsPerToken: Int
    public var contextLength: Int
    /// Fixed overhead of a server process besides weights and KV cache (runtime, buffers).
    public static let processOverheadBytes: Int64 = 256 << 20

    public init(weightBytes: Int64, kvElementsPerToken: Int, contextLength: Int) {
        self.weightBytes = weightBytes; self.kvElementsPerToken = kvElementsPerToken; self.contextLength = contextLength
    }

    /// KV bytes of one position in a cache of `type` (`f32`, `f16`, `q8_0`: 34-byte blocks of 32).
    public func kvBytesPerToken(_ type: String) -> Int64 {
        let e = Int64(max(kvElementsPerToken, 1))
        switch type {
        case "f32": return e * 4
        case "q8_0": return (e * 34 + 31) / 32
        default: return e * 2
        }
    }
}
