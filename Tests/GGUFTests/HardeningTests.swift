import Foundation
import GGUF
import Testing

/// The case name of an error ("truncated", "duplicateKey", ...).
func kind(_ e: GGUFError?) -> String {
    guard let e else { return "parsed" }
    return Mirror(reflecting: e).children.first?.label ?? String(describing: e)
}

/// Every error message is one line naming the file.
func expectWellFormed(_ e: GGUFError?, path: String = "mem.gguf", sourceLocation: SourceLocation = #_sourceLocation) {
    guard let e else { return }
    let d = e.description
    #expect(d.hasPrefix(path + ": "), "\(d)", sourceLocation: sourceLocation)
    #expect(!d.contains("\n") && !d.contains("\r"), "\(d)", sourceLocation: sourceLocation)
    #expect(d.count < 1200, sourceLocation: sourceLocation)
}

/// Patches the payload of metadata key `key` (just after its type tag).
func valueOffset(_ key: String, in b: [UInt8]) -> Int? {
    find(ggufString(key), in: b).map { $0 + 8 + key.utf8.count + 4 }
}

func typeOffset(_ key: String, in b: [UInt8]) -> Int? {
    find(ggufString(key), in: b).map { $0 + 8 + key.utf8.count }
}

@Suite("GGUF parser hardening")
struct HardeningTests {
    @Test func truncationAtEveryOffset() throws {
        let w = try smallFile()
        let full = w.bytes()
        let p = try parse(full)
        let dataEnd = p.tensors.map { $0.offset + $0.byteCount }.max() ?? full.count
        for n in 0..<full.count {
            let e = parseError(Array(full[0..<n]))
            expectWellFormed(e)
            if n < dataEnd {
                #expect(e != nil, "prefix of \(n) bytes parsed")
                let k = kind(e)
                #expect(["truncated", "notGGUF", "absurdCount", "tensorOutOfFile"].contains(k), "\(n): \(k)")
            } else {
                #expect(e == nil, "prefix of \(n) bytes (only padding cut) failed: \(String(describing: e))")
            }
        }
    }

