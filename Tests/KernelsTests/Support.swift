import Foundation
import GGUF
import Kernels
import Testing

/// Deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum FixtureError: Error, CustomStringConvertible {
    case missing(String)
    var description: String {
        switch self { case .missing(let n): return "fixture \(n) not found in the test bundle" }
    }
}

enum Fixtures {
    static func data(_ name: String, _ ext: String) throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures") else {
            throw FixtureError.missing("\(name).\(ext)")
        }
        return [UInt8](try Data(contentsOf: url))
    }

    static func floats(_ name: String) throws -> [Float] {
        let bytes = try data(name, "f32")
        return bytes.withUnsafeBytes { raw in
            (0..<bytes.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }
}

/// A weight matrix owning its bytes.
final class OwnedMatrix: @unchecked Sendable {
    let bytes: UnsafeMutableRawPointer
    let matrix: WeightMatrix

    init(type: GGMLType, rows: Int, cols: Int, rng: inout SplitMix) throws {
        let rowBytes = cols / type.blockSize * type.typeSize
        let total = max(1, rows * rowBytes)
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 64)
        self.bytes = bytes
        let p = bytes.assumingMemoryBound(to: UInt8.self)
        for i in 0..<total { p[i] = UInt8.random(in: 0...255, using: &rng) }
        let blocks = rows * cols / type.blockSize
        func setHalf(_ off: Int, _ v: Float) {
            bytes.storeBytes(of: Float16(v).bitPattern, toByteOffset: off, as: UInt16.self)
        }
        func scale(_ signed: Bool) -> Float {
            let m = Float.random(in: 1e-4...2e-2, using: &rng)
            return signed && Bool.random(using: &rng) ? -m : m
        }
        for b in 0..<blocks {
            let o = b * type.typeSize
            switch type {
            case .f32: bytes.storeBytes(of: Float.random(in: -1...1, using: &rng), toByteOffset: o, as: Float.self)
            case .f16: setHalf(o, Float.random(in: -1...1, using: &rng))
            case .bf16:
                let f = Float.random(in: -1...1, using: &rng)
                bytes.storeBytes(of: UInt16(f.bitPattern >> 16), toByteOffset: o, as: UInt16.self)
            case .q8_0, .q4_0, .q5_0: setHalf(o, scale(true))
            case .q4_K, .q5_K: setHalf(o, scale(false)); setHalf(o + 2, scale(false))
            case .q6_K: setHalf(o + 208, scale(true))
            default: break
            }
        }
        matrix = try WeightMatrix(type: type, rows: rows, cols: cols, data: UnsafeRawPointer(bytes))
    }

    deinit { bytes.deallocate() }
}

func randomActivations(_ count: Int, rng: inout SplitMix) -> [Float] {
    (0..<count).map { i in
        // Mostly small values with an occasional outlier, like real hidden states.
        i % 53 == 7 ? Float.random(in: -8...8, using: &rng) : Float.random(in: -1...1, using: &rng)
    }
}

/// Elements per activation quantization block for a weight type (1: not quantized).
func activationBlock(_ t: GGMLType) -> Int {
    switch t {
    case .q8_0, .q4_0, .q5_0: return 32
    case .q4_K, .q5_K, .q6_K: return 256
    default: return 1
    }
}

let typesUnderTest: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q5_0, .q4_K, .q5_K, .q6_K]
