import Foundation
import GGUF
import Kernels
import Models
import Testing
import Tokenizers

/// Fuzzing of the GGUF metadata an architecture reads: every numeric key of every tiny model
/// is set to each hostile value (and seeded random combinations of several keys), the file is
/// loaded, and whatever the loader accepts must run a batched forward pass without crashing and
/// give finite logits. A crash here is a crash of `generate`/`serve` on a crafted file; the
/// values that once crashed are kept in `regressions` below.
@Suite("GGUF metadata fuzz", .serialized)
struct MetadataFuzzTests {
    static let hostileInts: [GGUFValue] = [
        .int32(0), .int32(-1), .int32(-2), .int32(1), .int32(2), .int32(3), .int32(7), .int32(63), .int32(65),
        .uint32(4096), .uint32(1 << 20), .uint32(1 << 24), .int32(Int32.max), .int32(Int32.min),
        .int64(Int64.max), .int64(Int64.min), .uint64(UInt64.max), .uint64(1 << 40),
        .float32(2), .string("8"), .bool(true), .array(.uint32, [.uint32(4)]),
    ]
    static let hostileFloats: [GGUFValue] = [
        .float32(0), .float32(-0.0), .float32(-1), .float32(1e-30), .float32(1e30), .float32(.nan),
        .float32(.infinity), .float32(-.infinity), .float32(1), .float32(0.5), .float64(1e300), .float64(-1e-300),
        .int32(-5), .uint32(0), .string("1e-6"),
    ]
    /// Values the loader must refuse with an error. Before the hyperparameters were
    /// range-checked, a sliding window ≤ 0 sized attention's score buffer negatively (a crash),
    /// and NaN or negative epsilons and a RoPE base of 0 ran and produced garbage.
    static let regressions: [(file: String, key: String, value: GGUFValue)] = [
        ("gemma3", "gemma3.attention.sliding_window", .int32(-5)),
        ("gemma3", "gemma3.attention.sliding_window", .uint32(0)),
        ("gemma3", "gemma3.attention.sliding_window", .int64(Int64.min)),
        ("gemma3", "gemma3.context_length", .int32(-1)),
        ("llama-q", "llama.attention.layer_norm_rms_epsilon", .float32(.nan)),
        ("llama-q", "llama.attention.layer_norm_rms_epsilon", .float32(-1)),
        ("llama-q", "llama.rope.freq_base", .float32(0)),
        ("qwen3-q", "qwen3.attention.head_count_kv", .int32(-1)),
        ("glm4-q", "glm4.attention.key_length", .uint32(1 << 24)),
    ]

    struct Base {
        let name: String
        let file: GGUFFile
    }

    static func bases() throws -> [Base] {
        var out: [Base] = []
        let dir = try ReferenceFixtures.directory()
        for e in try ReferenceFixtures.entries() where e.quantized {
            try ReferenceFixtures.verify(e)
            out.append(Base(name: "\(e.architecture)-q", file: try GGUFFile(path: dir.appendingPathComponent(e.model).path)))
        }
        let tiny = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-gemma3-\(getpid()).gguf").path
        try TinyGemma3.writer().write(to: tiny)
        out.append(Base(name: "gemma3", file: try GGUFFile(path: tiny)))
        return out
    }

    /// Rewrites `base` with `overrides` applied to its metadata, tensors unchanged.
    static func mutated(_ base: GGUFFile, _ overrides: [String: GGUFValue], to path: String) throws -> GGUFFile {
        var w = GGUFWriter()
        for k in base.metadataKeys {
            if k == "general.alignment" { continue }
            guard let v = overrides[k] ?? base.metadata[k] else { continue }
            try w.add(key: k, value: v)
        }
        for (k, v) in overrides where base.metadata[k] == nil { try w.add(key: k, value: v) }
        for t in base.tensors {
            try w.addTensor(name: t.name, dims: t.dims, type: t.type, bytes: Array(base.data(of: t)))
        }
        try w.write(to: path)
        return try GGUFFile(path: path)
    }

