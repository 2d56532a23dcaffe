import Foundation
import GGUF
import Testing
@testable import Tokenizers

struct GoldenEntry: Decodable {
    let text: String
    let add_bos: Bool
    let parse_special: Bool
    let ids: [Int32]
    let detok_lcpp: String
    let detok_lcpp_special: String
}

enum TestModels {
    static var directory: String {
        if let d = ProcessInfo.processInfo.environment["AUTOGLM_MODELS"], !d.isEmpty { return d }
        return NSString(string: "~/.cache/autoglm/models").expandingTildeInPath
    }

    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "model file not found: \(path) — run scripts/fetch-models.sh (or set AUTOGLM_MODELS to the directory holding the models)"
        }
    }

    static func path(_ name: String) throws -> String {
        let p = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: p) else { throw Missing(path: p) }
        return p
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        let f = try GGUFFile(path: try path(name))
        return try Tokenizer.load(from: f)
    }

    static let gemma = "gemma3-270m-q4_k_m.gguf"
    static let qwen = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

    static func golden(_ name: String) throws -> [GoldenEntry] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
            throw Missing(path: "Fixtures/\(name).json")
        }
        return try JSONDecoder().decode([GoldenEntry].self, from: Data(contentsOf: url))
    }
}
