import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Hugging Face Hub settings, read from the environment the way the hub's own clients read them.
public struct HubSettings: Sendable, Equatable {
    /// `HF_ENDPOINT`, else https://huggingface.co (no trailing slash).
    public var endpoint: String
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`; sent as `Authorization: Bearer` to the endpoint's host only.
    public var token: String?
    /// `HF_HUB_OFFLINE=1`: never touch the network; only what the registry already holds.
    public var offline: Bool

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        var e = environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co"
        while e.hasSuffix("/") { e.removeLast() }
        endpoint = e
        token = [environment["HF_TOKEN"], environment["HUGGING_FACE_HUB_TOKEN"]].compactMap { $0 }.first { !$0.isEmpty }
        offline = ["1", "true", "yes", "on"].contains((environment["HF_HUB_OFFLINE"] ?? "").lowercased())
    }
}

/// The parts of the hub's model-info JSON (`/api/models/{repo}/revision/{revision}`) a
/// reference uses; everything else in it is ignored.
struct HubRepositoryInfo: Decodable {
    struct Sibling: Decodable { var rfilename: String }
    struct Config: Decodable {
        var architectures: [String]?
        var modelType: String?
        enum CodingKeys: String, CodingKey { case architectures, modelType = "model_type" }
    }
    struct Safetensors: Decodable { var total: Int? }
    /// The commit the revision resolves to.
    var sha: String?
    var siblings: [Sibling]?
    var config: Config?
    var safetensors: Safetensors?
    /// false, or "auto"/"manual" for a gated repository.
    var gated: Gated?

    enum Gated: Decodable {
        case no, yes(String)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = b ? .yes("true") : .no; return }
            self = .yes((try? c.decode(String.self)) ?? "yes")
        }
    }

    var files: [String] { (siblings ?? []).map(\.rfilename) }
    var architecture: String { config?.architectures?.first ?? config?.modelType ?? "" }
}

/// What the hub says about one file before its bytes are fetched.
struct HubFileInfo {
    var sha256: String?
    var commit: String?
    var size: Int64?
    var downloadURL: URL
}

/// One HTTP exchange with redirects *not* followed (the caller follows them, deciding per hop
/// whether `Authorization` may go along). Body bytes go to `sink` for 200/206 answers only,
/// judged by `ResumeState.verdict` against the partial's stored validator.
final class HubExchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let sink: FileHandle?
    let partial: String?
    let storedValidator: String?
    let progress: ProgressHandler?
    let startOffset: Int64
    var written: Int64
    var total: Int64?
    var response: HTTPURLResponse?
    var failure: String?
    /// Why the answer cannot continue the partial (the caller restarts from byte 0).
    var restart: String?
    /// The partial already holds the whole file.
    var complete = false
    var cancelledByUs = false
    /// Keep a 200 answer's body in memory (`body`, at most `bodyLimit` bytes): JSON API calls.
    let collect: Bool
    var body = Data()
    static let bodyLimit = 64 << 20
    let done = DispatchSemaphore(value: 0)

    init(sink: FileHandle?, partial: String? = nil, storedValidator: String? = nil, offset: Int64, progress: ProgressHandler?,
         collect: Bool = false) {
        self.collect = collect
        self.sink = sink
        self.partial = partial
        self.storedValidator = storedValidator
        self.startOffset = offset
        self.written = offset
        self.progress = progress
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse else { failure = "not an HTTP response"; completionHandler(.cancel); return }
        self.response = http
        if collect {
            cancelledByUs = http.statusCode != 200
            completionHandler(cancelledByUs ? .cancel : .allow)
            return
        }
        guard let sink, let partial, [200, 206, 416].contains(http.statusCode) else {
            cancelledByUs = dataTask.originalRequest?.httpMethod != "HEAD"
            completionHandler(cancelledByUs ? .cancel : .allow)
            return
        }
        switch ResumeState.start(http, offset: startOffset, stored: storedValidator, sink: sink, written: &written, partial: partial) {
        case .proceed(let t): total = t
        case .complete:
            complete = true
            total = startOffset
        case .restart(let why): restart = why
        case .fail(let why): failure = why
        }
        let proceed = failure == nil && restart == nil && !complete
        cancelledByUs = !proceed
        completionHandler(proceed ? .allow : .cancel)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        if collect {
            guard failure == nil else { return }
            body.append(data)
            if body.count > HubExchange.bodyLimit {
                failure = "the answer is larger than \(HubExchange.bodyLimit >> 20) MiB"
                cancelledByUs = true
                dataTask.cancel()
            }
            return
        }
        guard failure == nil, restart == nil, !complete, let sink else { return }
        do { try sink.write(contentsOf: data) } catch {
            failure = "write failed: \(error.localizedDescription)"
            cancelledByUs = true
            dataTask.cancel()
            return
        }
        written += Int64(data.count)
        progress?("download", written, total)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil, !cancelledByUs { failure = error.localizedDescription }
        done.signal()
    }
}

/// `hf://ORG/REPO[@REVISION]/PATH.gguf` over the Hugging Face Hub's HTTP protocol:
/// `HEAD {endpoint}/{repo}/resolve/{revision}/{path}` (redirects followed by hand; the LFS sha256
/// comes from `X-Linked-Etag`/`ETag`, the commit from `X-Repo-Commit`, the size from
/// `X-Linked-Size`/`Content-Length`), then `GET` of the final URL with `Range: bytes=N-` when a
/// partial download of the same file (same sha or commit) exists.
///
/// URLSession is kept rather than async-http-client: it is synchronous-friendly for the CLI, and
/// refusing redirects in the delegate hands us each 3xx (verified on Linux's FoundationNetworking)
/// so the Authorization header is only ever attached by us, per hop, to the endpoint's own host.
struct HubFetcher {
    var settings: HubSettings
    var workRoot: String
    var progress: ProgressHandler?
    var log: @Sendable (String) -> Void
    var timeout: TimeInterval = 30

