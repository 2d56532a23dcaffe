/// Speculative decoding settings as every layer spells them: the spec's `backend.speculative` /
/// `backend.speculativeK`, `serve` / `generate`'s `--speculative` / `--speculative-k`, and the
/// engine's `SchedulerConfig`. One parser, so a value means the same (and is refused with the same
/// message) in serve, up, optimize and deploy.
public enum SpeculativeMethod: String, Sendable, Equatable, CaseIterable {
    /// No speculation: one token per sequence and step.
    case off
    /// Prompt lookup: drafts copied from an earlier occurrence of the sequence's last tokens
    /// (prompt + generated), verified in one forward pass. No extra model.
    case ngram
    /// Draft-model speculation (a smaller model with the same tokenizer). Not available yet:
    /// `SpeculativeSyntax.method` refuses it.
    case draft
}

/// Why a speculative-decoding setting is refused; each message names the fix.
public enum SpeculativeSettingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A value that is none of `SpeculativeMethod`'s.
    case unknownMethod(String)
    /// `draft`: draft-model speculation is not implemented yet.
    case draftUnavailable
    /// `speculativeK` outside `SpeculativeSyntax.kRange`.
    case kOutOfRange(Int)

    public var description: String {
        switch self {
        case .unknownMethod(let s):
            return "speculative decoding '\(s.prefix(40))' is not a method; use one of \(SpeculativeMethod.allCases.map(\.rawValue).joined(separator: ", ")) (ngram: prompt-lookup drafting, off: none)"
        case .draftUnavailable:
            return "speculative decoding 'draft' (a draft model) is not available yet; use 'ngram' (prompt-lookup drafting, no extra model) or 'off'"
        case .kOutOfRange(let k):
            return "the speculative k (draft tokens per step) must be in \(SpeculativeSyntax.kRange.lowerBound)...\(SpeculativeSyntax.kRange.upperBound), got \(k)"
        }
    }
}

public enum SpeculativeSyntax {
    /// Draft tokens per sequence and step when `speculativeK` is not given.
    public static let defaultK = 5
    /// Allowed `speculativeK` values.
    public static let kRange = 1...32

    /// The method a setting names (case-insensitive). `draft` is refused until it exists.
    public static func method(_ s: String) throws(SpeculativeSettingError) -> SpeculativeMethod {
        guard let m = SpeculativeMethod(rawValue: s.lowercased()) else { throw .unknownMethod(s) }
        if m == .draft { throw .draftUnavailable }
        return m
    }

    /// `k` checked against `kRange`.
    public static func k(_ k: Int) throws(SpeculativeSettingError) -> Int {
        guard kRange.contains(k) else { throw .kOutOfRange(k) }
        return k
    }
}
