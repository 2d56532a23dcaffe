import GGUF
import Foundation
public final class ThreadPool: @unchecked Sendable {
    public init(threads: Int) { threadCount = threads }
    public let threadCount: Int
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) { for i in 0..<n { body(i) } }
}
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer) throws { self.type = type; self.rows = rows; self.cols = cols; self.data = data }
    public var rowBytes: Int { cols / type.blockSize * type.typeSize }
}
public func isSupported(_ type: GGMLType) -> Bool { [.f32, .q8_0, .q5_0, .q4_K, .q6_K].contains(type) }
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int, _ out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    let row = UnsafeMutablePointer<Float>.allocate(capacity: w.cols); defer { row.deallocate() }
    for r in 0..<w.rows {
        dequantizeRow(w, row: r, into: row)
        for t in 0..<nTokens {
            var s: Float = 0
            let xt = x + t * w.cols
            for c in 0..<w.cols { s += row[c] * xt[c] }
            out[t * w.rows + r] = s
        }
    }
}
public func dequantizeRow(_ w: WeightMatrix, row: Int, into dst: UnsafeMutablePointer<Float>) {
    dequantize(w.type, w.data + row * w.rowBytes, count: w.cols, into: dst)
}
@inline(__always) func h(_ p: UnsafeRawPointer, _ o: Int) -> Float { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
public func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    let nb = count / type.blockSize
    for b in 0..<nb {
        let p = src + b * type.typeSize
        let y = dst + b * type.blockSize
        switch type {
        case .f32: y[0] = p.loadUnaligned(as: Float.self)
        case .q8_0:
            let d = h(p, 0)
            for j in 0..<32 { y[j] = d * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
        case .q5_0:
            let d = h(p, 0)
            let qh = p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 6 + j, as: UInt8.self)
                let lo = Int(q & 0xF) | Int((qh >> UInt32(j)) & 1) << 4
                let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(lo - 16); y[j + 16] = d * Float(hi - 16)
            }
        case .q4_K:
            let d = h(p, 0), dmin = h(p, 2)
            let sc = p + 4, qs = p + 16
            func get(_ j: Int) -> (Float, Float) {
                let s = { (i: Int) in Int(sc.load(fromByteOffset: i, as: UInt8.self)) }
                if j < 4 { return (Float(s(j) & 63), Float(s(j + 4) & 63)) }
                return (Float((s(j + 4) & 0xF) | ((s(j - 4) >> 6) << 4)), Float((s(j + 4) >> 4) | ((s(j) >> 6) << 4)))
            }
            for c in 0..<4 {
                let (s1, m1) = get(2 * c), (s2, m2) = get(2 * c + 1)
                for l in 0..<32 {
                    let q = qs.load(fromByteOffset: 32 * c + l, as: UInt8.self)
                    y[64 * c + l] = d * s1 * Float(q & 0xF) - dmin * m1
                    y[64 * c + 32 + l] = d * s2 * Float(q >> 4) - dmin * m2
                }
            }
        case .q6_K:
            let d = h(p, 208)
            for half in 0..<2 {
                let ql = p + 64 * half, qh = p + 128 + 32 * half, sc = p + 192 + 8 * half
                let yy = y + 128 * half
                for l in 0..<32 {
                    let a = Int(ql.load(fromByteOffset: l, as: UInt8.self)), b = Int(ql.load(fromByteOffset: l + 32, as: UInt8.self))
                    let hb = Int(qh.load(fromByteOffset: l, as: UInt8.self))
                    let q1 = (a & 0xF) | ((hb >> 0) & 3) << 4, q2 = (b & 0xF) | ((hb >> 2) & 3) << 4
                    let q3 = (a >> 4) | ((hb >> 4) & 3) << 4, q4 = (b >> 4) | ((hb >> 6) & 3) << 4
                    let s = { (i: Int) in Float(sc.load(fromByteOffset: i, as: Int8.self)) }
                    let is_ = l / 16
                    yy[l] = d * s(is_) * Float(q1 - 32); yy[l + 32] = d * s(is_ + 2) * Float(q2 - 32)
                    yy[l + 64] = d * s(is_ + 4) * Float(q3 - 32); yy[l + 96] = d * s(is_ + 6) * Float(q4 - 32)
                }
            }
        default: break
        }
    }
}
