import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Content-addressed files under `blobs/sha256-<hex>`. A blob appears only complete: it is written
/// to a temp file in the same directory, checked, then renamed into place (atomic on one
/// filesystem). A per-digest flock keeps concurrent writers from duplicating work.
public struct BlobStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func path(for digest: String) -> String { "\(directory)/sha256-\(digest)" }
    var lockDirectory: String { "\(directory)/.locks" }

    public func exists(_ digest: String) -> Bool { FileManager.default.fileExists(atPath: path(for: digest)) }

    func ensureDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: lockDirectory, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.io(path: directory, reason: "cannot create the blob directory: \(error.localizedDescription)")
        }
    }

    /// A fresh temp path inside the blob directory (same filesystem as the final blob).
    public func temporaryPath() throws -> String {
        try ensureDirectory()
        return "\(directory)/.tmp-\(UUID().uuidString)"
    }

    public func lockPath(for digest: String) -> String { "\(lockDirectory)/sha256-\(digest).lock" }

    /// A staged file: complete, hashed, inside the blob directory, not yet visible as a blob.
    public struct Staged: Sendable {
        public let temp: String
        public let digest: String
        public let size: Int64
    }

    /// Copies `source` into a temp file in the store while hashing it. When `expected` is given
    /// and differs, the temp file is removed and `checksumMismatch` is thrown.
    public func stage(copying source: String, expected: String?, progress: ((Int64) -> Void)? = nil) throws -> Staged {
        let tmp = try temporaryPath()
        do {
            let (digest, size) = try BlobStore.copyHashing(from: source, to: tmp, progress: progress)
            return try check(Staged(temp: tmp, digest: digest, size: size), expected: expected, source: source)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
    }

    /// Stages a file that already lies on the blob store's filesystem by hashing it and renaming
    /// it to a temp name (no copy). Falls back to copying across filesystems.
    public func stage(moving source: String, expected: String?, progress: ((Int64) -> Void)? = nil) throws -> Staged {
        let (digest, size) = try BlobStore.hashFile(source, progress: progress)
        let tmp = try temporaryPath()
        if rename(source, tmp) != 0 {
            return try stage(copying: source, expected: expected)
        }
        do {
            return try check(Staged(temp: tmp, digest: digest, size: size), expected: expected, source: source)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
    }

    func check(_ s: Staged, expected: String?, source: String) throws -> Staged {
        if let expected, expected.lowercased() != s.digest {
            throw RegistryError.checksumMismatch(source: source, expected: expected.lowercased(), actual: s.digest)
        }
        return s
    }

    /// Renames a staged file into place (atomic). The caller holds `lockPath(for:)`.
    /// If the blob already exists the staged copy is dropped.
    public func place(_ s: Staged) throws {
        let final = path(for: s.digest)
        if FileManager.default.fileExists(atPath: final) {
            try? FileManager.default.removeItem(atPath: s.temp)
            return
        }
        guard rename(s.temp, final) == 0 else {
            let why = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: s.temp)
            throw RegistryError.io(path: final, reason: "rename failed: \(why)")
        }
    }

    public func discard(_ s: Staged) { try? FileManager.default.removeItem(atPath: s.temp) }

    /// Streams `from` into `to` (created/truncated), returning the sha256 and size.
    static func copyHashing(from: String, to: String, progress: ((Int64) -> Void)?) throws -> (String, Int64) {
        guard let input = FileHandle(forReadingAtPath: from) else {
            if !FileManager.default.fileExists(atPath: from) { throw RegistryError.fileNotFound(from) }
            throw RegistryError.io(path: from, reason: "cannot open for reading")
        }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: to, contents: nil), let output = FileHandle(forWritingAtPath: to) else {
            throw RegistryError.io(path: to, reason: "cannot create")
        }
        defer { try? output.close() }
        var hasher = SHA256Hasher()
        var total: Int64 = 0
        do {
            while true {
                guard let chunk = try input.read(upToCount: 4 << 20), !chunk.isEmpty else { break }
                chunk.withUnsafeBytes { hasher.update($0) }
                try output.write(contentsOf: chunk)
                total += Int64(chunk.count)
                progress?(total)
            }
            try output.synchronize()
        } catch let e as RegistryError {
            throw e
        } catch {
            throw RegistryError.io(path: to, reason: error.localizedDescription)
        }
        return (hasher.finalizeHex(), total)
    }

    /// Hashes a file in place (for `--link`).
    public static func hashFile(_ path: String, progress: ((Int64) -> Void)? = nil) throws -> (String, Int64) {
        guard let input = FileHandle(forReadingAtPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { throw RegistryError.fileNotFound(path) }
            throw RegistryError.io(path: path, reason: "cannot open for reading")
        }
        defer { try? input.close() }
        var hasher = SHA256Hasher()
        var total: Int64 = 0
        do {
            while true {
                guard let chunk = try input.read(upToCount: 4 << 20), !chunk.isEmpty else { break }
                chunk.withUnsafeBytes { hasher.update($0) }
                total += Int64(chunk.count)
                progress?(total)
            }
        } catch {
            throw RegistryError.io(path: path, reason: error.localizedDescription)
        }
        return (hasher.finalizeHex(), total)
    }

    /// Digests of the blobs present.
    public func digests() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { $0.hasPrefix("sha256-") ? String($0.dropFirst(7)) : nil }
            .filter { (try? normalizedDigest($0)) != nil }
    }

    /// Temp files left behind by interrupted writes, older than `age` seconds.
    public func staleTemporaries(olderThan age: TimeInterval) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let now = Date()
        return names.filter { $0.hasPrefix(".tmp-") }.map { "\(directory)/\($0)" }.filter { p in
            let m = (try? FileManager.default.attributesOfItem(atPath: p)[.modificationDate] as? Date) ?? now
            return now.timeIntervalSince(m) > age
        }
    }
}
