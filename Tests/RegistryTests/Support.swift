import Foundation
import Registry

/// A fresh AUTOGLM_HOME per test, removed at deinit.
final class TempHome {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "autoglm-registry-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func registry() throws -> Registry { try Registry(home: "\(path)/home") }

    /// Writes a file under the temp dir and returns its path.
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = "\(path)/\(name)"
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    /// Files in the blob directory (blobs and temporaries, not locks).
    func blobEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(path)/home/blobs")) ?? []).filter { $0 != ".locks" }.sorted()
    }
}

/// A minimal GGUF v3 file: `general.architecture`, `ARCH.context_length`, optional chat
/// template, and one F32 tensor of `elements` values (alignment 32). `salt` changes the bytes.
func makeGGUF(arch: String = "llama", contextLength: UInt32 = 128, chatTemplate: String? = nil,
              elements: Int = 8, salt: UInt8 = 0) -> [UInt8] {
    var b: [UInt8] = []
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    func str(_ s: String) { u64(UInt64(s.utf8.count)); b += Array(s.utf8) }
    b += Array("GGUF".utf8)
    u32(3)
    u64(1)                                  // tensors
    u64(chatTemplate == nil ? 2 : 3)        // kvs
    str("general.architecture"); u32(8); str(arch)
    str("\(arch).context_length"); u32(4); u32(contextLength)
    if let t = chatTemplate { str("tokenizer.chat_template"); u32(8); str(t) }
    str("tok_embd.weight"); u32(1); u64(UInt64(elements)); u32(0); u64(0)
    while b.count % 32 != 0 { b.append(0) }
    for i in 0..<elements { withUnsafeBytes(of: Float(i + Int(salt)).bitPattern.littleEndian) { b += $0 } }
    while b.count % 32 != 0 { b.append(0) }
    return b
}

func sha256Hex(_ bytes: [UInt8]) -> String { SHA256Hasher.hex(of: bytes) }

func v(_ s: String) -> SemVer {
    // Test helper: the literals below are valid.
    (try? SemVer(parsing: s)) ?? SemVer(0, 0, 0, preRelease: ["invalid"])
}
