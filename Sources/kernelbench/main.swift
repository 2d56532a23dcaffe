// kernelbench: matrix×vector bandwidth of each weight type, per SIMD level and thread count.
//
//   swift run -c release kernelbench [--mb 160] [--threads 1,2] [--levels all|active]
//                                    [--types Q4_K,Q6_K,...] [--tokens 1] [--seconds 0.6] [--packed]
//
// --packed: Q8_0/Q4_0/Q5_0 matrices carry their row-interleaved copy (WeightMatrix.withPackedCopy).
//
// GB/s = weight bytes streamed per second (the matrix is larger than the caches, so
// matvec is bound by memory bandwidth; activations are negligible). With --tokens N > 1
// each weight byte serves N tokens, so multiply by N for the matvec-equivalent rate.
import Foundation
import GGUF
import Kernels

struct Options {
    var megabytes = 160
    var threads = [1, 2]
    var allLevels = false
    var types: [GGMLType] = supportedTypes
    var tokens = 1
    var seconds = 0.6
    var packed = false
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        if a == "--packed" { o.packed = true; continue }
        let v = args.next() ?? ""
        switch a {
        case "--mb": o.megabytes = Int(v) ?? o.megabytes
        case "--threads": o.threads = v.split(separator: ",").compactMap { Int($0) }
        case "--levels": o.allLevels = v == "all"
        case "--types": o.types = v.split(separator: ",").compactMap { n in supportedTypes.first { $0.description == n.uppercased() } }
        case "--tokens": o.tokens = Int(v) ?? o.tokens
        case "--seconds": o.seconds = Double(v) ?? o.seconds
        default:
            FileHandle.standardError.write("unknown option \(a)\n".data(using: .utf8)!)
            exit(2)
        }
    }
    return o
}

/// Random weights with sane fp16 scales (so no NaN/denormal slow paths).
func makeWeights(_ type: GGMLType, rows: Int, cols: Int) -> UnsafeMutableRawPointer {
    let rowBytes = cols / type.blockSize * type.typeSize
    let total = rows * rowBytes
    let p = UnsafeMutableRawPointer.allocate(byteCount: total + 8, alignment: 64)
    var s: UInt64 = 0x1234_5678_9ABC_DEF1
    let words = p.bindMemory(to: UInt64.self, capacity: (total + 7) / 8)
    for i in 0..<(total + 7) / 8 {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        words[i] = s ^ (s >> 29)
    }
    let half = Float16(0.01).bitPattern, small = Float16(0.5).bitPattern
    let elements = rows * cols, blocks = elements / type.blockSize
    for b in 0..<blocks {
        let o = b * type.typeSize
        switch type {
        case .f32: p.storeBytes(of: Float(b % 7) * 0.1 - 0.3, toByteOffset: o, as: Float.self)
        case .f16: p.storeBytes(of: small, toByteOffset: o, as: UInt16.self)
        case .bf16: p.storeBytes(of: UInt16(Float(0.5).bitPattern >> 16), toByteOffset: o, as: UInt16.self)
        case .q8_0, .q4_0, .q5_0: p.storeBytes(of: half, toByteOffset: o, as: UInt16.self)
        case .q4_K, .q5_K:
            p.storeBytes(of: half, toByteOffset: o, as: UInt16.self)
            p.storeBytes(of: half, toByteOffset: o + 2, as: UInt16.self)
        case .q6_K: p.storeBytes(of: half, toByteOffset: o + 208, as: UInt16.self)
        default: break
        }
    }
    return p
}

let o = parse()
let levels = o.allLevels ? SIMDLevel.available : [SIMDLevel.active]
let pools = Dictionary(uniqueKeysWithValues: o.threads.map { ($0, ThreadPool(threads: $0)) })
print("kernelbench: \(o.megabytes) MB per matrix, tokens=\(o.tokens), levels=\(levels.map(\.description)), supported=\(SIMDLevel.supported)")
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
// wall: weight bytes per wall-clock second. cpu: weight bytes per process CPU-second, i.e. what
// one core achieves while it is actually running (meaningful on a loaded, shared machine;
// with perfect scaling the 2T cpu figure equals the 1T one).
print(pad("type", 6) + " " + pad("level", 11) + o.threads.map { lpad("\($0)T wall", 10) + lpad("\($0)T cpu", 10) }.joined())
for type in o.types {
    let cols = 2048
    let rowBytes = cols / type.blockSize * type.typeSize
    let rows = max(1, o.megabytes * 1_000_000 / rowBytes)
    let raw = makeWeights(type, rows: rows, cols: cols)
    defer { raw.deallocate() }
    guard let plain = try? WeightMatrix(type: type, rows: rows, cols: cols, data: UnsafeRawPointer(raw)) else { continue }
    let w = o.packed ? plain.withPackedCopy(pool: pools.values.first ?? ThreadPool(threads: 1)) : plain
    let x = UnsafeMutablePointer<Float>.allocate(capacity: cols * o.tokens)
    let out = UnsafeMutablePointer<Float>.allocate(capacity: rows * o.tokens)
    defer { x.deallocate(); out.deallocate() }
    for i in 0..<cols * o.tokens { x[i] = Float(i % 17) * 0.05 - 0.4 }
    for level in levels {
        var line = pad(type.description, 6) + " " + pad(level.description, 11)
        for t in o.threads {
            guard let pool = pools[t] else { continue }
            matmul(w, x, nTokens: o.tokens, out, pool: pool, level: level)   // warm up
            var iters = 0
            let start = DispatchTime.now().uptimeNanoseconds
            let cpu0 = cpuSeconds()
            var elapsed = 0.0
            repeat {
                matmul(w, x, nTokens: o.tokens, out, pool: pool, level: level)
                iters += 1
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            } while elapsed < o.seconds
            let cpu = cpuSeconds() - cpu0
            let bytes = Double(rows * rowBytes) * Double(iters)
            line += lpad(String(format: "%.2f", bytes / elapsed / 1e9), 10) + lpad(String(format: "%.2f", bytes / cpu / 1e9), 10)
        }
        print(line)
    }
}
