/// FNV-1a 64-bit of the UTF-8 bytes, as 16 lowercase hex digits: the stable short checksum the
/// project names things by (content-named ConfigMaps, the server's `system_fingerprint`).
public func fnv1a64Hex(_ s: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01B3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