    static let pathAllowed: CharacterSet = {
        var s = CharacterSet.alphanumerics
        s.insert(charactersIn: "-._~")
        return s
    }()

    static func label(repo: String, revision: String, path: String) -> String { "hf://\(repo)@\(revision)/\(path)" }

    func resolveURL(repo: String, revision: String, path: String) throws -> URL {
        let rev = revision.addingPercentEncoding(withAllowedCharacters: HubFetcher.pathAllowed) ?? revision
        let file = path.split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: HubFetcher.pathAllowed) ?? String($0) }
            .joined(separator: "/")
        guard let u = URL(string: "\(settings.endpoint)/\(repo)/resolve/\(rev)/\(file)") else {
            throw RegistryError.malformedRef(HubFetcher.label(repo: repo, revision: revision, path: path),
                                             reason: "cannot build a URL from HF_ENDPOINT '\(settings.endpoint)'")
        }
        return u
    }

    var endpointHost: String { HubFetcher.hostKey(URL(string: settings.endpoint)) }

    static func hostKey(_ u: URL?) -> String {
        guard let u else { return "" }
        return "\(u.scheme?.lowercased() ?? "")://\(u.host?.lowercased() ?? ""):\(u.port.map(String.init) ?? "")"
    }

    /// A sha256 from an ETag-like header: quotes and `W/` stripped; only 64 hex digits count.
    static func digest(fromETag raw: String?) -> String? {
        guard var t = raw?.trimmingCharacters(in: .whitespaces) else { return nil }
        if t.hasPrefix("W/") { t.removeFirst(2) }
        t = t.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return try? normalizedDigest(t)
    }

    func exchange(_ request: URLRequest, sink: FileHandle?, partial: String? = nil, storedValidator: String? = nil,
                  offset: Int64, label: String, collect: Bool = false) throws -> HubExchange {
        let ex = HubExchange(sink: sink, partial: partial, storedValidator: storedValidator, offset: offset,
                             progress: sink == nil ? nil : progress, collect: collect)
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.httpCookieStorage = nil
        config.urlCache = nil
        let session = URLSession(configuration: config, delegate: ex, delegateQueue: nil)
        session.dataTask(with: request).resume()
        ex.done.wait()
        session.finishTasksAndInvalidate()
        if ex.response == nil {
            throw RegistryError.fetchFailed(source: label, reason: "cannot reach \(request.url?.host ?? settings.endpoint) (\(ex.failure ?? "no response")); check the network or set HF_ENDPOINT to a mirror")
        }
        return ex
    }

    func request(_ url: URL, method: String = "GET") -> URLRequest {
        var r = URLRequest(url: url)
        r.httpMethod = method
        r.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        r.setValue("autoglm", forHTTPHeaderField: "User-Agent")
        if let token = settings.token, HubFetcher.hostKey(url) == endpointHost {
            r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        return r
    }

    func statusError(_ status: Int, repo: String, revision: String, path: String) -> RegistryError {
        let label = HubFetcher.label(repo: repo, revision: revision, path: path)
        switch status {
        case 401, 403:
            return .fetchFailed(source: label, reason: "the hub answered HTTP \(status): the repository is gated or private. "
                + (settings.token == nil ? "Set HF_TOKEN to an access token that can read \(repo)" : "The token in HF_TOKEN cannot read \(repo); check it and accept the repository's terms on the hub"))
        case 404:
            return .fetchFailed(source: label, reason: "not found (HTTP 404): repository '\(repo)', revision '\(revision)', file '\(path)' — check the spelling, the revision and the file name")
        default:
            return .fetchFailed(source: label, reason: "the hub answered HTTP \(status); try again later or set HF_ENDPOINT to a mirror")
        }
    }

    /// Resolves a file's metadata: follows same-host redirects, stops at the first redirect to
    /// another host (the CDN), whose URL becomes the download URL.
    func info(repo: String, revision: String, path: String) throws -> HubFileInfo {
        let label = HubFetcher.label(repo: repo, revision: revision, path: path)
        var url = try resolveURL(repo: repo, revision: revision, path: path)
        var sha: String?, commit: String?, size: Int64?
        for _ in 0..<10 {
            let ex = try exchange(request(url, method: "HEAD"), sink: nil, offset: 0, label: label)
            guard let h = ex.response else { break }
            sha = sha ?? HubFetcher.digest(fromETag: h.value(forHTTPHeaderField: "X-Linked-Etag"))
                ?? (h.statusCode == 200 ? HubFetcher.digest(fromETag: h.value(forHTTPHeaderField: "ETag")) : nil)
            commit = commit ?? h.value(forHTTPHeaderField: "X-Repo-Commit")
            size = size ?? h.value(forHTTPHeaderField: "X-Linked-Size").flatMap { Int64($0) }
            switch h.statusCode {
            case 200..<300:
                size = size ?? h.value(forHTTPHeaderField: "Content-Length").flatMap { Int64($0) }
                return HubFileInfo(sha256: sha, commit: commit, size: size, downloadURL: url)
            case 301, 302, 303, 307, 308:
                guard let loc = h.value(forHTTPHeaderField: "Location"), let next = URL(string: loc, relativeTo: url)?.absoluteURL else {
                    throw RegistryError.fetchFailed(source: label, reason: "the hub redirected without a Location header")
                }
                if HubFetcher.hostKey(next) != endpointHost {
                    return HubFileInfo(sha256: sha, commit: commit, size: size, downloadURL: next)
                }
                url = next
            default:
                throw statusError(h.statusCode, repo: repo, revision: revision, path: path)
            }
        }
        throw RegistryError.fetchFailed(source: label, reason: "too many redirects")
    }

    /// Downloads into a partial file named by the file's identity (repo, path, sha or commit), so
    /// an interrupted pull resumes with `Range` + `If-Range` (see `ResumeState`) and a changed
    /// file never splices onto old bytes. The caller removes the partial with `ResumeState.discard`.
    func download(_ info: HubFileInfo, repo: String, revision: String, path: String) throws -> String {
        let label = HubFetcher.label(repo: repo, revision: revision, path: path)
        try? FileManager.default.createDirectory(atPath: workRoot, withIntermediateDirectories: true)
        let identity = "\(repo)|\(path)|\(info.sha256 ?? info.commit.map { "commit:\($0)" } ?? "rev:\(revision)")"
        let partial = "\(workRoot)/.tmp-hf-\(SHA256Hasher.hex(of: Array(identity.utf8)).prefix(24)).partial"
        if !FileManager.default.fileExists(atPath: partial) {
            guard FileManager.default.createFile(atPath: partial, contents: nil) else {
                throw RegistryError.io(path: partial, reason: "cannot create (is the cache directory writable and the disk not full?)")
            }
        }
        guard let handle = FileHandle(forUpdatingAtPath: partial) else { throw RegistryError.io(path: partial, reason: "cannot open") }
        defer { try? handle.close() }
        var offset: Int64
        do { offset = Int64(try handle.seekToEnd()) } catch { throw RegistryError.io(path: partial, reason: error.localizedDescription) }
        var stored = offset > 0 ? ResumeState.stored(for: partial) : nil
        if offset > 0, stored == nil {
            log("restarting \(label) from byte 0: the \(offset) bytes kept have no ETag/Last-Modified to resume against")
            offset = 0
        }
        if let size = info.size, offset > size { offset = 0 }
        func restartFromZero() throws {
            do {
                try handle.truncate(atOffset: 0)
                try handle.seek(toOffset: 0)
            } catch { throw RegistryError.io(path: partial, reason: error.localizedDescription) }
            try ResumeState.store(nil, for: partial)
        }
        if offset == 0 { try restartFromZero() }
        // A complete partial of an immutable identity (the sha is verified at registration).
        if let size = info.size, size > 0, offset == size, info.sha256 != nil || info.commit != nil { return partial }
        var url = info.downloadURL
        var restarted = false
        for _ in 0..<10 {
            var req = request(url)
            if offset > 0, let stored {
                req.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range")
                req.setValue(stored, forHTTPHeaderField: "If-Range")
                log("resuming \(label) at byte \(offset)")
            }
            let ex = try exchange(req, sink: handle, partial: partial, storedValidator: stored, offset: offset, label: label)
            guard let h = ex.response else { break }
            if let why = ex.restart {
                guard offset > 0, !restarted else { throw RegistryError.fetchFailed(source: label, reason: why) }
                log("restarting \(label) from byte 0: \(why)")
                try restartFromZero()
                offset = 0
                stored = nil
                restarted = true
                continue
            }
            switch h.statusCode {
            case 200, 206, 416 where ex.complete:
                if let f = ex.failure {
                    throw RegistryError.fetchFailed(source: label, reason: f + (ex.written > 0 ? " (\(ex.written) bytes kept; pull again to resume)" : ""))
                }
                let want = info.size ?? ex.total
                if let want, ex.written != want {
                    throw RegistryError.fetchFailed(source: label, reason: "connection closed at \(ex.written) of \(want) bytes; pull again to resume")
                }
                return partial
            case 301, 302, 303, 307, 308:
                guard let loc = h.value(forHTTPHeaderField: "Location"), let next = URL(string: loc, relativeTo: url)?.absoluteURL else {
                    throw RegistryError.fetchFailed(source: label, reason: "redirect without a Location header")
                }
                url = next
            default:
                throw statusError(h.statusCode, repo: repo, revision: revision, path: path)
            }
        }
        throw RegistryError.fetchFailed(source: label, reason: "too many redirects")
    }

    /// `GET {endpoint}/api/models/{repo}/revision/{revision}` (the revision percent-encoded, '/'
    /// included, as the hub's own client sends it): the commit the revision resolves to, the
    /// repository's files, and what the hub knows of the model. Same-host redirects (a renamed
    /// repository) are followed, with the token; others are refused.
    func repositoryInfo(repo: String, revision: String) throws -> HubRepositoryInfo {
        let label = "hf://\(repo)@\(revision)"
        var encoded = CharacterSet.alphanumerics
        encoded.insert(charactersIn: "-._~")
        let rev = revision.addingPercentEncoding(withAllowedCharacters: encoded) ?? revision
        guard var url = URL(string: "\(settings.endpoint)/api/models/\(repo)/revision/\(rev)") else {
            throw RegistryError.malformedRef(label, reason: "cannot build a URL from HF_ENDPOINT '\(settings.endpoint)'")
        }
        for _ in 0..<10 {
            var req = request(url)
            req.setValue("application/json", forHTTPHeaderField: "Accept")
            let ex = try exchange(req, sink: nil, offset: 0, label: label, collect: true)
            guard let h = ex.response else { break }
            switch h.statusCode {
            case 200:
                if let f = ex.failure { throw RegistryError.fetchFailed(source: label, reason: f) }
                let decoded: HubRepositoryInfo
                do { decoded = try JSONDecoder().decode(HubRepositoryInfo.self, from: ex.body) } catch {
                    throw RegistryError.fetchFailed(source: label, reason: "the hub's answer is not the model-info JSON expected (\(error)); check HF_ENDPOINT")
                }
                return decoded
            case 301, 302, 303, 307, 308:
                guard let loc = h.value(forHTTPHeaderField: "Location"), let next = URL(string: loc, relativeTo: url)?.absoluteURL else {
                    throw RegistryError.fetchFailed(source: label, reason: "the hub redirected without a Location header")
                }
                guard HubFetcher.hostKey(next) == endpointHost else {
                    throw RegistryError.fetchFailed(source: label, reason: "the hub redirected the model-info request to another host (\(next.host ?? "?")); check HF_ENDPOINT")
                }
                url = next
            case 401, 403:
                throw RegistryError.fetchFailed(source: label, reason: "the hub answered HTTP \(h.statusCode): the repository is private or gated, or does not exist. "
                    + (settings.token == nil ? "Check the repo id; if it is private or gated, set HF_TOKEN to an access token that can read \(repo)"
                                             : "The token in HF_TOKEN cannot read \(repo); check the repo id and the token, and accept the repository's terms on the hub"))
            case 404:
                let code = h.value(forHTTPHeaderField: "X-Error-Code") ?? ""
                let what = code == "RevisionNotFound" ? "revision '\(revision)' does not exist in \(repo)"
                    : code == "RepoNotFound" ? "repository '\(repo)' does not exist" : "repository '\(repo)' or its revision '\(revision)' does not exist"
                throw RegistryError.fetchFailed(source: label, reason: "not found (HTTP 404): \(what) — check the spelling and the revision (a branch, tag or commit)")
            default:
                throw RegistryError.fetchFailed(source: label, reason: "the hub answered HTTP \(h.statusCode); try again later or set HF_ENDPOINT to a mirror")
            }
        }
        throw RegistryError.fetchFailed(source: label, reason: "too many redirects")
    }

    /// `NAME-00001-of-00003.gguf` → the three part paths; nil for a single file.
    static func splitSet(_ path: String) -> [String]? {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        guard name.lowercased().hasSuffix(".gguf") else { return nil }
        let stem = name.dropLast(5)
        let parts = stem.components(separatedBy: "-")
        guard parts.count >= 4, parts[parts.count - 2] == "of",
              let count = Int(parts[parts.count - 1]), Int(parts[parts.count - 3]) != nil, count >= 1,
              parts[parts.count - 1].count == parts[parts.count - 3].count else { return nil }
        let width = parts[parts.count - 1].count
        let base = parts.dropLast(3).joined(separator: "-")
        func pad(_ n: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, width - s.count)) + s }
        return (1...count).map { i in
            let file = "\(base)-\(pad(i))-of-\(pad(count)).gguf"
            return dir.isEmpty ? file : "\(dir)/\(file)"
        }
    }

    /// The default version: the revision when it is SemVer (a `v` prefix allowed), else
    /// `0.0.0+<commit7>` (or the revision's characters when the hub gave no commit).
    static func defaultVersion(revision: String, commit: String?) -> SemVer {
        let r = revision.hasPrefix("v") ? String(revision.dropFirst()) : revision
        if let v = SemVer.lenient(r) { return v }
        let meta = (commit.map { String($0.prefix(7)) } ?? revision).filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        return SemVer(0, 0, 0, build: meta.isEmpty ? [] : [meta])
    }
}
