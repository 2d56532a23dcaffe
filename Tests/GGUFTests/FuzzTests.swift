import Foundation
import GGUF
import Testing

/// SplitMix64: small, seeded, identical on every platform.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}

@Suite("GGUF fuzz")
struct FuzzTests {
    static let interesting32: [UInt32] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 31, 32, 33, 40, 63, 64, 255, 256,
                                          0x7FFF, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
    static let interesting64: [UInt64] = [0, 1, 8, 32, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
                                          0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFE0, 1 << 40]

    static func corpus() throws -> [[UInt8]] {
        var out = [try smallFile().bytes(), try smallFile(alignment: 8).bytes(), try Fixture.allTypes()]
        var w = GGUFWriter()
        try w.add(key: "general.architecture", value: .string("qwen2"))
        try w.add(key: "tokenizer.ggml.tokens", value: .array(.string, (0..<20).map { .string("t\($0)") }))
        try w.add(key: "deep", value: .array(.array, [.array(.array, [.array(.float32, [.float32(1)])])]))
        try w.add(key: "general.alignment", value: .uint32(16))
        for i in 0..<4 { try w.addTensor(name: "blk.\(i).w", dims: [32, 2], type: .q8_0, bytes: [UInt8](repeating: UInt8(i), count: 68)) }
        out.append(w.bytes())
        return out
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64, corpus: [[UInt8]]) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + rng.below(4)) {
            if b.isEmpty { b = [0x47] }
            // Mutations favour the header and directory, where the parser makes decisions.
            let hot = rng.below(3) > 0 ? min(b.count, 512) : b.count
            let at = rng.below(hot)
            switch rng.below(9) {
            case 0: b[at] ^= UInt8(1) << UInt8(rng.below(8))                      // bit flip
            case 1: b[at] = UInt8(truncatingIfNeeded: rng.next())                // byte set
            case 2: b[at] = [0, 1, 0x7F, 0x80, 0xFF][rng.below(5)]
            case 3:                                                               // u32 splice
                if at + 4 <= b.count { putU32(interesting32[rng.below(interesting32.count)], at: at, in: &b) }
            case 4:                                                               // u64 splice
                if at + 8 <= b.count { putU64(interesting64[rng.below(interesting64.count)], at: at, in: &b) }
            case 5: b.removeSubrange(rng.below(b.count)...)                       // truncation
            case 6:                                                               // delete a range
                let n = min(b.count - at, 1 + rng.below(16))
                b.removeSubrange(at..<(at + n))
            case 7:                                                               // insert random bytes
                b.insert(contentsOf: (0..<(1 + rng.below(16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            default:                                                              // splice from another file
                let src = corpus[rng.below(corpus.count)]
                let from = rng.below(src.count)
                let n = min(src.count - from, 1 + rng.below(64), b.count - at)
                if n > 0 { b.replaceSubrange(at..<(at + n), with: src[from..<(from + n)]) }
            }
        }
        return b
    }

    /// What a successful parse promises: every tensor inside the file, aligned, disjoint.
    static func checkInvariants(_ p: GGUFParser.Parsed, size: Int) -> String? {
        var spans: [(Int, Int)] = []
        for t in p.tensors {
            guard t.offset >= p.dataOffset, t.byteCount > 0, t.offset + t.byteCount <= size else { return "\(t.name) outside" }
            guard (t.offset - p.dataOffset) % p.alignment == 0 else { return "\(t.name) unaligned" }
            guard t.dims.count >= 1, t.dims.count <= 4, t.type.byteCount(elements: t.elementCount) == t.byteCount else {
                return "\(t.name) shape"
            }
            spans.append((t.offset, t.offset + t.byteCount))
        }
        spans.sort { $0.0 < $1.0 }
        for i in spans.indices.dropFirst() where spans[i].0 < spans[i - 1].1 { return "overlap" }
        guard p.keys.count == p.metadata.count, Set(p.keys).count == p.keys.count else { return "keys" }
        return nil
    }

    @Test func tenThousandMutations() throws {
        let corpus = try Self.corpus()
        for c in corpus { #expect(parseError(c) == nil) }
        var rng = SplitMix64(state: 0x6767_7566_2024)
        var outcomes: [String: Int] = [:]
        let n = 12_000
        let start = Date()
        for i in 0..<n {
            let m = Self.mutate(corpus[i % corpus.count], &rng, corpus: corpus)
            do {
                let p = try parse(m)
                outcomes["parsed", default: 0] += 1
                if let bad = Self.checkInvariants(p, size: m.count) { Issue.record("mutation \(i): \(bad)") }
            } catch let e as GGUFError {
                outcomes[kind(e), default: 0] += 1
                let d = e.description
                if !d.hasPrefix("mem.gguf: ") || d.contains("\n") { Issue.record("mutation \(i): bad message \(d)") }
            } catch {
                Issue.record("mutation \(i): unexpected error \(error)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print("GGUF fuzz: \(n) mutations in \(String(format: "%.2f", seconds)) s: \(outcomes.sorted { $0.key < $1.key })")
        #expect(outcomes.values.reduce(0, +) == n)
        // The mutations must exercise the parser broadly, not just one rejection path.
        #expect((outcomes["parsed"] ?? 0) > 100)
        #expect(outcomes.count >= 10, "\(outcomes)")
        #expect(seconds < 60)
    }

    /// A smaller run through the file API (mmap path, on disk).
    @Test func mutatedFilesOnDisk() throws {
        let corpus = try Self.corpus()
        let dir = try temporaryDirectory("fuzz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(state: 42)
        for i in 0..<300 {
            let m = Self.mutate(corpus[i % corpus.count], &rng, corpus: corpus)
            let path = dir + "/m\(i % 8).gguf"
            try Data(m).write(to: URL(fileURLWithPath: path))
            do {
                let f = try GGUFFile(path: path)
                for t in f.tensors { _ = f.data(of: t).reduce(0 as UInt8) { $0 &+ $1 } } // touch every byte
            } catch let e as GGUFError {
                #expect(e.description.hasPrefix(path + ": "))
            }
        }
    }
}
