import Foundation
import GGUF
import Testing

/// Tiny synthetic qwen2 models built with GGUFWriter, valid or broken in one chosen way.
struct TinyQwen2 {
    var hidden = 64
    var heads = 4
    var kvHeads = 2
    var feedForward = 128
    var layers = 1
    /// Tensors left out of the file.
    var omit: Set<String> = []
    /// Tensors stored in another type (zero-filled blocks).
    var types: [String: GGMLType] = [:]
    /// Tensors stored with other dimensions.
    var dims: [String: [Int]] = [:]
    /// Metadata overrides (nil value: remove the key).
    var metadata: [String: GGUFValue?] = [:]

    /// GPT-2 byte-level BPE alphabet: printable bytes map to themselves, the others to U+0100 onwards.
    static let byteTokens: [String] = {
        var out: [String] = []
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            let scalar = printable ? UInt32(b) : { defer { next += 1 }; return next }()
            out.append(String(Character(Unicode.Scalar(scalar) ?? "?")))
        }
        return out
    }()

    var vocabulary: Int { Self.byteTokens.count + 1 }

    func writer() throws -> GGUFWriter {
        var w = GGUFWriter()
        let d = hidden, kv = hidden / heads * kvHeads, ff = feedForward
        var meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("qwen2")),
            ("general.name", .string("tiny test qwen2")),
            ("qwen2.embedding_length", .uint32(UInt32(d))),
            ("qwen2.block_count", .uint32(UInt32(layers))),
            ("qwen2.attention.head_count", .uint32(UInt32(heads))),
            ("qwen2.attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("qwen2.feed_forward_length", .uint32(UInt32(ff))),
            ("qwen2.context_length", .uint32(256)),
            ("qwen2.attention.layer_norm_rms_epsilon", .float32(1e-6)),
            ("qwen2.rope.freq_base", .float32(1_000_000)),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("qwen2")),
            ("tokenizer.ggml.tokens", .array(.string, (Self.byteTokens + ["<|endoftext|>"]).map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, Array(repeating: .int32(1), count: 256) + [.int32(3)])),
            ("tokenizer.ggml.merges", .array(.string, [])),
            ("tokenizer.ggml.eos_token_id", .uint32(256)),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
        for (k, v) in metadata where !meta.contains(where: { $0.0 == k }) { if let v { meta.append((k, v)) } }
        for (k, v) in meta {
            if let override = metadata[k] {
                if let override { try w.add(key: k, value: override) }
            } else {
                try w.add(key: k, value: v)
            }
        }
        var tensors: [(String, [Int])] = [("token_embd.weight", [d, vocabulary]), ("output_norm.weight", [d])]
        for i in 0..<layers {
            let p = "blk.\(i)."
            tensors += [
                (p + "attn_norm.weight", [d]), (p + "ffn_norm.weight", [d]),
                (p + "attn_q.bias", [d]), (p + "attn_k.bias", [kv]), (p + "attn_v.bias", [kv]),
                (p + "attn_q.weight", [d, d]), (p + "attn_k.weight", [d, kv]), (p + "attn_v.weight", [d, kv]),
                (p + "attn_output.weight", [d, d]), (p + "ffn_gate.weight", [d, ff]), (p + "ffn_up.weight", [d, ff]),
                (p + "ffn_down.weight", [ff, d]),
            ]
        }
        var seed: UInt32 = 12345
        for (name, shape) in tensors where !omit.contains(name) {
            let shape = dims[name] ?? shape
            let count = shape.reduce(1, *)
            if let t = types[name] {
                try w.addTensor(name: name, dims: shape, type: t, bytes: [UInt8](repeating: 0, count: t.byteCount(elements: count) ?? 0))
                continue
            }
            let values: [Float]
            if name.hasSuffix("norm.weight") {
                values = Array(repeating: 1, count: count)
            } else {
                values = (0..<count).map { _ in
                    seed = seed &* 1_103_515_245 &+ 12345
                    return (Float(seed >> 16 & 0x7FFF) / 32768 - 0.5) * 0.2
                }
            }
            try w.addTensor(name: name, dims: shape, f32: values)
        }
        return w
    }

    func file(_ name: String) throws -> String {
        try CLI.temporaryFile(name, try writer().bytes())
    }
}