    /// Loads the file; when the loader accepts it, runs a batch of two sequences (a 5-token
    /// prefill and a 1-token step) and checks the logits are finite. Returns whether it loaded.
    @discardableResult
    static func exercise(_ file: GGUFFile, pool: ThreadPool) throws -> Bool {
        _ = try? Tokenizer.load(from: file)   // must not crash either
        guard let model = try? ModelFactory.load(file) else { return false }
        let c = model.config
        let a = model.makeCache(maxPositions: 32), b = model.makeCache(maxPositions: 32)
        let v = Int32(max(1, min(c.vocabulary, 200)))
        // A tiny context is legal: the forward pass then refuses the batch with an error.
        let n = min(5, c.contextLength - 1)
        guard n >= 1 else {
            #expect(throws: ModelError.self) { _ = try model.forward([SequenceInput(cache: a, tokens: [0, 1])], pool: pool) }
            return true
        }
        let out = try model.forward([SequenceInput(cache: a, tokens: (1...Int32(n)).map { $0 % v }),
                                     SequenceInput(cache: b, tokens: [0])], pool: pool)
        let step = try model.forward([SequenceInput(cache: a, tokens: [6 % v])], pool: pool)
        for row in out + step {
            #expect(row.allSatisfy { $0.isFinite }, "\(c.architecture): non-finite logits with \(c)")
        }
        return true
    }

    static func numericKeys(_ f: GGUFFile) -> [(key: String, isFloat: Bool)] {
        let arch = f.architecture ?? ""
        return f.metadataKeys.compactMap { k in
            guard k.hasPrefix(arch + ".") || k.hasPrefix("tokenizer.ggml.") && k.hasSuffix("_id"),
                  let v = f.metadata[k] else { return nil }
            switch v {
            case .float32, .float64: return (k, true)
            case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64: return (k, false)
            default: return nil
            }
        } + (arch == "gemma3" ? [("gemma3.attention.sliding_window", false)] : [])
           + [(arch + ".rope.scaling.factor", true), (arch + ".rope.dimension_count", false),
              (arch + ".attention.key_length", false), (arch + ".attention.value_length", false)]
    }

    @Test func regressionCorpusLoadsWithAnErrorOrRuns() throws {
        let bases = try Self.bases()
        let pool = ThreadPool(threads: 2)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-reg-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for r in Self.regressions {
            let base = try #require(bases.first { $0.name == r.file })
            let f = try Self.mutated(base.file, [r.key: r.value], to: tmp)
            #expect(throws: ModelError.self, "\(r.key) = \(r.value) was accepted") { _ = try ModelFactory.load(f) }
            try Self.exercise(f, pool: pool)
        }
    }

    @Test func everyNumericKeyTimesEveryHostileValue() throws {
        let pool = ThreadPool(threads: 2)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-one-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var loaded = 0, refused = 0
        for base in try Self.bases() {
            #expect(try Self.exercise(base.file, pool: pool), "\(base.name) does not load unmodified")
            for (key, isFloat) in Self.numericKeys(base.file) {
                for v in isFloat ? Self.hostileFloats : Self.hostileInts + Self.hostileFloats.prefix(6) {
                    let f = try Self.mutated(base.file, [key: v], to: tmp)
                    if try Self.exercise(f, pool: pool) { loaded += 1 } else { refused += 1 }
                }
            }
        }
        print("metadata fuzz (single keys): \(loaded) accepted and ran, \(refused) refused with an error")
        #expect(refused > 0 && loaded > 0)
    }

