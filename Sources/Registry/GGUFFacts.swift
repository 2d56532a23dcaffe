import Foundation
import GGUF

/// Per-quant-type tensor totals.
public struct QuantShare: Sendable, Codable, Equatable {
    public var tensors: Int
    public var bytes: Int
    public init(tensors: Int, bytes: Int) { self.tensors = tensors; self.bytes = bytes }
}

/// What the registry records about a GGUF file.
public struct GGUFFacts: Sendable, Codable, Equatable {
    public var architecture: String
    public var parameterCount: Int
    /// GGML type name ("Q4_K", "F32" …) → tensor count and bytes.
    public var quantMix: [String: QuantShare]
    public var contextLength: Int?
    public var hasChatTemplate: Bool
    public var name: String?

    /// Reads the facts; a file that is not GGUF (or has no `general.architecture`) throws
    /// `RegistryError.notGGUF` carrying the reader's reason.
    public static func read(path: String) throws -> GGUFFacts {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch let e as GGUFError {
            throw RegistryError.notGGUF(path: path, reason: e.description)
        } catch {
            throw RegistryError.notGGUF(path: path, reason: "\(error)")
        }
        guard let arch = file.architecture, !arch.isEmpty else {
            throw RegistryError.notGGUF(path: path, reason: "metadata key general.architecture is missing")
        }
        var mix: [String: QuantShare] = [:]
        var params = 0
        for t in file.tensors {
            params += t.elementCount
            mix[t.type.description, default: QuantShare(tensors: 0, bytes: 0)].tensors += 1
            mix[t.type.description, default: QuantShare(tensors: 0, bytes: 0)].bytes += t.byteCount
        }
        return GGUFFacts(
            architecture: arch,
            parameterCount: params,
            quantMix: mix,
            contextLength: file.int("\(arch).context_length"),
            hasChatTemplate: file.string("tokenizer.chat_template") != nil,
            name: file.string("general.name"))
    }
}
