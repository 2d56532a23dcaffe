import Foundation
import GGUF
import Testing

/// Canonical text of a value, the same form scripts/make-gguf-fixtures.py writes:
/// integers in decimal, floats as hex bit patterns, strings as hex UTF-8, arrays as
/// `array<elem>[item,...]`.
func canonical(_ v: GGUFValue) -> String {
    switch v {
    case .float32(let f): return "f32:" + hex(UInt64(f.bitPattern), digits: 8)
    case .float64(let d): return "f64:" + hex(d.bitPattern, digits: 16)
    case .bool(let b): return "bool:\(b)"
    case .string(let s): return "string:" + Array(s.utf8).map { hex(UInt64($0), digits: 2) }.joined()
    case .array(let t, let items): return "array<\(t)>[" + items.map(canonical).joined(separator: ",") + "]"
    case .uint8(let x): return "u8:\(x)"
    case .int8(let x): return "i8:\(x)"
    case .uint16(let x): return "u16:\(x)"
    case .int16(let x): return "i16:\(x)"
    case .uint32(let x): return "u32:\(x)"
    case .int32(let x): return "i32:\(x)"
    case .uint64(let x): return "u64:\(x)"
    case .int64(let x): return "i64:\(x)"
    }
}

func hex(_ v: UInt64, digits: Int) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, digits - s.count)) + s
}

func hexBytes(_ b: some Sequence<UInt8>) -> String { b.map { hex(UInt64($0), digits: 2) }.joined() }

enum Fixture {
    static func url(_ name: String) throws -> URL {
        guard let base = Bundle.module.resourceURL else { throw GGUFError.writer("no resource bundle") }
        return base.appendingPathComponent("Fixtures").appendingPathComponent(name)
    }

    static func path(_ name: String) throws -> String { try url(name).path }
    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: url(name))) }
}

/// A fresh directory for one test's files.
func temporaryDirectory(_ tag: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("gguf-tests-\(getpid())-\(tag)-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}

/// Parses an in-memory file.
func parse(_ bytes: [UInt8], path: String = "mem.gguf") throws -> GGUFParser.Parsed {
    try bytes.withUnsafeBytes { try GGUFParser.parse($0, path: path) }
}

/// Parses and returns the GGUFError thrown (nil when the bytes parse). Any other error
/// type fails the test.
func parseError(_ bytes: [UInt8], path: String = "mem.gguf",
                sourceLocation: SourceLocation = #_sourceLocation) -> GGUFError? {
    do {
        _ = try parse(bytes, path: path)
        return nil
    } catch let e as GGUFError {
        return e
    } catch {
        Issue.record("non-GGUFError thrown: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Small valid file used by the hardening tests: a few keys of different types and three
/// tensors.
func smallFile(alignment: Int? = nil) throws -> GGUFWriter {
    var w = GGUFWriter()
    try w.add(key: "general.architecture", value: .string("qwen2"))
    if let alignment { try w.add(key: "general.alignment", value: .uint32(UInt32(alignment))) }
    try w.add(key: "test.u32", value: .uint32(7))
    try w.add(key: "test.bool", value: .bool(true))
    try w.add(key: "test.tokens", value: .array(.string, [.string("a"), .string("bc")]))
    try w.add(key: "test.nested", value: .array(.array, [.array(.int32, [.int32(1)]), .array(.int32, [])]))
    try w.addTensor(name: "a", dims: [4, 2], f32: (0..<8).map(Float.init))
    try w.addTensor(name: "b", dims: [3], f32: [1, 2, 3])
    try w.addTensor(name: "q", dims: [32], type: .q8_0, bytes: [UInt8](repeating: 1, count: 34))
    return w
}

/// Byte offset of the first occurrence of `needle` in `hay`.
func find(_ needle: [UInt8], in hay: [UInt8], from start: Int = 0) -> Int? {
    guard !needle.isEmpty, hay.count >= needle.count else { return nil }
    var i = start
    while i + needle.count <= hay.count {
        if hay[i] == needle[0], Array(hay[i..<(i + needle.count)]) == needle { return i }
        i += 1
    }
    return nil
}

/// Offset of a tensor directory entry's fields: returns the offset just after its name.
func tensorEntry(_ name: String, in bytes: [UInt8]) -> Int? {
    var len = withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian) { Array($0) }
    len.append(contentsOf: Array(name.utf8))
    // The directory follows the metadata: take the last match.
    var last: Int?
    var from = 0
    while let i = find(len, in: bytes, from: from) { last = i; from = i + 1 }
    return last.map { $0 + len.count }
}

func putU32(_ v: UInt32, at o: Int, in b: inout [UInt8]) {
    for k in 0..<4 { b[o + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
}

func putU64(_ v: UInt64, at o: Int, in b: inout [UInt8]) {
    for k in 0..<8 { b[o + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
}

func u32le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func u64le(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func ggufString(_ s: String) -> [UInt8] { u64le(UInt64(s.utf8.count)) + Array(s.utf8) }

/// A hand-built header: magic, version, counts.
func header(tensors: UInt64, kvs: UInt64, version: UInt32 = 3) -> [UInt8] {
    Array("GGUF".utf8) + u32le(version) + u64le(tensors) + u64le(kvs)
}
