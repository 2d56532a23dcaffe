/// Errors raised while building a tokenizer from GGUF metadata.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// A required metadata key is absent or has the wrong type.
    case missingKey(String)
    /// `tokenizer.ggml.model` names a tokenizer family this module does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
    case unsupportedPreTokenizer(String)
    /// A metadata array has a length that does not match the vocabulary.
    case lengthMismatch(key: String, expected: Int, actual: Int)
    /// A special-token id points outside the vocabulary.
    case tokenIDOutOfRange(key: String, id: Int, vocabularySize: Int)
    /// The vocabulary is empty.
    case emptyVocabulary

    public var description: String {
        switch self {
        case .missingKey(let k):
            return "tokenizer metadata key '\(k)' is missing or has the wrong type"
        case .unsupportedModel(let m):
            return "unsupported tokenizer model '\(m)' (tokenizer.ggml.model); supported: llama (SentencePiece), gpt2 (byte-level BPE)"
        case .unsupportedPreTokenizer(let p):
            return "unsupported pre-tokenizer '\(p)' (tokenizer.ggml.pre); supported: qwen2, llama3/llama-bpe, gpt2, chatglm-bpe, glm4, default"
        case .lengthMismatch(let k, let e, let a):
            return "tokenizer metadata '\(k)' has \(a) entries but the vocabulary has \(e) tokens"
        case .tokenIDOutOfRange(let k, let id, let n):
            return "tokenizer metadata '\(k)' = \(id) is outside the vocabulary (size \(n))"
        case .emptyVocabulary:
            return "tokenizer vocabulary (tokenizer.ggml.tokens) is empty"
        }
    }
}
