#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's directory entry. `offset` is absolute in the file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Dimensions as stored (ggml order: ne[0] is the contiguous, innermost one).
    public let dims: [Int]
    public let type: GGMLType
    /// Absolute byte offset of the first element in the file.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
}

/// A GGUF file mapped read-only into memory. Parsing validates every length, count and
/// offset against the file size, so malformed input produces a `GGUFError`, never a crash.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset where the tensor data section begins.
    public let dataOffset: Int
    public let fileSize: Int
    /// Start of the mapping (the whole file).
    public let base: UnsafeRawPointer
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is rejected below as
        // not a regular file); it has no effect on regular files.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError.cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 4 else {
            if size == 0 { throw GGUFError.notGGUF(path: path) }
            throw GGUFError.truncated(path: path, offset: 0, needed: 4, what: "magic")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap failed: " + String(cString: strerror(errno)))
        }
        var ok = false
        defer { if !ok { munmap(mapped, size) } }
        let base = UnsafeRawPointer(mapped)
        let parsed = try GGUFParser.parse(UnsafeRawBufferPointer(start: base, count: size), path: path)
        self.version = parsed.version
        self.metadataKeys = parsed.keys
        self.metadata = parsed.metadata
        self.tensors = parsed.tensors
        self.alignment = parsed.alignment
        self.dataOffset = parsed.dataOffset
        self.fileSize = size
        self.base = base
        var index: [String: Int] = [:]
        for (i, t) in parsed.tensors.enumerated() { index[t.name] = i }
        self.tensorIndex = index
        ok = true
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), fileSize)
    }

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor's bytes inside the mapping (valid while this object lives).
    public func data(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + info.offset, count: info.byteCount)
    }

    /// Hint the kernel to read the tensor data ahead (weights are used immediately).
    public func adviseWillNeed() {
        let start = UnsafeMutableRawPointer(mutating: base)
        _ = madvise(start, fileSize, MADV_WILLNEED)
    }

    /// Drops this process's resident copy of the whole pages inside `range` (byte offsets in the
    /// file), e.g. after their tensor was copied into another layout; reading them again later
    /// simply faults them back in from the file.
    public func releasePages(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let lo = (max(0, range.lowerBound) + page - 1) / page * page
        let hi = min(fileSize, range.upperBound) / page * page
        guard hi > lo else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, MADV_DONTNEED)
    }

    // Typed metadata accessors.
    public subscript(key: String) -> GGUFValue? { metadata[key] }
    public func string(_ key: String) -> String? { metadata[key]?.string }
    public func int(_ key: String) -> Int? { metadata[key]?.int }
    public func float(_ key: String) -> Float? { metadata[key]?.float }
    public func bool(_ key: String) -> Bool? { metadata[key]?.bool }
    public var architecture: String? { string("general.architecture") }
}

/// Parsing over an in-memory byte buffer (used by the file reader and by tests on buffers).
public enum GGUFParser {
    public struct Parsed: Sendable {
        public var version: UInt32
        public var keys: [String]
        public var metadata: [String: GGUFValue]
        public var tensors: [GGUFTensorInfo]
        public var alignment: Int
        public var dataOffset: Int
    }

    static let maxDims = 4
    static let maxArrayDepth = 8

