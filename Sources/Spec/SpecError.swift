/// One problem found in an `autoglm.yaml`, printed as `file:line:column: message`.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// nil for whole-file problems (empty file, unreadable file).
    public var pos: SourcePosition?
    public var message: String

    public init(file: String, pos: SourcePosition?, message: String) {
        self.file = file
        self.pos = pos
        self.message = message
    }

    public var description: String {
        if let pos { return "\(file):\(pos.line):\(pos.column): \(message)" }
        return "\(file): \(message)"
    }
}

/// Every problem found in a spec (validation never stops at the first one).
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }
    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// Errors of the deploy commands outside the spec itself.
public enum DeployError: Error, Sendable, CustomStringConvertible {
    case cannotReadFile(path: String, reason: String)
    case cannotWriteFile(path: String, reason: String)
    case invalidKubeVersion(String)
    case unsupportedKubeVersion(String, minimum: String)

    public var description: String {
        switch self {
        case .cannotReadFile(let path, let reason):
            return "\(path): cannot read file (\(reason)); check the path, or run 'autoglm validate' from the directory holding autoglm.yaml"
        case .cannotWriteFile(let path, let reason):
            return "\(path): cannot write file (\(reason)); check that the output directory is writable"
        case .invalidKubeVersion(let v):
            return "--kube-version '\(v)' is not a Kubernetes version; write it as 1.MINOR, e.g. --kube-version 1.30"
        case .unsupportedKubeVersion(let v, let minimum):
            return "--kube-version \(v) is not supported; the oldest supported version is \(minimum) (needed for startupProbe and seccompProfile)"
        }
    }
}
