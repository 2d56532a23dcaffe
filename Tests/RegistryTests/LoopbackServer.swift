import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tiny HTTP/1.1 file server on 127.0.0.1 for pull tests. Sends an ETag and honours
/// `Range: bytes=N-` (and `If-Range`).
/// When `cutFirstResponseAt` is set, the first full response stops after that many body bytes
/// and closes the connection (an interrupted download).
final class LoopbackServer: @unchecked Sendable {
    static let etag = "\"loopback-1\""
    let body: [UInt8]
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var cut: Int?
    private var _ranges: [String] = []
    var rangesSeen: [String] { lock.lock(); defer { lock.unlock() }; return _ranges }

    init?(body: [UInt8], cutFirstResponseAt: Int? = nil) {
        self.body = body
        self.cut = cutFirstResponseAt
        guard case let (s, p)? = openLoopbackListener(backlog: 8) else { return nil }
        fd = s
        port = p
        let t = Thread { [self] in self.acceptLoop() }
        t.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            handle(c)
            close(c)
        }
    }

    private func handle(_ c: Int32) {
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !request.containsHeaderEnd() {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            request += buf[0..<n]
        }
        let text = String(decoding: request, as: UTF8.self)
        var start = 0
        var ifRange: String?
        for line in text.split(separator: "\r\n") {
            if line.lowercased().hasPrefix("range:") {
                let value = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
                lock.lock(); _ranges.append(value); lock.unlock()
                if value.hasPrefix("bytes="), let n = Int(value.dropFirst(6).split(separator: "-").first ?? "") { start = n }
            } else if line.lowercased().hasPrefix("if-range:") {
                ifRange = line.dropFirst(9).trimmingCharacters(in: .whitespaces)
            }
        }
        // If-Range: the body never changes, so only its own ETag matches.
        if let ifRange, ifRange != LoopbackServer.etag { start = 0 }
        let path = text.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        if path.hasPrefix("/missing") {
            send(c, Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        lock.lock(); let cutAt = cut; cut = nil; lock.unlock()
        var head: String
        if start > 0 && start < body.count {
            head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes \(start)-\(body.count - 1)/\(body.count)\r\nContent-Length: \(body.count - start)\r\n"
        } else {
            start = 0
            head = "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n"
        }
        head += "ETag: \(LoopbackServer.etag)\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        send(c, Array(head.utf8))
        let end = cutAt.map { min(start + $0, body.count) } ?? body.count
        send(c, Array(body[start..<end]))
    }

    private func send(_ c: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            off += n
        }
    }
}

extension Array where Element == UInt8 {
    func containsHeaderEnd() -> Bool {
        guard count >= 4 else { return false }
        for i in 0...(count - 4) where self[i] == 13 && self[i + 1] == 10 && self[i + 2] == 13 && self[i + 3] == 10 { return true }
        return false
    }
}
