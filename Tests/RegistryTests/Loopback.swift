import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP listener on 127.0.0.1 with a kernel-chosen port: (socket, port), or nil when the socket
/// cannot be created or bound. Shared by the test servers in this target.
func openLoopbackListener(backlog: Int32) -> (Int32, UInt16)? {
    #if canImport(Glibc)
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let s = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard s >= 0 else { return nil }
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0, listen(s, backlog) == 0 else { close(s); return nil }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return (s, UInt16(bigEndian: addr.sin_port))
}
