import Core

/// A Semantic Version 2.0.0 (https://semver.org): `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
///
/// Ordering follows §11: major, minor, patch numerically; a pre-release version has lower
/// precedence than the release; pre-release identifiers compare left to right (numeric ones
/// numerically and below alphanumeric ones, alphanumeric ones in ASCII order, a shorter list
/// first when all shared identifiers are equal). Build metadata is ignored for precedence, so
/// `==` here means "same precedence" and `1.0.0+a == 1.0.0+b`.
public struct SemVer: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public let major: Int
    public let minor: Int
    public let patch: Int
    public let preRelease: [String]
    public let build: [String]

    public init(_ major: Int, _ minor: Int, _ patch: Int, preRelease: [String] = [], build: [String] = []) {
        self.major = major; self.minor = minor; self.patch = patch
        self.preRelease = preRelease; self.build = build
    }

    public static let acceptedForm = VersionSyntax.acceptedForm

    /// Parses a version; throws `RegistryError.invalidVersion` naming the problem and the accepted form.
    public init(parsing text: String) throws {
        switch VersionSyntax.parse(text) {
        case .success(let p):
            self.init(p.major, p.minor, p.patch, preRelease: p.preRelease, build: p.build)
        case .failure(let e):
            throw RegistryError.invalidVersion(text, reason: e.reason)
        }
    }

    /// Lenient conversion for package versions ("1.0" → 1.0.0, "2" → 2.0.0); nil when not numeric.
    public static func lenient(_ text: String) -> SemVer? {
        if let v = try? SemVer(parsing: text) { return v }
        let parts = text.split(separator: ".")
        guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }) else { return nil }
        let n = parts.compactMap { Int($0) }
        guard n.count == parts.count else { return nil }
        return SemVer(n[0], n.count > 1 ? n[1] : 0, n.count > 2 ? n[2] : 0)
    }


    public var isPreRelease: Bool { !preRelease.isEmpty }

    /// The version without build metadata: the key for uniqueness (same precedence ⇒ same key).
    public var precedenceKey: String {
        "\(major).\(minor).\(patch)" + (preRelease.isEmpty ? "" : "-" + preRelease.joined(separator: "."))
    }

    public var description: String {
        precedenceKey + (build.isEmpty ? "" : "+" + build.joined(separator: "."))
    }

    public static func == (a: SemVer, b: SemVer) -> Bool {
        a.major == b.major && a.minor == b.minor && a.patch == b.patch && a.preRelease == b.preRelease
    }

    public func hash(into h: inout Hasher) {
        h.combine(major); h.combine(minor); h.combine(patch); h.combine(preRelease)
    }

    public static func < (a: SemVer, b: SemVer) -> Bool {
        if a.major != b.major { return a.major < b.major }
        if a.minor != b.minor { return a.minor < b.minor }
        if a.patch != b.patch { return a.patch < b.patch }
        switch (a.preRelease.isEmpty, b.preRelease.isEmpty) {
        case (true, true), (true, false): return false
        case (false, true): return true
        case (false, false): break
        }
        for (x, y) in zip(a.preRelease, b.preRelease) where x != y {
            let xn = x.allSatisfy(\.isASCIIDigit) ? Int(x) : nil
            let yn = y.allSatisfy(\.isASCIIDigit) ? Int(y) : nil
            switch (xn, yn) {
            case let (p?, q?): return p < q
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8))
            }
        }
        return a.preRelease.count < b.preRelease.count
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: s)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
