/// `autoglm deploy -f FILE` is `autoglm deploy apply FILE`: apply is `deploy`'s default
/// subcommand and takes the spec file either as its argument or as `-f/--file` (kubectl's
/// spelling). This picks the one file from the two spellings.
public enum DeployAlias {
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// Neither spelling named a file.
        case noFile
        /// Both did, differently.
        case twoFiles(String, String)

        public var description: String {
            switch self {
            case .noFile:
                return "name the spec to apply: autoglm deploy -f FILE (the same as autoglm deploy apply FILE); other subcommands: render, containerfile, status, rollback, delete"
            case .twoFiles(let a, let b):
                return "two spec files given ('\(a)' and -f '\(b)'); name one, either as the argument or with -f"
            }
        }
    }

    public static func specFile(positional: String?, option: String?) -> Result<String, Problem> {
        switch (positional, option) {
        case (nil, nil): return .failure(.noFile)
        case (let p?, nil): return .success(p)
        case (nil, let o?): return .success(o)
        case (let p?, let o?): return p == o ? .success(p) : .failure(.twoFiles(p, o))
        }
    }
}