    public static func parse(_ buf: UnsafeRawBufferPointer, path: String) throws -> Parsed {
        var r = Reader(buf: buf, path: path)
        let magic = try r.u32("magic")
        guard magic == 0x4655_4747 else { throw GGUFError.notGGUF(path: path) }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else {
            throw GGUFError.unsupportedVersion(path: path, version: version)
        }
        let tensorCount = try r.u64("tensor count")
        let kvCount = try r.u64("metadata count")
        // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8+4+8+4+8.
        let kvLimit = r.remaining / 13
        guard kvCount <= UInt64(kvLimit) else {
            throw GGUFError.absurdCount(path: path, what: "metadata key", count: kvCount, limit: kvLimit)
        }
        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<Int(kvCount) {
            let key = try r.string("metadata key")
            let rawType = try r.u32("type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.invalidValueType(path: path, key: key, raw: rawType)
            }
            let value = try r.value(type, key: key, depth: 0)
            guard metadata[key] == nil else { throw GGUFError.duplicateKey(path: path, key: key) }
            keys.append(key)
            metadata[key] = value
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, a.type != .bool else {
                throw GGUFError.invalidValue(path: path, key: "general.alignment",
                                             detail: "must be an integer (is a \(a.type))")
            }
            guard v > 0, v <= 65536, v & (v - 1) == 0 else {
                throw GGUFError.badAlignment(path: path, alignment: v)
            }
            alignment = v
        }
        let tLimit = r.remaining / 32
        guard tensorCount <= UInt64(tLimit) else {
            throw GGUFError.absurdCount(path: path, what: "tensor", count: tensorCount, limit: tLimit)
        }
        struct Raw { var name: String; var dims: [Int]; var type: GGMLType; var rel: UInt64 }
        var raws: [Raw] = []
        raws.reserveCapacity(Int(tensorCount))
        var seen = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let name = try r.string("tensor name")
            let nd = try r.u32("dimension count of '\(name)'")
            guard nd >= 1, nd <= UInt32(maxDims) else {
                throw GGUFError.invalidTensorShape(path: path, tensor: name,
                    detail: "has \(nd) dimensions (expected 1 to \(maxDims))")
            }
            var dims: [Int] = []
            for _ in 0..<Int(nd) {
                let d = try r.u64("dimension of '\(name)'")
                guard d >= 1, d <= UInt64(Int32.max) else {
                    throw GGUFError.invalidTensorShape(path: path, tensor: name,
                        detail: "dimension \(d) is out of range (1 ... \(Int32.max))")
                }
                dims.append(Int(d))
            }
            let rawType = try r.u32("type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unknownTensorType(path: path, tensor: name, raw: rawType)
            }
            let rel = try r.u64("offset of '\(name)'")
            guard seen.insert(name).inserted else { throw GGUFError.duplicateTensor(path: path, name: name) }
            raws.append(Raw(name: name, dims: dims, type: type, rel: rel))
        }
        let headerEnd = r.offset
        let dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        let size = buf.count
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(raws.count)
        for raw in raws {
            var count = 1
            for d in raw.dims {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else {
                    throw GGUFError.invalidTensorShape(path: path, tensor: raw.name, detail: "element count overflows")
                }
                count = m
            }
            guard raw.dims[0] % raw.type.blockSize == 0 else {
                throw GGUFError.invalidTensorShape(path: path, tensor: raw.name,
                    detail: "row length \(raw.dims[0]) is not a multiple of the \(raw.type) block size \(raw.type.blockSize)")
            }
            guard let bytes = raw.type.byteCount(elements: count) else {
                throw GGUFError.invalidTensorShape(path: path, tensor: raw.name, detail: "byte size overflows")
            }
            guard raw.rel % UInt64(alignment) == 0 else {
                throw GGUFError.tensorOutOfFile(path: path, tensor: raw.name,
                    detail: "offset \(raw.rel) is not aligned to \(alignment)")
            }
            guard raw.rel <= UInt64(size), dataOffset <= size,
                  Int(raw.rel) <= size - dataOffset, bytes <= size - dataOffset - Int(raw.rel) else {
                throw GGUFError.tensorOutOfFile(path: path, tensor: raw.name,
                    detail: "(\(bytes) bytes at data offset \(raw.rel)) extends past the end of the file (\(size) bytes)")
            }
            tensors.append(GGUFTensorInfo(name: raw.name, dims: raw.dims, type: raw.type,
                                          offset: dataOffset + Int(raw.rel), byteCount: bytes))
        }
        // Overlap check over tensors sorted by offset (zero-sized tensors cannot exist: dims >= 1).
        let sorted = tensors.sorted { $0.offset < $1.offset }
        if sorted.count > 1 {
            for i in 1..<sorted.count where sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].byteCount {
                throw GGUFError.tensorsOverlap(path: path, first: sorted[i - 1].name, second: sorted[i].name)
            }
        }
        return Parsed(version: version, keys: keys, metadata: metadata, tensors: tensors,
                      alignment: alignment, dataOffset: dataOffset)
    }

    struct Reader {
        let buf: UnsafeRawBufferPointer
        let path: String
        var offset = 0
        var remaining: Int { buf.count - offset }

        init(buf: UnsafeRawBufferPointer, path: String) { self.buf = buf; self.path = path }

        mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
            guard n <= remaining else {
                throw GGUFError.truncated(path: path, offset: offset, needed: n, what: what())
            }
        }

        mutating func load<T: FixedWidthInteger>(_ t: T.Type, _ what: @autoclosure () -> String) throws -> T {
            try need(MemoryLayout<T>.size, what())
            let v = buf.loadUnaligned(fromByteOffset: offset, as: T.self)
            offset += MemoryLayout<T>.size
            return T(littleEndian: v)
        }

        mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }
        mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, what()) }

        mutating func string(_ what: @autoclosure () -> String) throws -> String {
            let len = try u64("length of \(what())")
            guard len <= UInt64(remaining) else {
                throw GGUFError.truncated(path: path, offset: offset, needed: Int(clamping: len), what: what())
            }
            let n = Int(len)
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: buf[offset..<offset + n]), as: UTF8.self)
            offset += n
            return s
        }

        mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
            // The description is built only when an error is thrown (arrays hold many values).
            func what() -> String { "value of '\(key)'" }
            switch type {
            case .uint8: return .uint8(try load(UInt8.self, what()))
            case .int8: return .int8(try load(Int8.self, what()))
            case .uint16: return .uint16(try load(UInt16.self, what()))
            case .int16: return .int16(try load(Int16.self, what()))
            case .uint32: return .uint32(try load(UInt32.self, what()))
            case .int32: return .int32(try load(Int32.self, what()))
            case .uint64: return .uint64(try load(UInt64.self, what()))
            case .int64: return .int64(try load(Int64.self, what()))
            case .float32: return .float32(Float(bitPattern: try load(UInt32.self, what())))
            case .float64: return .float64(Double(bitPattern: try load(UInt64.self, what())))
            case .bool:
                let at = offset
                let b = try load(UInt8.self, what())
                guard b <= 1 else {
                    throw GGUFError.invalidValue(path: path, key: key,
                                                 detail: "bool byte \(b) at offset \(at) is neither 0 nor 1")
                }
                return .bool(b == 1)
            case .string: return .string(try string(what()))
            case .array:
                guard depth < GGUFParser.maxArrayDepth else { throw GGUFError.nestingTooDeep(path: path, key: key) }
                let rawType = try u32("array type of '\(key)'")
                guard let et = GGUFValueType(rawValue: rawType) else {
                    throw GGUFError.invalidValueType(path: path, key: key, raw: rawType)
                }
                let count = try u64("array length of '\(key)'")
                let minSize: Int
                switch et {
                case .uint8, .int8, .bool: minSize = 1
                case .uint16, .int16: minSize = 2
                case .uint32, .int32, .float32: minSize = 4
                case .uint64, .int64, .float64, .string: minSize = 8
                case .array: minSize = 12
                }
                let limit = remaining / minSize
                guard count <= UInt64(limit) else {
                    throw GGUFError.absurdCount(path: path, what: "array '\(key)' element", count: count, limit: limit)
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<Int(count) {
                    items.append(try value(et, key: key, depth: depth + 1))
                }
                return .array(et, items)
            }
        }
    }
}
