import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An in-process stand-in for the Hugging Face Hub on 127.0.0.1, speaking the parts of its HTTP
/// protocol that `hf://` pulls use. Two listeners on two ports play two hosts: the hub
/// (`/ORG/REPO/resolve/REV/PATH`: 302 with `X-Linked-Etag`, `X-Repo-Commit`, `X-Linked-Size`)
/// and a CDN (`/cdn/PATH`: the bytes with an ETag, `Range` → 206 unless `If-Range` names an
/// older version). With `sameHostCDN` the redirect goes to `/cdn/PATH` on the hub itself instead.
/// The model-info API (`/api/models/ORG/REPO/revision/REV`) answers JSON in the real hub's shape:
/// `sha` (the revision's commit), `siblings[].rfilename` (the files), `config`, `safetensors`;
/// 404 with `X-Error-Code: RepoNotFound` / `RevisionNotFound` like the hub.
///
/// Written on raw sockets (not Hummingbird) so a test controls every header byte and can cut a
/// connection after exactly N body bytes.
final class FakeHub: @unchecked Sendable {
    struct Request: Sendable {
        var host: String          // "hub" or "cdn"
        var method: String
        var path: String
        var headers: [String: String]   // lower-cased names
        var bodyBytesSent: Int
    }

    let repo: String
    let commit: String
    private let lock = NSLock()
    private var files: [String: [UInt8]]
    private var digests: [String: String]
    private var _requests: [Request] = []
    private let hubFD: Int32
    private let cdnFD: Int32
    let hubPort: UInt16
    let cdnPort: UInt16

    /// Require `Authorization: Bearer <token>` on the hub's resolve endpoint.
    var requiredToken: String? { get { locked { _token } } set { locked { _token = newValue } } }
    /// Cut the next full/partial body of PATH after N bytes and close the connection.
    func cutNext(_ path: String, after n: Int) { locked { cuts[path] = n } }
    /// Answer the resolve of PATH with HTTP status N (500, …); PATH "api": the model-info API.
    func failResolve(_ path: String, status: Int) { locked { failures[path] = status } }
    /// Ignore Range headers (always 200 with the whole file).
    var ignoreRange: Bool { get { locked { _ignoreRange } } set { locked { _ignoreRange = newValue } } }
    var sameHostCDN: Bool { get { locked { _sameHost } } set { locked { _sameHost = newValue } } }

    /// Which validators the CDN sends with a file (and honours in `If-Range`).
    enum Validators: Sendable { case etag, weakETag, lastModified, none }
    var validators: Validators { get { locked { _validators } } set { locked { _validators = newValue } } }
    /// Serve `Range` even when `If-Range` does not match (a server that ignores If-Range).
    var ignoreIfRange: Bool { get { locked { _ignoreIfRange } } set { locked { _ignoreIfRange = newValue } } }
    /// Answer a range request with a 206 that starts at half the asked offset (a broken server).
    var misplaceRanges: Bool { get { locked { _misplace } } set { locked { _misplace = newValue } } }
    /// Replaces PATH's bytes (a new upload): its ETag and Last-Modified change with it.
    func replace(_ path: String, with bytes: [UInt8], digest: String) {
        locked {
            files[path] = bytes
            digests[path] = digest
            versions[path, default: 1] += 1
        }
    }
    /// The ETag and Last-Modified the CDN sends for PATH now.
    func validatorsOf(_ path: String) -> (etag: String, lastModified: String) {
        let v = locked { versions[path, default: 1] }
        return ("\"\(path)-v\(v)\"", "Mon, \(String(format: "%02d", v)) Jan 2024 00:00:00 GMT")
    }

    /// Maps a revision to its commit for the model-info API; when empty every revision resolves
    /// to `commit`, otherwise an unlisted revision is RevisionNotFound.
    func setRevision(_ revision: String, commit: String) { locked { revisionCommits[revision] = commit } }
    private var revisionCommits: [String: String] = [:]
    private var _token: String?
    private var _validators: Validators = .etag
    private var _ignoreIfRange = false
    private var _misplace = false
    private var versions: [String: Int] = [:]
    private var cuts: [String: Int] = [:]
    private var failures: [String: Int] = [:]
    private var _ignoreRange = false
    private var _sameHost = false

