/// The parts of a Semantic Version 2.0.0 string.
public struct VersionParts: Sendable, Equatable {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public var preRelease: [String]
    public var build: [String]
    public init(major: Int, minor: Int, patch: Int, preRelease: [String] = [], build: [String] = []) {
        self.major = major; self.minor = minor; self.patch = patch
        self.preRelease = preRelease; self.build = build
    }
}

/// The syntax of a model version (`pull --version`, a spec's `model.version`):
/// `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, no leading zeros, no 'v' prefix.
public enum VersionSyntax {
    public static let acceptedForm =
        "MAJOR.MINOR.PATCH with optional -PRERELEASE and +BUILD, e.g. 1.0.0, 2.1.3-rc.1, 1.0.0+20240101 (no leading zeros, no 'v' prefix)"

    /// The version's parts, or why it is not one.
    public static func parse(_ text: String) -> Result<VersionParts, VersionSyntaxError> {
        func fail(_ why: String) -> Result<VersionParts, VersionSyntaxError> { .failure(VersionSyntaxError(reason: why)) }
        var rest = Substring(text)
        var build: [String] = []
        if let plus = rest.firstIndex(of: "+") {
            let b = rest[rest.index(after: plus)...]
            rest = rest[..<plus]
            build = b.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            for id in build {
                if id.isEmpty { return fail("empty build metadata identifier") }
                if !id.allSatisfy(isIdentifierChar) { return fail("build identifier '\(id)' may only contain [0-9A-Za-z-]") }
            }
        }
        var pre: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            let p = rest[rest.index(after: dash)...]
            rest = rest[..<dash]
            pre = p.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            for id in pre {
                if id.isEmpty { return fail("empty pre-release identifier") }
                if !id.allSatisfy(isIdentifierChar) { return fail("pre-release identifier '\(id)' may only contain [0-9A-Za-z-]") }
                if id.allSatisfy(isASCIIDigit), id.count > 1, id.first == "0" {
                    return fail("numeric pre-release identifier '\(id)' has a leading zero")
                }
            }
        }
        let core = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard core.count == 3 else {
            if text.hasPrefix("v") || text.hasPrefix("V") { return fail("drop the 'v' prefix") }
            return fail("expected three dot-separated numbers, found \(core.count) part(s)")
        }
        var nums: [Int] = []
        for (name, part) in zip(["major", "minor", "patch"], core) {
            guard !part.isEmpty, part.allSatisfy(isASCIIDigit) else {
                return fail("\(name) '\(part)' is not a non-negative integer")
            }
            if part.count > 1, part.first == "0" { return fail("\(name) '\(part)' has a leading zero") }
            guard let n = Int(part) else { return fail("\(name) '\(part)' is too large") }
            nums.append(n)
        }
        return .success(VersionParts(major: nums[0], minor: nums[1], patch: nums[2], preRelease: pre, build: build))
    }

    public static func isVersion(_ text: String) -> Bool {
        if case .success = parse(text) { return true }
        return false
    }

    static func isIdentifierChar(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "-") }
    static func isASCIIDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
}

public struct VersionSyntaxError: Error, Sendable, Equatable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}
