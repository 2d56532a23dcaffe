#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a GGUF version 3 file in memory (test fixtures, conversion tools).
///
/// Layout: header, metadata in insertion order, tensor directory in insertion order, zero
/// padding up to `alignment`, then each tensor's bytes padded to `alignment`. Tensor
/// offsets are relative to the start of the data section. Setting `general.alignment`
/// (any integer type) changes the alignment, as it does for readers.
///
/// Everything added is validated when added, so `bytes()` always produces a file that
/// `GGUFFile` accepts.
public struct GGUFWriter: Sendable {
    public struct Tensor: Sendable, Equatable {
        public let name: String
        /// ggml order: dims[0] is the contiguous (innermost) dimension.
        public let dims: [Int]
        public let type: GGMLType
        public let bytes: [UInt8]
    }

    public static let version: UInt32 = 3
    public static let defaultAlignment = 32

    /// Metadata keys in the order they are written.
    public private(set) var keys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    public private(set) var tensors: [Tensor] = []
    private var tensorNames: Set<String> = []

    public init() {}

    /// The data alignment the file will use (`general.alignment` or 32).
    public var alignment: Int { metadata["general.alignment"]?.int ?? GGUFWriter.defaultAlignment }

    /// Adds a metadata value, or replaces the value of an existing key in place (keeping
    /// its position). Arrays must hold only values of their declared element type.
    public mutating func add(key: String, value: GGUFValue) throws(GGUFError) {
        try GGUFWriter.check(value, key: key, depth: 0)
        if key == "general.alignment" {
            guard value.type != .bool, value.type != .array, let a = value.int else {
                throw GGUFError.writer("general.alignment must be an integer (got \(value.type))")
            }
            guard a > 0, a <= 65536, a & (a - 1) == 0 else {
                throw GGUFError.writer("general.alignment \(a) is not a power of two between 1 and 65536")
            }
        }
        if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Removes a metadata key (no effect when absent).
    public mutating func remove(key: String) {
        guard metadata.removeValue(forKey: key) != nil else { return }
        keys.removeAll { $0 == key }
    }

    /// Adds a tensor from its raw block bytes (`type.byteCount(elements:)` bytes).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, bytes: [UInt8]) throws(GGUFError) {
        guard !tensorNames.contains(name) else { throw GGUFError.writer("duplicate tensor name '\(name)'") }
        guard (1...GGUFParser.maxDims).contains(dims.count) else {
            throw GGUFError.writer("tensor '\(name)' has \(dims.count) dimensions (expected 1 to \(GGUFParser.maxDims))")
        }
        var count = 1
        for d in dims {
            guard d >= 1, d <= Int(Int32.max) else {
                throw GGUFError.writer("tensor '\(name)' has dimension \(d) (expected 1 ... \(Int32.max))")
            }
            let (m, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw GGUFError.writer("tensor '\(name)': element count overflows") }
            count = m
        }
        guard dims[0] % type.blockSize == 0 else {
            throw GGUFError.writer("tensor '\(name)': row length \(dims[0]) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        guard let expected = type.byteCount(elements: count), expected == bytes.count else {
            throw GGUFError.writer("tensor '\(name)': \(bytes.count) bytes given, \(type) \(dims) needs \(type.byteCount(elements: count) ?? -1)")
        }
        tensorNames.insert(name)
        tensors.append(Tensor(name: name, dims: dims, type: type, bytes: bytes))
    }

    /// Adds an F32 tensor (stored little-endian).
    public mutating func addTensor(name: String, dims: [Int], f32 values: [Float]) throws(GGUFError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for v in values {
            let b = v.bitPattern
            bytes.append(UInt8(truncatingIfNeeded: b))
            bytes.append(UInt8(truncatingIfNeeded: b >> 8))
            bytes.append(UInt8(truncatingIfNeeded: b >> 16))
            bytes.append(UInt8(truncatingIfNeeded: b >> 24))
        }
        try addTensor(name: name, dims: dims, type: .f32, bytes: bytes)
    }

    /// The complete file.
    public func bytes() -> [UInt8] {
        let align = alignment
        var out = ByteSink()
        out.u32(0x4655_4747) // "GGUF"
        out.u32(GGUFWriter.version)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(keys.count))
        for key in keys {
            guard let value = metadata[key] else { continue }
            out.string(key)
            out.u32(value.type.rawValue)
            out.payload(value)
        }
        var offset = 0
        for t in tensors {
            out.string(t.name)
            out.u32(UInt32(t.dims.count))
            for d in t.dims { out.u64(UInt64(d)) }
            out.u32(t.type.rawValue)
            out.u64(UInt64(offset))
            offset += GGUFWriter.padded(t.bytes.count, align)
        }
        out.pad(to: align)
        for t in tensors {
            out.bytes.append(contentsOf: t.bytes)
            out.pad(to: align)
        }
        return out.bytes
    }

    /// Writes the file (replacing any existing one).
    public func write(to path: String) throws(GGUFError) {
        let data = bytes()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { buf in
                // `done < data.count` so the base address exists.
                posixWrite(fd, buf.baseAddress.map { $0 + done }, data.count - done)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw GGUFError.writer("\(path): write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    static func padded(_ n: Int, _ align: Int) -> Int { (n + align - 1) / align * align }

    private static func check(_ v: GGUFValue, key: String, depth: Int) throws(GGUFError) {
        guard case .array(let et, let items) = v else { return }
        guard depth < GGUFParser.maxArrayDepth else {
            throw GGUFError.writer("metadata key '\(key)' nests arrays more than \(GGUFParser.maxArrayDepth) deep")
        }
        for item in items {
            guard item.type == et else {
                throw GGUFError.writer("metadata key '\(key)': array of \(et) holds a \(item.type)")
            }
            try check(item, key: key, depth: depth + 1)
        }
    }
}

@inline(__always)
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int) -> Int {
    write(fd, p, n)
}

/// Little-endian byte output.
struct ByteSink {
    var bytes: [UInt8] = []

    mutating func int<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }

    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        u64(UInt64(u.count))
        bytes.append(contentsOf: u)
    }

    mutating func pad(to align: Int) {
        let n = GGUFWriter.padded(bytes.count, align) - bytes.count
        bytes.append(contentsOf: repeatElement(0, count: n))
    }

    /// The value without its type tag (array elements carry none; nested arrays carry
    /// their own element type and count).
    mutating func payload(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): int(x)
        case .int8(let x): int(x)
        case .uint16(let x): int(x)
        case .int16(let x): int(x)
        case .uint32(let x): int(x)
        case .int32(let x): int(x)
        case .uint64(let x): int(x)
        case .int64(let x): int(x)
        case .float32(let x): int(x.bitPattern)
        case .float64(let x): int(x.bitPattern)
        case .bool(let b): bytes.append(b ? 1 : 0)
        case .string(let s): string(s)
        case .array(let et, let items):
            u32(et.rawValue)
            u64(UInt64(items.count))
            for item in items { payload(item) }
        }
    }
}
