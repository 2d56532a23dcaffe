import Foundation
import Models
import Testing

/// The KV cache stores what its precision says, in the bytes the budgets count.
@Suite struct KVCacheTests {
    /// F16: 2 bytes per element (half of F32), and a stored row reads back as the IEEE
    /// half rounding of the input (Swift's Float16 conversion is the oracle).
    @Test func halfStorageRoundTripsAndHalvesTheBytes() throws {
        let layers = 3, keyDim = 40, valueDim = 24
        let h = KVCache(layers: layers, keyDim: keyDim, valueDim: valueDim, maxPositions: 600, precision: .f16)
        let f = KVCache(layers: layers, keyDim: keyDim, valueDim: valueDim, maxPositions: 600, precision: .f32)
        try h.reserve(300)
        try f.reserve(300)
        #expect(h.capacity == f.capacity && h.capacity >= 300)
        #expect(h.allocatedBytes == h.capacity * layers * (keyDim + valueDim) * 2)
        #expect(f.allocatedBytes == 2 * h.allocatedBytes)
        #expect(h.bytesPerPosition == KVCache.bytesPerPosition(layers: layers, keyDim: keyDim, valueDim: valueDim, precision: .f16))

        var rng = SystemRandomNumberGenerator()
        let k = (0..<keyDim).map { _ in Float.random(in: -70000...70000, using: &rng) / Float(1 << Int.random(in: 0...30, using: &rng)) }
        let v = (0..<valueDim).map { _ in Float.random(in: -3...3, using: &rng) }
        h.store(layer: 2, position: 299, key: k, value: v)
        f.store(layer: 2, position: 299, key: k, value: v)
        for i in 0..<keyDim {
            #expect(h.halfKey(2, 299)[i] == Float16(k[i]).bitPattern, "key \(i): \(k[i])")
            #expect(f.key(2, 299)[i].bitPattern == k[i].bitPattern)
        }
        for i in 0..<valueDim { #expect(h.halfValue(2, 299)[i] == Float16(v[i]).bitPattern) }

    }
}
