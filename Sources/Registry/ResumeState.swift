import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a `.partial` download remembers so that it is only ever continued with bytes of the
/// same remote file: the validator (a strong `ETag`, else `Last-Modified`) of the response whose
/// bytes it holds, in a sidecar file `<partial>.validator`. A resume sends
/// `Range: bytes=N-` with `If-Range: <validator>`: a server whose file changed answers 200 with
/// the whole new file (and the partial is truncated), never a 206 tail of the new file spliced
/// onto the head of the old one. No validator, no resume.
enum ResumeState {
    /// Longest validator kept (real ETags and HTTP dates are far shorter).
    static let maxValidatorLength = 512

    static func sidecar(_ partial: String) -> String { partial + ".validator" }

    /// The stored validator of `partial`, or nil when there is none (or it is unusable).
    static func stored(for partial: String) -> String? {
        guard let data = FileManager.default.contents(atPath: sidecar(partial)),
              let s = String(data: data, encoding: .utf8), isUsable(s) else { return nil }
        return s
    }

    /// Records (or, with nil, forgets) the validator of the bytes in `partial`. Written to a temp
    /// file and renamed, so a crash leaves the old sidecar or the new one, never half of one.
    static func store(_ validator: String?, for partial: String) throws {
        let path = sidecar(partial)
        guard let validator else {
            if unlink(path) != 0 && errno != ENOENT {
                throw RegistryError.io(path: path, reason: "cannot remove: \(String(cString: strerror(errno)))")
            }
            return
        }
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(validator.utf8)), rename(tmp, path) == 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw RegistryError.io(path: path, reason: "cannot write the resume validator (is the cache directory writable and the disk not full?)")
        }
    }

    /// Removes a partial download and its sidecar.
    static func discard(_ partial: String) {
        try? FileManager.default.removeItem(atPath: partial)
        try? FileManager.default.removeItem(atPath: sidecar(partial))
    }

    /// The validator a response offers for `If-Range`: its ETag when strong (a weak `W/` tag
    /// must not be used for ranges), else its Last-Modified; nil when it has neither.
    static func validator(of response: HTTPURLResponse) -> String? {
        if let etag = response.value(forHTTPHeaderField: "ETag")?.trimmingCharacters(in: .whitespaces),
           !etag.hasPrefix("W/"), isUsable(etag) {
            return etag
        }
        if let date = response.value(forHTTPHeaderField: "Last-Modified")?.trimmingCharacters(in: .whitespaces), isUsable(date) {
            return date
        }
        return nil
    }

    static func isUsable(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxValidatorLength && s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
    }

    /// `Content-Range: bytes START-END/COMPLETE` (COMPLETE may be `*`).
    struct ContentRange: Equatable {
        var start: Int64
        var end: Int64
        var complete: Int64?
    }

    static func contentRange(_ header: String?) -> ContentRange? {
        guard let t = header?.trimmingCharacters(in: .whitespaces), t.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = t.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let halves = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let bounds = halves[0].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let start = Int64(bounds[0]), let end = Int64(bounds[1]), start >= 0, end >= start else { return nil }
        let complete: Int64?
        if halves[1] == "*" { complete = nil } else {
            guard let c = Int64(halves[1]), c > end else { return nil }
            complete = c
        }
        return ContentRange(start: start, end: end, complete: complete)
    }

    /// `Content-Range: bytes */COMPLETE` of a 416 answer.
    static func unsatisfiedLength(_ header: String?) -> Int64? {
        guard let t = header?.trimmingCharacters(in: .whitespaces), t.lowercased().hasPrefix("bytes */") else { return nil }
        return Int64(t.dropFirst(8))
    }

    /// How to treat the answer to a download request sent at `offset` (a Range + If-Range
    /// request when `offset > 0`, a plain GET otherwise).
    enum Verdict: Equatable {
        /// The body is the whole file from byte 0: truncate the partial, record the validator.
        case fresh(total: Int64?)
        /// The body continues the partial exactly at `offset`.
        case resume(total: Int64)
        /// The partial already holds the whole file (416 for a range starting at its end).
        case complete
        /// The answer cannot continue the partial: drop it and ask again from byte 0.
        case restart(String)
        case fail(String)
    }

    /// What a download does with a response's head, the verdict applied: on `.fresh` the
    /// partial is emptied and the response's validator recorded (in that order, so the sidecar
    /// never describes bytes the partial does not hold). Shared by every fetcher that resumes.
    enum Start {
        case proceed(total: Int64?)
        case complete
        case restart(String)
        case fail(String)
    }

    static func start(_ response: HTTPURLResponse, offset: Int64, stored: String?, sink: FileHandle,
                      written: inout Int64, partial: String) -> Start {
        switch verdict(response, offset: offset, stored: stored) {
        case .fresh(let t):
            do {
                if written > 0 {
                    // The body is the whole file from byte 0 (the file changed, or no ranges).
                    try sink.truncate(atOffset: 0)
                    try sink.seek(toOffset: 0)
                    written = 0
                }
                try store(validator(of: response), for: partial)
            } catch {
                return .fail("cannot restart the partial download: \(error)")
            }
            return .proceed(total: t)
        case .resume(let t): return .proceed(total: t)
        case .complete: return .complete
        case .restart(let why): return .restart(why)
        case .fail(let why): return .fail(why)
        }
    }

    static func verdict(_ response: HTTPURLResponse, offset: Int64, stored: String?) -> Verdict {
        let length = response.expectedContentLength
        switch response.statusCode {
        case 200:
            return .fresh(total: length >= 0 ? length : nil)
        case 206:
            guard let range = contentRange(response.value(forHTTPHeaderField: "Content-Range")) else {
                return .restart("the server answered 206 without a usable Content-Range")
            }
            guard range.start == offset else {
                return .restart("the server resumed at byte \(range.start) instead of \(offset)")
            }
            if let complete = range.complete, range.end != complete - 1 {
                return .restart("the server sent bytes \(range.start)-\(range.end) of \(complete), not the rest of the file")
            }
            if offset > 0, let now = validator(of: response), let stored, now != stored {
                // A server that ignores If-Range but honours Range: its validator gives it away.
                return .restart("the file changed on the server (validator \(stored) → \(now))")
            }
            let total = range.complete ?? range.end + 1
            return offset == 0 ? .fresh(total: total) : .resume(total: total)
        case 416 where offset > 0:
            if let now = validator(of: response), let stored, now != stored {
                return .restart("the file changed on the server (validator \(stored) → \(now))")
            }
            if let complete = unsatisfiedLength(response.value(forHTTPHeaderField: "Content-Range")), complete == offset {
                return .complete
            }
            return .restart("the server cannot serve bytes from \(offset) on (HTTP 416)")
        default:
            return .fail("HTTP status \(response.statusCode)")
        }
    }
}
