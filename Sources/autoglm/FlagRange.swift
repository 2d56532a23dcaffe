import ArgumentParser
import Foundation

/// The one rule for numeric command-line values: each is checked against its allowed range,
/// and the message names the flag, the range and what was given. Non-finite numbers (`inf`,
/// `nan`, which Swift's parsers accept) are always refused.
enum FlagRange {
    static func check(_ flag: String, _ value: Int?, _ range: ClosedRange<Int>, unit: String = "") throws {
        guard let value else { return }
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound)\(unit) (got \(value))")
        }
    }

    static func check(_ flag: String, _ value: Double?, _ range: ClosedRange<Double>, unit: String = "") throws {
        guard let value else { return }
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(flag) must be a number in \(format(range.lowerBound))...\(format(range.upperBound))\(unit) (got \(value))")
        }
    }

    static func check(_ flag: String, _ value: Float?, _ range: ClosedRange<Double>, unit: String = "") throws {
        try check(flag, value.map(Double.init), range, unit: unit)
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    /// Worker threads beyond the cores make every step wait for preempted workers (measured:
    /// 30× slower decode with 64 threads on 2 cores). More than the cores is capped, with a
    /// warning, unless `force` (a container whose CPU count the process misreads).
    static func threads(_ requested: Int?, force: Bool, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int? {
        guard let requested, requested > cores, !force else { return requested }
        FileHandle.standardError.write(Data("warning: --threads \(requested) is more than this machine's \(cores) cores; using \(cores) (pass --force-threads to keep \(requested))\n".utf8))
        return cores
    }
}
