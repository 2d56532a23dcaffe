import Foundation
import Registry
import Testing

@Suite struct SemVerTests {
    @Test func precedenceTableFromTheSpec() throws {
        let ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                       "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0"]
        let parsed = try ordered.map { try SemVer(parsing: $0) }
        for i in 0..<parsed.count {
            for j in 0..<parsed.count {
                #expect((parsed[i] < parsed[j]) == (i < j), "\(ordered[i]) vs \(ordered[j])")
            }
        }
        #expect(parsed.shuffled().sorted().map(\.description) == ordered)
    }

    @Test func buildMetadataIsIgnoredForPrecedence() throws {
        let a = try SemVer(parsing: "1.0.0+20240101")
        let b = try SemVer(parsing: "1.0.0+exp.sha.5114f85")
        #expect(a == b)
        #expect(!(a < b) && !(b < a))
        #expect(a.description == "1.0.0+20240101")
        #expect(a.precedenceKey == "1.0.0")
        #expect(try SemVer(parsing: "1.0.0-rc.1+build.7").preRelease == ["rc", "1"])
    }

    @Test(arguments: ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1..0", "a.b.c", "1.0.0-al@pha", "", "1.0.0.0"])
    func invalidVersionsExplainTheForm(_ text: String) {
        do {
            _ = try SemVer(parsing: text)
            Issue.record("'\(text)' should be rejected")
        } catch let e as RegistryError {
            #expect(e.description.contains("MAJOR.MINOR.PATCH"), "\(e.description)")
            #expect(e.description.contains("invalid version"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func lenientPackageVersions() {
        #expect(SemVer.lenient("1.0")?.description == "1.0.0")
        #expect(SemVer.lenient("2")?.description == "2.0.0")
        #expect(SemVer.lenient("0.3.1")?.description == "0.3.1")
        #expect(SemVer.lenient("1.0.post1") == nil)
    }

    @Test func codableRoundTrip() throws {
        let x = try SemVer(parsing: "3.2.1-beta.2")
        let data = try JSONEncoder().encode([x])
        #expect(String(decoding: data, as: UTF8.self) == "[\"3.2.1-beta.2\"]")
        #expect(try JSONDecoder().decode([SemVer].self, from: data) == [x])
    }

    @Test func sha256KnownVectors() {
        #expect(SHA256Hasher.hex(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Hasher.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256Hasher.hex(of: long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Streaming in odd-sized pieces equals one shot.
        let big = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var h = SHA256Hasher()
        var i = 0
        while i < big.count { let n = min(37, big.count - i); h.update(Array(big[i..<i + n])); i += n }
        #expect(h.finalizeHex() == SHA256Hasher.hex(of: big))
    }
}