    var requests: [Request] { locked { _requests } }
    var endpoint: String { "http://127.0.0.1:\(hubPort)" }

    /// `digests` are the sha256 values the hub announces (computed by the test with an
    /// independent tool); a wrong one models a corrupted upload.
    init?(repo: String = "org/repo", commit: String = "0123456789abcdef0123456789abcdef01234567",
          files: [String: [UInt8]], digests: [String: String]) {
        self.repo = repo
        self.commit = commit
        self.files = files
        self.digests = digests
        guard case let (h, hp)? = openLoopbackListener(backlog: 16), case let (c, cp)? = openLoopbackListener(backlog: 16) else { return nil }
        hubFD = h; hubPort = hp; cdnFD = c; cdnPort = cp
        Thread { [self] in self.acceptLoop(fd: hubFD, host: "hub") }.start()
        Thread { [self] in self.acceptLoop(fd: cdnFD, host: "cdn") }.start()
    }

    func stop() {
        for fd in [hubFD, cdnFD] { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    private func locked<T>(_ body: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return body() }

    private func acceptLoop(fd: Int32, host: String) {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            handle(c, host: host)
            close(c)
        }
    }

    private func handle(_ c: Int32, host: String) {
        var raw: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !raw.containsHeaderEnd() {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            raw += buf[0..<n]
        }
        let text = String(decoding: raw, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        let first = lines.first?.split(separator: " ").map(String.init) ?? []
        guard first.count >= 2 else { return }
        let method = first[0], target = first[1]
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let path = (target.removingPercentEncoding ?? target).components(separatedBy: "?")[0]
        // Recorded before the answer goes out: a client that has its answer finds its request here.
        let index = locked { () -> Int in
            _requests.append(Request(host: host, method: method, path: path, headers: headers, bodyBytesSent: 0))
            return _requests.count - 1
        }
        let sent = route(c, host: host, method: method, path: path, headers: headers)
        locked { _requests[index].bodyBytesSent = sent }
    }

    /// Returns the number of body bytes sent.
    private func route(_ c: Int32, host: String, method: String, path: String, headers: [String: String]) -> Int {
        let resolvePrefix = "/\(repo)/resolve/"
        if host == "hub", path.hasPrefix("/api/models/") { return modelInfo(c, path: path, headers: headers) }
        if host == "hub", path.hasPrefix(resolvePrefix) {
            let rest = String(path.dropFirst(resolvePrefix.count))
            guard let slash = rest.firstIndex(of: "/") else { return status(c, 404, "Not Found") }
            let file = String(rest[rest.index(after: slash)...])
            let (token, failure, sameHost) = locked { (_token, failures[file], _sameHost) }
            if let token, headers["authorization"] != "Bearer \(token)" {
                return status(c, 401, "Unauthorized", extra: "X-Error-Code: GatedRepo\r\n")
            }
            if let failure { return status(c, failure, "Failure") }
            guard let bytes = locked({ files[file] }), let sha = locked({ digests[file] }) else {
                return status(c, 404, "Not Found", extra: "X-Error-Code: EntryNotFound\r\n")
            }
            let location = sameHost ? "/cdn/\(file)" : "http://127.0.0.1:\(cdnPort)/cdn/\(file)"
            let head = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nX-Linked-Etag: \"\(sha)\"\r\nETag: W/\"not-the-sha\"\r\n"
                + "X-Repo-Commit: \(commit)\r\nX-Linked-Size: \(bytes.count)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            sendAll(c, Array(head.utf8))
            return 0
        }
        if path.hasPrefix("/cdn/"), host == "cdn" || locked({ _sameHost }) {
            let file = String(path.dropFirst(5))
            guard let bytes = locked({ files[file] }) else { return status(c, 404, "Not Found") }
            let (mode, ignoreIfRange, misplace) = locked { (_validators, _ignoreIfRange, _misplace) }
            let (etag, lastModified) = validatorsOf(file)
            var validatorHeaders = ""
            switch mode {
            case .etag: validatorHeaders = "ETag: \(etag)\r\n"
            case .weakETag: validatorHeaders = "ETag: W/\(etag)\r\n"
            case .lastModified: validatorHeaders = "Last-Modified: \(lastModified)\r\n"
            case .none: break
            }
            var start = 0
            if !locked({ _ignoreRange }), let r = headers["range"], r.hasPrefix("bytes="),
               let n = Int(r.dropFirst(6).split(separator: "-").first ?? "") {
                start = n
            }
            // RFC 9110 If-Range: a range only when the validator still matches (strong
            // comparison: a weak ETag never matches); otherwise the whole current file.
            if start > 0, let condition = headers["if-range"], !ignoreIfRange {
                let matches = (mode == .etag && condition == etag) || (mode == .lastModified && condition == lastModified)
                if !matches { start = 0 }
            }
            if start >= bytes.count && start > 0 {
                return status(c, 416, "Range Not Satisfiable", extra: "Content-Range: bytes */\(bytes.count)\r\n" + validatorHeaders)
            }
            if misplace && start > 0 { start /= 2 }
            var head = start > 0
                ? "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes \(start)-\(bytes.count - 1)/\(bytes.count)\r\n"
                : "HTTP/1.1 200 OK\r\n"
            head += validatorHeaders
            head += "Content-Length: \(bytes.count - start)\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            sendAll(c, Array(head.utf8))
            if method == "HEAD" { return 0 }
            let cut = locked { cuts.removeValue(forKey: file) }
            let end = cut.map { min(start + $0, bytes.count) } ?? bytes.count
            sendAll(c, Array(bytes[start..<end]))
            return end - start
        }
        return status(c, 404, "Not Found")
    }

    /// `GET /api/models/ORG/REPO/revision/REV` (the path arrives percent-decoded).
    private func modelInfo(_ c: Int32, path: String, headers: [String: String]) -> Int {
        let prefix = "/api/models/\(repo)/revision/"
        let (token, failure, commits, names) = locked { (_token, failures["api"], revisionCommits, files.keys.sorted()) }
        if let token, headers["authorization"] != "Bearer \(token)" {
            return json(c, 401, "Unauthorized", ["error": "Invalid username or password."], extra: "X-Error-Code: RepoNotFound\r\n")
        }
        if let failure { return status(c, failure, "Failure") }
        guard path.hasPrefix(prefix) else {
            return json(c, 404, "Not Found", ["error": "Repository not found"], extra: "X-Error-Code: RepoNotFound\r\n")
        }
        let revision = String(path.dropFirst(prefix.count))
        guard let sha = commits.isEmpty ? commit : commits[revision] else {
            return json(c, 404, "Not Found", ["error": "Invalid rev id: \(revision)"], extra: "X-Error-Code: RevisionNotFound\r\n")
        }
        var body: [String: Any] = [
            "_id": "65f0c0ffee", "id": repo, "modelId": repo, "author": String(repo.split(separator: "/")[0]),
            "sha": sha, "lastModified": "2024-09-19T10:00:00.000Z", "private": false, "disabled": false, "gated": false,
            "downloads": 0, "likes": 0, "tags": ["transformers"], "library_name": "transformers",
            "siblings": names.map { ["rfilename": $0] }, "createdAt": "2024-09-01T00:00:00.000Z",
        ]
        if names.contains("config.json") { body["config"] = ["architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"] }
        if names.contains(where: { $0.hasSuffix(".safetensors") }) {
            body["safetensors"] = ["parameters": ["BF16": 494_032_768], "total": 494_032_768]
        }
        return json(c, 200, "OK", body)
    }

    private func json(_ c: Int32, _ code: Int, _ reason: String, _ object: [String: Any], extra: String = "") -> Int {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        sendAll(c, Array("HTTP/1.1 \(code) \(reason)\r\n\(extra)Content-Type: application/json; charset=utf-8\r\nContent-Length: \(data.count)\r\nConnection: close\r\n\r\n".utf8) + Array(data))
        return data.count
    }

    private func status(_ c: Int32, _ code: Int, _ reason: String, extra: String = "") -> Int {
        sendAll(c, Array("HTTP/1.1 \(code) \(reason)\r\n\(extra)Content-Length: 0\r\nConnection: close\r\n\r\n".utf8))
        return 0
    }

    private func sendAll(_ c: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}

/// sha256 by an independent implementation: coreutils `sha256sum` over the bytes.
func externalSHA256(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "autoglm-sha-oracle-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["sha256sum", path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}
