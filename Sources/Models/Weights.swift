import Foundation
import GGUF
import Kernels

/// Looks up tensors by name and shape, collecting every problem so a broken file is
/// reported in one error instead of one missing tensor at a time.
public final class WeightLoader {
    public let file: GGUFFile
    public let prefix: String
    private(set) var missing: [String] = []
    private(set) var problems: [ModelError] = []
    /// F32 copies of small vectors stored in other types (rare; norms are F32 in practice).
    private var owned: [UnsafeMutablePointer<Float>] = []

    /// Threads that pack weights at load time.
    private lazy var packingPool = ThreadPool(threads: ProcessInfo.processInfo.activeProcessorCount)

    public init(file: GGUFFile, prefix: String) {
        self.file = file
        self.prefix = prefix
    }

    public var path: String { file.path }

    // MARK: metadata

    /// Every metadata read goes through these: a value outside its range, of the wrong type or
    /// not finite is one `invalidMetadata` error naming the key and the range, before any
    /// architecture code sizes a loop, divides or allocates by it.
    public func metaInt(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let v = try optionalInt(key, range) else {
            throw ModelError.missingMetadata(path: path, key: prefix + "." + key)
        }
        return v
    }

    public func metaInt(_ key: String, default d: Int, _ range: ClosedRange<Int>) throws -> Int {
        try optionalInt(key, range) ?? d
    }

    public func metaFloat(_ key: String, default d: Float, _ range: ClosedRange<Float>) throws -> Float {
        try metaFloat(key, range) ?? d
    }

    public func metaFloat(_ key: String, _ range: ClosedRange<Float>) throws -> Float? {
        let full = prefix + "." + key
        guard let raw = file[full] else { return nil }
        guard let v = raw.float else {
            throw ModelError.invalidMetadata(path: path, key: full, detail: "must be a number (is \(raw))")
        }
        guard v.isFinite, range.contains(v) else {
            throw ModelError.invalidMetadata(path: path, key: full, detail: "is \(v) (expected \(range.lowerBound) ... \(range.upperBound))")
        }
        return v
    }

    private func optionalInt(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
        let full = prefix + "." + key
        guard let raw = file[full] else { return nil }
        guard let v = raw.int else {
            throw ModelError.invalidMetadata(path: path, key: full, detail: "must be an integer (is \(raw))")
        }
        guard range.contains(v) else {
            throw ModelError.invalidMetadata(path: path, key: full, detail: "is \(v) (expected \(range.lowerBound) ... \(range.upperBound))")
        }
        return v
    }

    // MARK: tensors

    private func info(_ name: String, dims: [Int]) -> GGUFTensorInfo? {
        guard let t = file.tensor(named: name) else { missing.append(name); return nil }
        var actual = t.dims
        while actual.count > dims.count, actual.last == 1 { actual.removeLast() }
        if actual != dims {
            problems.append(.shapeMismatch(path: path, tensor: name, expected: dims, actual: t.dims))
            return nil
        }
        return t
    }

    public func has(_ name: String) -> Bool { file.tensor(named: name) != nil }

    /// A weight matrix with `rows` outputs of `cols` inputs (GGUF dims [cols, rows]).
    public func matrix(_ name: String, rows: Int, cols: Int) -> WeightMatrix? {
        guard let t = info(name, dims: [cols, rows]) else { return nil }
        guard isSupported(t.type) else {
            problems.append(.unsupportedTensorType(path: path, tensor: name, type: t.type))
            return nil
        }
        do {
            let m = try WeightMatrix(type: t.type, rows: rows, cols: cols, data: file.base + t.offset)
            guard m.canPack else { return m }
            // The SIMD kernels read a row-interleaved copy; the original pages are released as
            // they are packed (they fault back in for the few reads that still use them: the
            // embedding rows of a tied output matrix, rows past the last 8-row group).
            let start = t.offset
            return m.withPackedCopy(pool: packingPool) { rowsDone in
                self.file.releasePages(start..<(start + rowsDone * m.rowBytes))
            }
        } catch {
            problems.append(.unsupportedTensorType(path: path, tensor: name, type: t.type))
            return nil
        }
    }

    /// A vector of `count` floats (norm weights, biases). Non-F32 vectors are dequantized once.
    public func vector(_ name: String, count: Int) -> UnsafePointer<Float>? {
        guard let t = info(name, dims: [count]) else { return nil }
        if t.type == .f32 {
            return (file.base + t.offset).assumingMemoryBound(to: Float.self)
        }
        guard isSupported(t.type), count % t.type.blockSize == 0 else {
            problems.append(.unsupportedTensorType(path: path, tensor: name, type: t.type))
            return nil
        }
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: count)
        dequantize(t.type, file.base + t.offset, count: count, into: buf)
        owned.append(buf)
        return UnsafePointer(buf)
    }

    /// Throws one error describing everything that was wrong, if anything was.
    public func finish() throws {
        if !missing.isEmpty { throw ModelError.missingTensors(path: path, names: missing) }
        if let first = problems.first { throw first }
    }

    /// Takes ownership of a buffer that must live as long as the model.
    func adopt(_ buf: UnsafeMutablePointer<Float>) { owned.append(buf) }

    /// Memory kept alive for the model's lifetime (dequantized vectors).
    public func takeOwnedBuffers() -> [UnsafeMutablePointer<Float>] {
        defer { owned = [] }
        return owned
    }
}
