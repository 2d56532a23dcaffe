import Foundation
import Testing
@testable import Deploy

/// The runtime stage of the Containerfile must install every shared library the shipped binaries
/// link. Checked against the real binaries on this (Debian bookworm, like the runtime image)
/// machine: `ldd` → each resolved library → its Debian package (`dpkg -S`) → that package must be
/// named by the runtime stage's `apt-get install`, or be a dependency of one of them, or be part of
/// the base image (Essential or Priority: required packages, and their dependencies).
///
/// Binaries: `$AUTOGLM_BIN`, else `.build/release/autoglm`, else `.build/debug/autoglm`; and
/// `$AUTOGLM_LLAMA_SERVER` when set (CI sets it). Swift runtime libraries of a debug build (under
/// the toolchain's lib/swift/) are linked statically by the image's `--static-swift-stdlib` build,
/// so they are skipped; the system libraries they pull in are checked.
@Suite struct ContainerfileLinkTests {
    struct Run { var status: Int32; var out: String }

    static func run(_ exe: String, _ args: [String]) -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return Run(status: -1, out: "") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: data, as: UTF8.self))
    }

    /// The packages the runtime stage's `apt-get install` line names (read from the generated text).
    static func runtimeStagePackages(_ containerfile: String) -> [String] {
        guard let stage = containerfile.range(of: "AS runtime") else { return [] }
        let lines = containerfile[stage.upperBound...].split(separator: "\n")
        guard let line = lines.first(where: { $0.contains("apt-get install") }) else { return [] }
        return line.split(separator: " ").map(String.init)
            .drop(while: { $0 != "install" }).dropFirst()
            .filter { !$0.hasPrefix("-") && $0 != "\\" && $0 != "&&" }
    }

    struct Package { var essential: Bool; var required: Bool; var provides: [String]; var depends: [String] }

    /// Installed packages from the dpkg database: flags, Provides, and the first alternative of
    /// each Depends / Pre-Depends entry (what apt installs in a fresh image).
    static func installedPackages() -> [String: Package] {
        let r = run("/usr/bin/dpkg-query", ["-W", "-f=${Package}\t${Essential}\t${Priority}\t${Provides}\t${Pre-Depends}, ${Depends}\t${db:Status-Abbrev}\n"])
        var out: [String: Package] = [:]
        func names(_ field: Substring, firstAlternative: Bool) -> [String] {
            field.split(separator: ",").compactMap { entry in
                let alts = entry.split(separator: "|")
                let chosen = firstAlternative ? alts.prefix(1) : alts[...]
                return chosen.map { alt in
                    let name = alt.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
                    return String(name.split(separator: ":").first ?? "")
                }.first { !$0.isEmpty }
            }
        }
        for line in r.out.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 6, f[5].hasPrefix("ii") else { continue }
            out[String(f[0])] = Package(essential: f[1] == "yes", required: f[2] == "required",
                                        provides: names(f[3], firstAlternative: false),
                                        depends: names(f[4], firstAlternative: true))
        }
        return out
    }

    /// The packages present in the runtime image: `roots` and everything they depend on.
    static func closure(_ roots: [String], _ db: [String: Package]) -> Set<String> {
        var providers: [String: [String]] = [:]
        for (name, p) in db { for v in p.provides { providers[v, default: []].append(name) } }
        var seen = Set<String>(), stack = roots
        while let n = stack.popLast() {
            let real = db[n] != nil ? [n] : (providers[n] ?? [])
            for r in real where seen.insert(r).inserted { stack += db[r]?.depends ?? [] }
            seen.insert(n)
        }
        return seen
    }

    /// The Debian package owning a library path (trying the merged-/usr twin of the path too).
    static func owner(_ path: String) -> String? {
        var candidates = [path, (path as NSString).resolvingSymlinksInPath]
        for c in candidates {
            if c.hasPrefix("/usr/lib/") { candidates.append(String(c.dropFirst(4))) }
            else if c.hasPrefix("/lib") { candidates.append("/usr" + c) }
        }
        for c in candidates {
            let r = run("/usr/bin/dpkg", ["-S", c])
            if r.status == 0, let first = r.out.split(separator: "\n").first, let colon = first.range(of: ": ") {
                // "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6" (several owners: "a, b: path")
                let owners = first[..<colon.lowerBound].split(separator: ",")
                if let o = owners.first { return String(o.trimmingCharacters(in: .whitespaces).split(separator: ":")[0]) }
            }
        }
        return nil
    }

    /// `ldd` of a binary: (soname, resolved path or nil when not found).
    static func linked(_ binary: String) -> [(String, String?)] {
        run("/usr/bin/ldd", [binary]).out.split(separator: "\n").compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("linux-vdso") || line.hasPrefix("statically linked") { return nil }
            let parts = line.components(separatedBy: " => ")
            if parts.count == 2 {
                let target = parts[1].split(separator: " ").first.map(String.init)
                return (parts[0], target == "not" ? nil : target)
            }
            let path = line.split(separator: " ").first.map(String.init) ?? line
            return (path, path)
        }
    }

    static func binaries() -> (found: [(String, String)], problems: [String]) {
        let env = ProcessInfo.processInfo.environment
        let fm = FileManager.default
        var found: [(String, String)] = [], problems: [String] = []
        if let bin = env["AUTOGLM_BIN"], !bin.isEmpty {
            if fm.isExecutableFile(atPath: bin) { found.append(("autoglm", bin)) } else { problems.append("$AUTOGLM_BIN=\(bin) is not an executable file") }
        } else if let bin = [".build/release/autoglm", ".build/debug/autoglm"].map({ Fixture.repoRoot + "/" + $0 })
                    .first(where: { fm.isExecutableFile(atPath: $0) }) {
            found.append(("autoglm", bin))
        }
        if let ls = env["AUTOGLM_LLAMA_SERVER"], !ls.isEmpty {
            if fm.isExecutableFile(atPath: ls) { found.append(("llama-server", ls)) } else { problems.append("$AUTOGLM_LLAMA_SERVER=\(ls) is not an executable file") }
        }
        return (found, problems)
    }

    @Test func runtimeStageInstallsEveryLinkedLibrary() throws {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: "/usr/bin/dpkg-query"), fm.isExecutableFile(atPath: "/usr/bin/ldd") else {
            Issue.record("this check needs a Debian machine (dpkg, ldd) like the runtime image \(ContainerBuild.runtimeImage)")
            return
        }
        let (bins, problems) = Self.binaries()
        for p in problems { Issue.record(Comment(rawValue: p)) }
        guard !bins.isEmpty else {
            Issue.record("no binary to check: build autoglm first (swift build → .build/debug/autoglm) or set $AUTOGLM_BIN; set $AUTOGLM_LLAMA_SERVER to check llama-server (bench/build-llama-server.sh builds it)")
            return
        }
        let cf = ContainerBuild.containerfile
        let named = Self.runtimeStagePackages(cf)
        #expect(!named.isEmpty, "no apt-get install line in the runtime stage")
        let db = Self.installedPackages()
        let base = db.filter { $0.value.essential || $0.value.required }.map(\.key)
        let present = Self.closure(named + base, db)
        #expect(present.contains("libc6"), "the base image (\(base.count) required/essential packages and their dependencies) should hold libc6")
        for (name, path) in bins {
            let libs = Self.linked(path)
            #expect(!libs.isEmpty, "ldd \(path) listed nothing")
            var missing: [String] = []
            for (soname, resolved) in libs {
                guard let resolved else {
                    Issue.record("\(name): \(soname) is not found on this machine (ldd \(path)); install it, then add its package to ContainerBuild.runtimePackages")
                    continue
                }
                if resolved.contains("/lib/swift/") {
                    // A debug build's Swift runtime; the image links it statically.
                    #expect(cf.contains("--static-swift-stdlib"), "\(resolved) is a Swift runtime library but the image does not link the runtime statically")
                    continue
                }
                guard let pkg = Self.owner(resolved) else {
                    Issue.record("\(name): \(resolved) belongs to no Debian package (dpkg -S); the image cannot install it")
                    continue
                }
                if !present.contains(pkg) { missing.append("\(soname) (\(pkg))") }
            }
            #expect(missing.isEmpty, "\(name) (\(path)) links libraries the runtime stage does not install: \(missing.joined(separator: ", ")); add their packages to ContainerBuild.runtimePackages")
        }
    }

    @Test func runtimeStageParsing() {
        #expect(Self.runtimeStagePackages(ContainerBuild.containerfile) == ContainerBuild.runtimePackages)
        #expect(Self.runtimeStagePackages("FROM a AS runtime\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends x y \\\n") == ["x", "y"])
    }
}