    /// The tensor directory and header, byte-mutated (bit flips, interesting integers spliced
    /// over dims, types and offsets): whatever the reader and the loader accept must run.
    @Test func tensorDirectoryMutations() throws {
        let pool = ThreadPool(threads: 2)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-dir-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var rng = UInt64(0xD1_2EC7)
        func next(_ n: Int) -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int((rng >> 33) % UInt64(max(1, n)))
        }
        let splices: [UInt64] = [0, 1, 2, 3, 8, 31, 32, 33, 64, 255, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, UInt64.max, 1 << 62]
        var parsed = 0, ran = 0
        for base in try Self.bases() {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: base.file.path)))
            let header = base.file.dataOffset
            for _ in 0..<150 {
                var b = bytes
                for _ in 0..<(1 + next(3)) {
                    let at = next(header)
                    if next(2) == 0 {
                        b[at] ^= UInt8(1) << UInt8(next(8))
                    } else {
                        var v = splices[next(splices.count)]
                        for k in 0..<min(8, b.count - at) { b[at + k] = UInt8(truncatingIfNeeded: v); v >>= 8 }
                    }
                }
                FileManager.default.createFile(atPath: tmp, contents: Data(b))
                guard let f = try? GGUFFile(path: tmp) else { continue }
                parsed += 1
                if (try? Self.exercise(f, pool: pool)) == true { ran += 1 }
            }
        }
        print("tensor-directory fuzz: \(parsed) of \(5 * 150) mutated files parsed, \(ran) loaded and ran")
        #expect(parsed > 0)
    }

    /// Seeded random combinations: 2–4 keys changed at once, 400 files.
    @Test func randomCombinations() throws {
        let pool = ThreadPool(threads: 2)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-mix-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let bases = try Self.bases()
        var rng = UInt64(0x5EED)
        func next(_ n: Int) -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int((rng >> 33) % UInt64(max(1, n)))
        }
        var loaded = 0
        for _ in 0..<400 {
            let base = bases[next(bases.count)]
            let keys = Self.numericKeys(base.file)
            var o: [String: GGUFValue] = [:]
            for _ in 0..<(2 + next(3)) {
                let (k, isFloat) = keys[next(keys.count)]
                let pool = isFloat ? Self.hostileFloats : Self.hostileInts
                o[k] = pool[next(pool.count)]
            }
            let f = try Self.mutated(base.file, o, to: tmp)
            if try Self.exercise(f, pool: pool) { loaded += 1 }
        }
        print("metadata fuzz (combinations): \(loaded) of 400 accepted and ran")
    }
}

/// A tiny random-weight Gemma 3 (2 layers: one local, window 4; F32), for the fuzz tests.
enum TinyGemma3 {
    static func writer() throws -> GGUFWriter {
        var w = GGUFWriter()
        let d = 32, heads = 4, kvHeads = 2, headDim = 8, ff = 64, vocab = 64, layers = 2
        let meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("gemma3")),
            ("gemma3.embedding_length", .uint32(UInt32(d))),
            ("gemma3.block_count", .uint32(UInt32(layers))),
            ("gemma3.attention.head_count", .uint32(UInt32(heads))),
            ("gemma3.attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("gemma3.attention.key_length", .uint32(UInt32(headDim))),
            ("gemma3.attention.value_length", .uint32(UInt32(headDim))),
            ("gemma3.feed_forward_length", .uint32(UInt32(ff))),
            ("gemma3.context_length", .uint32(128)),
            ("gemma3.attention.layer_norm_rms_epsilon", .float32(1e-6)),
            ("gemma3.attention.sliding_window", .uint32(4)),
            ("gemma3.rope.freq_base", .float32(1_000_000)),
        ]
        for (k, v) in meta { try w.add(key: k, value: v) }
        var seed: UInt32 = 7
        func values(_ n: Int, norm: Bool) -> [Float] {
            (0..<n).map { _ in
                if norm { return 1 }
                seed = seed &* 1_103_515_245 &+ 12345
                return (Float(seed >> 16 & 0x7FFF) / 32768 - 0.5) * 0.2
            }
        }
        var tensors: [(String, [Int])] = [("token_embd.weight", [d, vocab]), ("output_norm.weight", [d])]
        for i in 0..<layers {
            let p = "blk.\(i)."
            tensors += [
                (p + "attn_norm.weight", [d]), (p + "attn_q_norm.weight", [headDim]), (p + "attn_k_norm.weight", [headDim]),
                (p + "post_attention_norm.weight", [d]), (p + "ffn_norm.weight", [d]), (p + "post_ffw_norm.weight", [d]),
                (p + "attn_q.weight", [d, heads * headDim]), (p + "attn_k.weight", [d, kvHeads * headDim]),
                (p + "attn_v.weight", [d, kvHeads * headDim]), (p + "attn_output.weight", [heads * headDim, d]),
                (p + "ffn_gate.weight", [d, ff]), (p + "ffn_up.weight", [d, ff]), (p + "ffn_down.weight", [ff, d]),
            ]
        }
        for (name, shape) in tensors {
            try w.addTensor(name: name, dims: shape, f32: values(shape.reduce(1, *), norm: name.hasSuffix("norm.weight")))
        }
        return w
    }
}