@Suite("CLI on broken models")
struct BadModelTests {
    static func generate(_ path: String) throws -> CLI.Result {
        try CLI.run(["generate", "--model", path, "--prompt", "hi", "-n", "1", "--temp", "0", "--threads", "1"])
    }

    @Test func tinyValidModelGenerates() throws {
        let path = try TinyQwen2().file("tiny-qwen2.gguf")
        let r = try CLI.run(["generate", "--model", path, "--prompt", "hi", "-n", "1", "--temp", "0",
                             "--threads", "1", "--json", "--ignore-eos"])
        #expect(r.status == 0, "\(r.stderr)")
        struct Out: Decodable { let prompt_ids: [Int]; let generated_ids: [Int] }
        let out = try JSONDecoder().decode(Out.self, from: Data(r.stdout.utf8))
        // No merges: one byte token each, and printable bytes are their own GPT-2 characters.
        #expect(out.prompt_ids == [Int(UInt8(ascii: "h")), Int(UInt8(ascii: "i"))])
        #expect(out.generated_ids.count == 1)
        #expect(out.generated_ids.allSatisfy { (0..<257).contains($0) })
        let plain = try Self.generate(path)
        #expect(plain.status == 0, "\(plain.stderr)")
    }

    @Test func unsupportedArchitecture() throws {
        var w = GGUFWriter()
        try w.add(key: "general.architecture", value: .string("mamba9"))
        try w.add(key: "mamba9.block_count", value: .uint32(1))
        try w.addTensor(name: "token_embd.weight", dims: [4, 4], f32: Array(repeating: 0, count: 16))
        let path = try CLI.temporaryFile("mamba9.gguf", w.bytes())
        let r = try Self.generate(path)
        expectOneLineError(r, mentions: [path, "unsupported architecture", "'mamba9'", "gemma3", "qwen2"])

        // A hostile architecture name cannot add lines to the error output.
        var evil = GGUFWriter()
        try evil.add(key: "general.architecture", value: .string("x\nError: forged line"))
        let p2 = try CLI.temporaryFile("evil-arch.gguf", evil.bytes())
        expectOneLineError(try Self.generate(p2), mentions: [p2, "unsupported architecture", "x\\nError: forged line"])
    }

    @Test func missingArchitecture() throws {
        var w = GGUFWriter()
        try w.add(key: "general.name", value: .string("nameless"))
        let path = try CLI.temporaryFile("noarch.gguf", w.bytes())
        expectOneLineError(try Self.generate(path), mentions: [path, "general.architecture"])
    }

    @Test func unsupportedTensorType() throws {
        // IQ2_XXS needs rows that are a multiple of 256 elements.
        var m = TinyQwen2(hidden: 256, heads: 4, kvHeads: 2, feedForward: 256)
        m.types["blk.0.ffn_down.weight"] = .iq2_xxs
        let path = try m.file("iq2.gguf")
        expectOneLineError(try Self.generate(path), mentions: [path, "'blk.0.ffn_down.weight'", "IQ2_XXS"])
    }

    @Test func unknownTensorTypeID() throws {
        var bytes = try TinyQwen2().writer().bytes()
        // Patch the type field of blk.0.ffn_up.weight (after name, n_dims and two dims) to 40.
        let name = Array("blk.0.ffn_up.weight".utf8)
        var at: Int?
        for i in 0...(bytes.count - name.count) where bytes[i] == name[0] && Array(bytes[i..<(i + name.count)]) == name {
            at = i + name.count + 4 + 16
        }
        let o = try #require(at)
        for (k, b) in [UInt8(40), 0, 0, 0].enumerated() { bytes[o + k] = b }
        let path = try CLI.temporaryFile("type40.gguf", bytes)
        expectOneLineError(try Self.generate(path), mentions: [path, "'blk.0.ffn_up.weight'", "type id 40"])
    }