    @Test func truncatedFilesOnDisk() throws {
        let dir = try temporaryDirectory("trunc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = try smallFile().bytes()
        for n in [0, 1, 3, 4, 8, 23, 24, 40, full.count / 2, full.count - 40] {
            let path = dir + "/t\(n).gguf"
            try Data(full[0..<n]).write(to: URL(fileURLWithPath: path))
            do {
                _ = try GGUFFile(path: path)
                Issue.record("\(n) bytes parsed")
            } catch let e as GGUFError {
                expectWellFormed(e, path: path)
                #expect(n > 0 || kind(e) == "notGGUF")
            }
        }
    }

    @Test func hugeStringLengths() throws {
        // Key length.
        var b = header(tensors: 0, kvs: 1) + u64le(.max) + Array("abc".utf8) + [UInt8](repeating: 0, count: 20)
        var e = parseError(b)
        #expect(kind(e) == "truncated")
        expectWellFormed(e)
        // String value length.
        b = header(tensors: 0, kvs: 1) + ggufString("k") + u32le(8) + u64le(1 << 62) + [0, 0]
        e = parseError(b)
        #expect(kind(e) == "truncated")
        // Tensor name length.
        b = header(tensors: 1, kvs: 0) + u64le(0xFFFF_FFFF) + [UInt8](repeating: 0, count: 40)
        e = parseError(b)
        #expect(kind(e) == "truncated")
        // A length just past the end.
        b = header(tensors: 0, kvs: 1) + ggufString("k") + u32le(8) + u64le(5) + Array("abcd".utf8)
        e = parseError(b)
        #expect(kind(e) == "truncated")
        #expect(e?.description.contains("'k'") == true)
    }

    @Test func hugeArrayCounts() throws {
        for (et, count) in [(UInt32(0), UInt64.max), (6, 1 << 62), (8, 1 << 40), (9, 1 << 33), (12, 3)] {
            let b = header(tensors: 0, kvs: 1) + ggufString("arr") + u32le(9) + u32le(et) + u64le(count) + [UInt8](repeating: 0, count: 20)
            let e = parseError(b)
            #expect(kind(e) == "absurdCount", "\(et) \(count): \(String(describing: e))")
            #expect(e?.description.contains("'arr'") == true)
            expectWellFormed(e)
        }
    }

    @Test func nestedArrayDepthBomb() throws {
        var b = header(tensors: 0, kvs: 1) + ggufString("bomb") + u32le(9)
        for _ in 0..<10_000 { b += u32le(9) + u64le(1) }
        b += u32le(0) + u64le(0)
        let e = parseError(b)
        #expect(kind(e) == "nestingTooDeep")
        #expect(e?.description.contains("'bomb'") == true)
        // Eight levels are fine.
        var ok = header(tensors: 0, kvs: 1) + ggufString("deep") + u32le(9)
        for _ in 0..<7 { ok += u32le(9) + u64le(1) }
        ok += u32le(0) + u64le(1) + [42]
        let p = try parse(ok)
        var v = try #require(p.metadata["deep"])
        var levels = 0
        while case .array(_, let items) = v, let first = items.first { v = first; levels += 1 }
        #expect(levels == 8 && v == .uint8(42))
    }

    @Test func absurdHeaderCounts() throws {
        for (t, k) in [(UInt64.max, UInt64(0)), (0, .max), (1 << 40, 0), (0, 1 << 40), (3, 0)] {
            let e = parseError(header(tensors: t, kvs: k) + [UInt8](repeating: 0, count: 64))
            #expect(["absurdCount", "truncated", "invalidTensorShape"].contains(kind(e)), "\(t) \(k): \(String(describing: e))")
            if t > 1000 || k > 1000 { #expect(kind(e) == "absurdCount") }
            expectWellFormed(e)
        }
    }

    @Test func badVersionsAndMagic() throws {
        #expect(kind(parseError(header(tensors: 0, kvs: 0, version: 1))) == "unsupportedVersion")
        let be = parseError(header(tensors: 0, kvs: 0, version: UInt32(3).byteSwapped))
        #expect(kind(be) == "unsupportedVersion")
        #expect(be?.description.contains("big-endian") == true)
        #expect(kind(parseError(Array("GGUG".utf8) + u32le(3) + u64le(0) + u64le(0))) == "notGGUF")
        #expect(kind(parseError([])) == "truncated")
        // Version 2 uses the same layout and is accepted.
        #expect(parseError(header(tensors: 0, kvs: 0, version: 2)) == nil)
    }

    @Test func tensorDimensions() throws {
        let base = try smallFile().bytes()
        let o = try #require(tensorEntry("a", in: base))
        for nd in [UInt32(0), 5, 0xFFFF_FFFF] {
            var b = base
            putU32(nd, at: o, in: &b)
            let e = parseError(b)
            #expect(kind(e) == "invalidTensorShape", "\(nd)")
            #expect(e?.description.contains("'a'") == true)
        }
        // A zero dimension and one beyond Int32.
        for d in [UInt64(0), 1 << 31, .max] {
            var b = base
            putU64(d, at: o + 4, in: &b)
            #expect(kind(parseError(b)) == "invalidTensorShape", "\(d)")
        }
        // Element-count overflow: four dimensions of 2^31 - 1.
        var w = GGUFWriter()
        try w.addTensor(name: "big", dims: [1, 1, 1, 1], f32: [0])
        var b = w.bytes()
        let ob = try #require(tensorEntry("big", in: b))
        for i in 0..<4 { putU64(UInt64(Int32.max), at: ob + 4 + 8 * i, in: &b) }
        let e = parseError(b)
        #expect(kind(e) == "invalidTensorShape")
        #expect(e?.description.contains("overflow") == true)
        // Huge but not overflowing: past the end of the file.
        b = w.bytes()
        putU64(1 << 30, at: ob + 4, in: &b)
        #expect(kind(parseError(b)) == "tensorOutOfFile")
        // Row length not a multiple of the block size.
        b = try smallFile().bytes()
        let oq = try #require(tensorEntry("q", in: b))
        putU64(16, at: oq + 4, in: &b)
        let eq = parseError(b)
        #expect(kind(eq) == "invalidTensorShape")
        #expect(eq?.description.contains("block size") == true)
    }

    @Test func tensorOffsets() throws {
        let base = try smallFile().bytes()
        let p = try parse(base)
        let ob = try #require(tensorEntry("b", in: base))
        let offsetField = ob + 4 + 8 + 4 // n_dims, one dim, type
        let relA = UInt64(try #require(p.tensors.first { $0.name == "a" }).offset - p.dataOffset)
        // Unaligned.
        var b = base
        putU64(relA + 1, at: offsetField, in: &b)
        var e = parseError(b)
        #expect(kind(e) == "tensorOutOfFile")
        #expect(e?.description.contains("aligned") == true)
        // Overlapping tensor a.
        b = base
        putU64(relA, at: offsetField, in: &b)
        e = parseError(b)
        #expect(kind(e) == "tensorsOverlap")
        #expect(e?.description.contains("'a'") == true && e?.description.contains("'b'") == true)
        // Beyond the end of the file, at the end, and near UInt64.max.
        for off in [UInt64(base.count), UInt64(base.count - p.dataOffset), 0xFFFF_FFFF_FFFF_FFE0, 1 << 62] {
            b = base
            putU64(off, at: offsetField, in: &b)
            e = parseError(b)
            #expect(kind(e) == "tensorOutOfFile", "\(off): \(String(describing: e))")
            expectWellFormed(e)
        }
    }

    @Test func alignmentValues() throws {
        let base = try smallFile(alignment: 32).bytes()
        let o = try #require(valueOffset("general.alignment", in: base))
        for a in [UInt32(0), 3, 48, 1 << 20, 0xFFFF_FFFF] {
            var b = base
            putU32(a, at: o, in: &b)
            let e = parseError(b)
            #expect(kind(e) == "badAlignment", "\(a)")
            #expect(e?.description.contains("general.alignment") == true)
        }
        // Alignment 1 and 8 are valid but make the existing offsets land elsewhere: either
        // parse or report out-of-file, never crash.
        for a in [UInt32(1), 8, 64] {
            var b = base
            putU32(a, at: o, in: &b)
            let e = parseError(b)
            #expect(["parsed", "tensorOutOfFile", "tensorsOverlap"].contains(kind(e)), "\(a): \(kind(e))")
        }
        // Wrong value type: a float / string alignment.
        var w = GGUFWriter()
        try w.add(key: "general.alignmenX", value: .float32(32))
        var b = w.bytes()
        let k = try #require(find(Array("general.alignmenX".utf8), in: b))
        b[k + 16] = UInt8(ascii: "t")
        let e = parseError(b)
        #expect(kind(e) == "invalidValue")
        #expect(e?.description.contains("general.alignment") == true)
    }

    @Test func unknownValueTypes() throws {
        let base = try smallFile().bytes()
        let t = try #require(typeOffset("test.u32", in: base))
        for raw in [UInt32(13), 0xFFFF_FFFF] {
            var b = base
            putU32(raw, at: t, in: &b)
            let e = parseError(b)
            #expect(kind(e) == "invalidValueType")
            #expect(e?.description.contains("'test.u32'") == true)
        }
        // Unknown array element type.
        let at = try #require(valueOffset("test.tokens", in: base))
        var b = base
        putU32(77, at: at, in: &b)
        #expect(kind(parseError(b)) == "invalidValueType")
        // A bool byte that is neither 0 nor 1.
        let bo = try #require(valueOffset("test.bool", in: base))
        b = base
        b[bo] = 2
        let e = parseError(b)
        #expect(kind(e) == "invalidValue")
        #expect(e?.description.contains("'test.bool'") == true)
    }

    @Test func unknownTensorTypes() throws {
        let base = try smallFile().bytes()
        let o = try #require(tensorEntry("b", in: base))
        for raw in [UInt32(4), 31, 40, 1000, 0xFFFF_FFFF] {
            var b = base
            putU32(raw, at: o + 4 + 8, in: &b)
            let e = parseError(b)
            #expect(kind(e) == "unknownTensorType", "\(raw)")
            #expect(e?.description.contains("'b'") == true && e?.description.contains("\(raw)") == true)
        }
    }

    @Test func duplicates() throws {
        var w = GGUFWriter()
        try w.add(key: "dup.a", value: .uint8(1))
        try w.add(key: "dup.b", value: .string("x"))
        try w.addTensor(name: "t.a", dims: [1], f32: [1])
        try w.addTensor(name: "t.b", dims: [1], f32: [2])
        let base = w.bytes()
        var b = base
        let k = try #require(find(Array("dup.b".utf8), in: b))
        b[k + 4] = UInt8(ascii: "a")
        var e = parseError(b)
        #expect(kind(e) == "duplicateKey")
        #expect(e?.description.contains("'dup.a'") == true)
        b = base
        let t = try #require(find(Array("t.b".utf8), in: b))
        b[t + 2] = UInt8(ascii: "a")
        e = parseError(b)
        #expect(kind(e) == "duplicateTensor")
        #expect(e?.description.contains("'t.a'") == true)
    }

    @Test func hostileNamesStayOnOneLine() throws {
        var w = GGUFWriter()
        try w.add(key: "evil\nError: fake\r\u{1B}[31m", value: .uint8(1))
        var b = w.bytes()
        let k = try #require(valueOffset("evil\nError: fake\r\u{1B}[31m", in: b))
        putU32(99, at: k - 4, in: &b)
        let e = parseError(b)
        #expect(kind(e) == "invalidValueType")
        expectWellFormed(e)
        #expect(e?.description.contains("\\n") == true)
        let long = String(repeating: "x", count: 100_000)
        let d = GGUFError.duplicateTensor(path: "p", name: long).description
        #expect(d.count < 300)
    }

    @Test func specialFiles() throws {
        let dir = try temporaryDirectory("special")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func openError(_ path: String) -> GGUFError? {
            do { _ = try GGUFFile(path: path); return nil } catch { return error as? GGUFError }
        }
        // Missing file.
        var e = openError(dir + "/missing.gguf")
        #expect(kind(e) == "cannotOpen")
        #expect(e?.description.contains("No such file") == true)
        // Directory.
        e = openError(dir)
        #expect(kind(e) == "cannotOpen")
        #expect(e?.description.contains("not a regular file") == true)
        // Empty file.
        #expect(FileManager.default.createFile(atPath: dir + "/empty.gguf", contents: Data()))
        #expect(kind(openError(dir + "/empty.gguf")) == "notGGUF")
        // Character device.
        #expect(kind(openError("/dev/null")) == "cannotOpen")
        // FIFO with no writer: must return at once, not wait for a writer.
        let fifo = dir + "/pipe.gguf"
        #expect(mkfifo(fifo, 0o600) == 0)
        let start = Date()
        let unblock = Thread {
            // Safety net so a regression fails instead of hanging the suite.
            Thread.sleep(forTimeInterval: 3)
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        unblock.start()
        e = openError(fifo)
        #expect(Date().timeIntervalSince(start) < 2, "opening a FIFO blocked")
        #expect(kind(e) == "cannotOpen")
        #expect(e?.description.contains("not a regular file") == true)
        // Unreadable file (root reads anything, so only checked for other users).
        let locked = dir + "/locked.gguf"
        try Data(try smallFile().bytes()).write(to: URL(fileURLWithPath: locked))
        #expect(chmod(locked, 0) == 0)
        if geteuid() != 0 {
            e = openError(locked)
            #expect(kind(e) == "cannotOpen")
            #expect(e?.description.contains("Permission denied") == true)
        }
    }
}
