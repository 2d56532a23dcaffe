import Foundation
import Testing

/// Locates the real test models (fetched by scripts/fetch-models.sh into
/// $AUTOGLM_MODELS, default ~/.cache/autoglm/models).
enum TestModels {
    static var directory: String {
        ProcessInfo.processInfo.environment["AUTOGLM_MODELS"]
            ?? (NSHomeDirectory() + "/.cache/autoglm/models")
    }

    static let gemma3 = "gemma3-270m-q4_k_m.gguf"
    static let qwen2 = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

    /// Path of a model, or a test failure telling how to get it (CI always fetches them).
    static func path(_ name: String) -> String? {
        let p = directory + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
        Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
        return nil
    }

    static func fixture(_ name: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }
}