    @Test func missingTensorsAreListedTogether() throws {
        var m = TinyQwen2()
        m.omit = ["blk.0.ffn_up.weight", "output_norm.weight", "blk.0.attn_k.bias"]
        let path = try m.file("missing.gguf")
        expectOneLineError(try Self.generate(path),
                           mentions: [path, "missing tensors", "blk.0.ffn_up.weight", "output_norm.weight", "blk.0.attn_k.bias"])
    }

    @Test func tensorShapeDisagreesWithMetadata() throws {
        var m = TinyQwen2()
        m.dims["blk.0.attn_q.weight"] = [64, 32]
        let path = try m.file("shape.gguf")
        expectOneLineError(try Self.generate(path), mentions: [path, "'blk.0.attn_q.weight'", "[64, 32]", "[64, 64]"])

        // The metadata claims a wider model than the tensors hold.
        var wide = TinyQwen2()
        wide.metadata["qwen2.embedding_length"] = .uint32(128)
        let p2 = try wide.file("wide.gguf")
        expectOneLineError(try Self.generate(p2), mentions: [p2, "shape"])

        // A feed-forward length that disagrees with the FFN tensors.
        var ffn = TinyQwen2()
        ffn.metadata["qwen2.feed_forward_length"] = .uint32(96)
        let p3 = try ffn.file("ffn.gguf")
        expectOneLineError(try Self.generate(p3), mentions: [p3, "ffn_"])
    }

    @Test func invalidMetadataValues() throws {
        var heads = TinyQwen2()
        heads.metadata["qwen2.attention.head_count"] = .uint32(5)
        let p1 = try heads.file("heads.gguf")
        expectOneLineError(try Self.generate(p1), mentions: [p1, "qwen2.attention.head_count"])

        var zero = TinyQwen2()
        zero.metadata["qwen2.block_count"] = .uint32(0)
        let p2 = try zero.file("zero-blocks.gguf")
        expectOneLineError(try Self.generate(p2), mentions: [p2, "qwen2.block_count"])

        var missing = TinyQwen2()
        missing.metadata["qwen2.feed_forward_length"] = .some(nil)
        let p3 = try missing.file("no-ffn.gguf")
        expectOneLineError(try Self.generate(p3), mentions: [p3, "qwen2.feed_forward_length"])
    }

    /// Values that would divide by zero, loop a billion times or rotate past a head.
    @Test func hostileShapeMetadata() throws {
        let cases: [(String, GGUFValue)] = [
            ("qwen2.attention.head_count_kv", .uint32(0)),
            ("qwen2.attention.head_count_kv", .int32(-2)),
            ("qwen2.block_count", .uint64(1_000_000_000)),
            ("qwen2.rope.dimension_count", .uint32(4_000_000_000)),
            ("qwen2.rope.dimension_count", .uint32(64)),
            ("qwen2.embedding_length", .int64(-64)),
            ("qwen2.feed_forward_length", .uint64(1 << 40)),
        ]
        for (i, (key, value)) in cases.enumerated() {
            var m = TinyQwen2()
            m.metadata[key] = value
            let path = try m.file("hostile\(i).gguf")
            let start = Date()
            expectOneLineError(try Self.generate(path), mentions: [path, key])
            #expect(Date().timeIntervalSince(start) < 20, "\(key)")
        }
    }

    @Test func malformedGGUFIsReportedByTheCLI() throws {
        var bytes = try TinyQwen2().writer().bytes()
        bytes.removeLast(bytes.count / 3)
        let path = try CLI.temporaryFile("cut.gguf", bytes)
        expectOneLineError(try Self.generate(path), mentions: [path])
        for args in [["inspect", path], ["tokenize", "--model", path, "x"]] {
            expectOneLineError(try CLI.run(args), mentions: [path])
        }
    }
}
