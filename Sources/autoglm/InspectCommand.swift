import ArgumentParser
import Foundation
import GGUF

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a GGUF file's metadata and a per-type tensor summary.")

    @Argument(help: "Path to a GGUF file.") var path: String
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .long, help: "List every tensor.") var tensors = false

    func run() throws {
        let f = try GGUFFile(path: path)
        var byType: [GGMLType: (count: Int, bytes: Int, elements: Int)] = [:]
        for t in f.tensors {
            var e = byType[t.type] ?? (0, 0, 0)
            e.count += 1; e.bytes += t.byteCount; e.elements += t.elementCount
            byType[t.type] = e
        }
        let types = byType.keys.sorted { $0.rawValue < $1.rawValue }
        let params = f.tensors.reduce(0) { $0 + $1.elementCount }
        if json {
            var meta: [String: Any] = [:]
            for k in f.metadataKeys {
                if let v = f.metadata[k] { meta[k] = jsonValue(v, limit: 16) }
            }
            printJSON([
                "path": path, "version": Int(f.version), "file_size": f.fileSize, "parameters": params,
                "metadata": meta,
                "tensor_types": Dictionary(uniqueKeysWithValues: types.map { t in
                    (t.description, ["count": byType[t]!.count, "bytes": byType[t]!.bytes])
                }),
                "tensors": tensors ? f.tensors.map { ["name": $0.name, "dims": $0.dims, "type": $0.type.description, "offset": $0.offset] } : [],
            ])
            return
        }
        print("file: \(path) (GGUF v\(f.version), \(f.fileSize) bytes, \(f.tensors.count) tensors, \(params) parameters)")
        print("metadata:")
        for k in f.metadataKeys {
            guard let v = f.metadata[k] else { continue }
            var s = v.description
            if s.count > 120 { s = String(s.prefix(117)) + "..." }
            print("  \(k) = \(s)")
        }
        print("tensor types:")
        for t in types {
            let e = byType[t]!
            print(String(format: "  %-6@ %5d tensors %12d elements %10.1f MiB", t.description as NSString,
                         e.count, e.elements, Double(e.bytes) / 1_048_576))
        }
        if tensors {
            for t in f.tensors { print("  \(t.name) \(t.dims) \(t.type) @\(t.offset)") }
        }
    }

    func jsonValue(_ v: GGUFValue, limit: Int) -> Any {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b
        case .float32, .float64: return v.double ?? 0
        case .array(_, let a):
            return a.count > limit ? ["count": a.count, "head": a.prefix(limit).map { jsonValue($0, limit: limit) }] as [String: Any]
                                   : a.map { jsonValue($0, limit: limit) }
        default: return v.int ?? 0
        }
    }
}
