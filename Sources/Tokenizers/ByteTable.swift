/// Immutable open-addressing hash table mapping byte strings to token ids.
/// Keys are compared byte-for-byte (Swift `String` equality would apply canonical
/// equivalence, which is wrong for vocabulary lookup).
struct ByteTable: Sendable {
    /// Concatenated bytes of all keys.
    let storage: [UInt8]
    /// `offsets[i]..<offsets[i+1]` is the key of entry i (entry i = token id i).
    let offsets: [Int32]
    /// Slots holding entry ids, -1 when empty.
    let slots: [Int32]
    let mask: Int

    /// Builds the table over `storage/offsets`; when a key occurs more than once the
    /// highest id wins (as a map assignment in vocabulary order would).
    init(storage: [UInt8], offsets: [Int32]) {
        self.storage = storage
        self.offsets = offsets
        let n = offsets.count - 1
        var cap = 16
        while cap < n * 2 { cap <<= 1 }
        let mask = cap - 1
        var slots = [Int32](repeating: -1, count: cap)
        storage.withUnsafeBufferPointer { st in
            offsets.withUnsafeBufferPointer { off in
                slots.withUnsafeMutableBufferPointer { sl in
                    for id in 0..<n {
                        let s = Int(off[id]), e = Int(off[id + 1])
                        let h = ByteTable.hash(st.baseAddress.map { $0 + s }, e - s)
                        var p = h & mask
                        while true {
                            let cur = sl[p]
                            if cur < 0 { sl[p] = Int32(id); break }
                            let cs = Int(off[Int(cur)]), ce = Int(off[Int(cur) + 1])
                            if ce - cs == e - s && ByteTable.equal(st, cs, st, s, e - s) {
                                sl[p] = Int32(id); break
                            }
                            p = (p + 1) & mask
                        }
                    }
                }
            }
        }
        self.slots = slots
        self.mask = mask
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>?, _ count: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        if let p {
            for i in 0..<count { h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01b3 }
        }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 32
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    static func equal(_ a: UnsafeBufferPointer<UInt8>, _ ai: Int, _ b: UnsafeBufferPointer<UInt8>, _ bi: Int, _ n: Int) -> Bool {
        var k = 0
        while k < n { if a[ai + k] != b[bi + k] { return false }; k += 1 }
        return true
    }

    /// Looks up `count` bytes at `p`; returns the token id or nil.
    func lookup(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32? {
        let h = ByteTable.hash(p, count)
        return storage.withUnsafeBufferPointer { st in
            offsets.withUnsafeBufferPointer { off in
                slots.withUnsafeBufferPointer { sl in
                    var i = h & mask
                    while true {
                        let cur = sl[i]
                        if cur < 0 { return nil }
                        let cs = Int(off[Int(cur)]), ce = Int(off[Int(cur) + 1])
                        if ce - cs == count {
                            var k = 0
                            while k < count && st[cs + k] == p[k] { k += 1 }
                            if k == count { return cur }
                        }
                        i = (i + 1) & mask
                    }
                }
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else {
                var z: UInt8 = 0
                return withUnsafePointer(to: &z) { lookup($0, 0) }
            }
            return lookup(base, b.count)
        }
    }

    func lookup(_ bytes: ArraySlice<UInt8>) -> Int32? {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return lookup([UInt8]()) }
            return lookup(base, b.count)
        }
    }

    /// Bytes of entry `id`.
    func bytes(of id: Int) -> ArraySlice<UInt8> {
        storage[Int(offsets[id])..<Int(offsets[id + 1])]
    }
}
