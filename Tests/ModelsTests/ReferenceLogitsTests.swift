import Foundation
import GGUF
import Kernels
import Models
import Testing

/// Tiny random-weight models of every Llama-like architecture, with llama.cpp's logits for
/// fixed token ids (made by scripts/make-reference-models.py; Fixtures/reference).
struct ReferenceEntry: Decodable {
    let architecture: String
    let model: String
    let logits: String
    let quantized: Bool
    let ids: [Int32]
    let vocabulary: Int
    let tolerance: Double
}

enum ReferenceFixtures {
    static func directory() throws -> URL {
        guard let url = Bundle.module.url(forResource: "reference", withExtension: nil, subdirectory: "Fixtures") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return url
    }

    static func entries() throws -> [ReferenceEntry] {
        struct Manifest: Decodable { let models: [ReferenceEntry] }
        let data = try Data(contentsOf: directory().appendingPathComponent("reference.json"))
        return try JSONDecoder().decode(Manifest.self, from: data).models
    }

    static func expected(_ e: ReferenceEntry) throws -> [Float] {
        let data = try Data(contentsOf: directory().appendingPathComponent(e.logits))
        return data.withUnsafeBytes { raw in Array(raw.bindMemory(to: Float.self)) }
    }

    static func load(_ e: ReferenceEntry) throws -> any LanguageModel {
        try ModelFactory.load(GGUFFile(path: directory().appendingPathComponent(e.model).path))
    }
}

/// ‖a − b‖ / ‖b‖ over one row.
func relativeError(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) {
        num += Double(x - y) * Double(x - y)
        den += Double(y) * Double(y)
    }
    return (num / max(den, 1e-30)).squareRoot()
}

@Suite("Llama-like architectures against llama.cpp on tiny random models")
struct ReferenceLogitsTests {
    static let names: [String] = (try? ReferenceFixtures.entries().map { $0.model }) ?? []

    @Test("fixtures cover every architecture, F32 and quantized")
    func coverage() throws {
        let entries = try ReferenceFixtures.entries()
        for arch in ["llama", "qwen3", "glm4", "chatglm"] {
            #expect(entries.contains { $0.architecture == arch && !$0.quantized }, "\(arch) F32")
            #expect(entries.contains { $0.architecture == arch && $0.quantized }, "\(arch) quantized")
        }
        #expect(entries.allSatisfy { $0.ids.count >= 48 })
        // The bars (‖Δ‖/‖ref‖ < 1e-4 for F32, < 1e-2 quantized): the manifest may not loosen them.
        for e in entries { #expect(e.tolerance <= (e.quantized ? 1e-2 : 1e-4), "\(e.model): tolerance \(e.tolerance)") }
    }

    @Test("logits match llama.cpp at every position", arguments: names)
    func logitsMatch(_ name: String) throws {
        let e = try #require(try ReferenceFixtures.entries().first { $0.model == name })
        let model = try ReferenceFixtures.load(e)
        #expect(model.config.architecture == e.architecture)
        #expect(model.config.vocabulary == e.vocabulary)
        let pool = ThreadPool(threads: 2)
        let cache = model.makeCache(maxPositions: e.ids.count, precision: .f32)
        let ours = try model.forward([SequenceInput(cache: cache, tokens: e.ids, logits: .all)], pool: pool)[0]
        let ref = try ReferenceFixtures.expected(e)
        try #require(ours.count == ref.count)
        let v = e.vocabulary
        var worst = 0.0
        for p in 0..<e.ids.count {
            let err = relativeError(ours[(p * v)..<((p + 1) * v)], ref[(p * v)..<((p + 1) * v)])
            worst = max(worst, err)
            #expect(err < e.tolerance, "\(name) position \(p): ‖Δ‖/‖ref‖ = \(err)")
        }
        print("\(name): worst ‖Δ‖/‖ref‖ over \(e.ids.count) positions = \(worst)")
    }

    @Test("incremental decode with the KV cache equals full recomputation", arguments: names)
    func incremental(_ name: String) throws {
        let e = try #require(try ReferenceFixtures.entries().first { $0.model == name })
        let model = try ReferenceFixtures.load(e)
        let pool = ThreadPool(threads: 2)
        let full = try model.forward([SequenceInput(cache: model.makeCache(maxPositions: e.ids.count, precision: .f32),
                                                    tokens: e.ids, logits: .all)], pool: pool)[0]
        // Prefill a chunk, then one token at a time, then a chunk again.
        let cache = model.makeCache(maxPositions: e.ids.count, precision: .f32)
        var steps: [[Float]] = []
        var i = 0
        let pieces = [5, 1, 1, 1, 7] + Array(repeating: 1, count: e.ids.count)
        for n in pieces where i < e.ids.count {
            let end = min(e.ids.count, i + n)
            steps += try model.forward([SequenceInput(cache: cache, tokens: Array(e.ids[i..<end]), logits: .all)], pool: pool)
            i = end
        }
        let inc = steps.flatMap { $0 }
        try #require(inc.count == full.count)
        let v = e.vocabulary
        for p in 0..<e.ids.count {
            let err = relativeError(inc[(p * v)..<((p + 1) * v)], full[(p * v)..<((p + 1) * v)])
            #expect(err < 1e-5, "\(name) position \(p): incremental vs full ‖Δ‖/‖full‖ = \(err)")
        }
    }
}
