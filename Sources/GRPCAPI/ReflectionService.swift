import Foundation
import GRPCCore
import SwiftProtobuf

/// `grpc.reflection.v1.ServerReflection` over the descriptors of proto/ (the FileDescriptorSet
/// `scripts/gen-protos.sh` embeds beside the generated code): lists the services, and answers
/// a file by name or by a symbol in it, with the files it imports.
struct ReflectionService: Grpc_Reflection_V1_ServerReflection.SimpleServiceProtocol {
    let index: DescriptorIndex

    init() {
        index = DescriptorIndex.embedded
    }

    func serverReflectionInfo(request: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest, any Error>,
                              response: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
                              context: ServerContext) async throws {
        for try await req in request {
            try await response.write(answer(req))
        }
    }

    func answer(_ req: Grpc_Reflection_V1_ServerReflectionRequest) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var out = Grpc_Reflection_V1_ServerReflectionResponse()
        out.validHost = req.host
        out.originalRequest = req
        func files(_ names: [String]?, missing: String) {
            if let names {
                out.fileDescriptorResponse = .with { $0.fileDescriptorProto = names.compactMap { index.files[$0]?.bytes } }
            } else {
                out.errorResponse = .with {
                    $0.errorCode = Int32(RPCError.Code.notFound.rawValue)
                    $0.errorMessage = missing
                }
            }
        }
        switch req.messageRequest {
        case .listServices:
            out.listServicesResponse = .with { r in r.service = index.services.map { name in .with { $0.name = name } } }
        case .fileByFilename(let name):
            files(index.withImports(name), missing: "no file '\(name)' on this server")
        case .fileContainingSymbol(let symbol):
            files(index.symbols[symbol].flatMap { index.withImports($0) }, missing: "no symbol '\(symbol)' on this server")
        case .fileContainingExtension(let e):
            files(nil, missing: "no extensions of '\(e.containingType)' on this server")
        case .allExtensionNumbersOfType(let type):
            files(nil, missing: "no extensions of '\(type)' on this server")
        case nil:
            out.errorResponse = .with {
                $0.errorCode = Int32(RPCError.Code.invalidArgument.rawValue)
                $0.errorMessage = "empty reflection request: set one of list_services, file_by_filename, file_containing_symbol"
            }
        }
        return out
    }
}

/// The files of the embedded descriptor set, by name (each with its serialized form and imports),
/// the file of each fully qualified symbol, and the service names.
struct DescriptorIndex: Sendable {
    struct File: Sendable {
        var bytes: Data
        var dependencies: [String]
    }

    var files: [String: File] = [:]
    var symbols: [String: String] = [:]
    var services: [String] = []

    static let embedded: DescriptorIndex = {
        // Written by scripts/gen-protos.sh; its decoding is checked by GRPCTests.
        guard let data = Data(base64Encoded: GeneratedDescriptors.fileDescriptorSetBase64),
              let set = try? Google_Protobuf_FileDescriptorSet(serializedBytes: data) else { return DescriptorIndex() }
        return DescriptorIndex(set)
    }()

    init() {}

    init(_ set: Google_Protobuf_FileDescriptorSet) {
        for file in set.file {
            guard let bytes = try? file.serializedBytes() as Data else { continue }
            files[file.name] = File(bytes: bytes, dependencies: file.dependency)
            let pkg = file.package.isEmpty ? "" : file.package + "."
            for s in file.service {
                services.append(pkg + s.name)
                symbols[pkg + s.name] = file.name
                for m in s.method { symbols[pkg + s.name + "." + m.name] = file.name }
            }
            for m in file.messageType { addMessage(m, prefix: pkg, file: file.name) }
            for e in file.enumType { symbols[pkg + e.name] = file.name }
        }
        services.sort()
    }

    private mutating func addMessage(_ m: Google_Protobuf_DescriptorProto, prefix: String, file: String) {
        let name = prefix + m.name
        symbols[name] = file
        for nested in m.nestedType { addMessage(nested, prefix: name + ".", file: file) }
        for e in m.enumType { symbols[name + "." + e.name] = file }
    }

    /// The file and, after it, every file it imports (transitively), each once; nil if unknown.
    func withImports(_ name: String) -> [String]? {
        guard files[name] != nil else { return nil }
        var order: [String] = []
        var seen: Set<String> = []
        var stack = [name]
        while let next = stack.popLast() {
            guard seen.insert(next).inserted, let f = files[next] else { continue }
            order.append(next)
            stack.append(contentsOf: f.dependencies.reversed())
        }
        return order
    }
}
