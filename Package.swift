// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Open-AutoGLM",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "autoglm", targets: ["autoglm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // Only the OTLP/HTTP exporter (the OTLPGRPC trait is not wired up).
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // File format: mmap'd GGUF reader/writer. Lowest layer.
        .target(name: "GGUF"),
        // The one JSON value type (OpenAI API bodies, Kubernetes API objects). No dependencies.
        .target(name: "JSON"),
        // SIMD integer kernels in C (runtime CPU dispatch, portable scalar fallback).
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-strict-aliasing"])]
        ),
        // Quant block layouts, dequantization, dot products, threaded matmul.
        .target(
            name: "Kernels",
            dependencies: ["GGUF", "CKernels"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
        // SentencePiece / byte-level BPE tokenizers from GGUF metadata.
        // (-enable-testing: its tests use @testable internals and run in release builds.)
        .target(name: "Tokenizers", dependencies: ["GGUF", "JSON"], swiftSettings: [.unsafeFlags(["-enable-testing"])]),
        // One file per architecture over shared blocks.
        .target(name: "Models", dependencies: ["GGUF", "Kernels", "Tokenizers"]),
        // KV cache, sampler, generation.
        // Constrained decoding: byte grammars, their matcher and token masks; the JSON Schema,
        // regex and tool-call compilers that produce them.
        .target(name: "Grammar", dependencies: ["JSON", "Core"]),
        // (No tracing here: the engine thread records plain timestamps; the server makes the spans.)
        .target(name: "Engine", dependencies: ["Models", "Tokenizers", "Kernels", "GGUF", "Grammar", "Core"], exclude: ["README.md"]),
        // OpenAI-compatible HTTP API over the engine's scheduler.
        .target(
            name: "Server",
            dependencies: [
                "JSON", "Engine", "Tokenizers", "Models", "Registry", "Grammar", "Core",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            exclude: ["README.md"],
            // (Tests reach the Responses API's bounded store directly: @testable in release too.)
            swiftSettings: [.unsafeFlags(["-enable-testing"])]
        ),
        // gRPC API (autoglm.v1, grpc.health.v1, grpc.reflection.v1) beside the HTTP server, same
        // engine, auth, limits and metrics. Generated code under Generated/ (scripts/gen-protos.sh).
        .target(name: "GRPCAPI", dependencies: [
            "Server", "Engine", "Tokenizers", "Core", "JSON",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], exclude: ["Generated/PROTO_STAMP"]),
        // The syntax rules `pull` and `validate` share: model refs, registry names, versions. No dependencies.
        .target(name: "Core"),
        // The autoglm.yaml schema: YAML load with positions, overlays, validation, encode.
        .target(name: "Spec", dependencies: ["Core", .product(name: "Yams", package: "Yams")],
                swiftSettings: [.unsafeFlags(["-enable-testing"])]),
        // Kubernetes renderer, Kubernetes API client (apply/rollout/rollback).
        .target(name: "Deploy", dependencies: [
            "JSON", "Spec", "Backends", "Core",
            .product(name: "Yams", package: "Yams"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], swiftSettings: [.unsafeFlags(["-enable-testing"])]),
        // Model store: SQLite (GRDB) registry, SemVer, content-addressed blobs, fetchers.
        .target(name: "Registry", dependencies: ["GGUF", "Core", .product(name: "GRDB", package: "GRDB.swift")]),
        // Load generator for OpenAI-compatible servers (streaming; TTFT/TPOT/ITL percentiles, goodput).
        .target(name: "LoadGen", dependencies: [
            "Core",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        // Constrained Bayesian optimisation of serving configurations (pure Swift).
        .target(name: "Optimizer", dependencies: ["Core"]),
        // The serving layer: each backend (native engine, llama.cpp's llama-server, vLLM, an
        // OpenAI-compatible upstream) knows how to launch or reach its server, its readiness, its
        // metrics, how to stop it, its tunable knobs and their spec fields.
        .target(name: "Backends", dependencies: [
            "Optimizer", "LoadGen", "Spec", "Server", "Core",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // `optimize`: studies over the backends (trial evaluation through LoadGen), the trial store in
        // the registry's database, the winner, its write-back into the spec, the reports.
        .target(name: "Tuner", dependencies: [
            "Backends", "Optimizer", "LoadGen", "Registry", "Spec", "GGUF", "Models", "Tokenizers",
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ]),
        // `autoglm up`: the local fleet — replica supervision, the gateway (balancing policies,
        // ejection, retry), the autoscaler (rules + prediction), rollouts (rolling, canary analysis).
        .target(name: "Fleet", dependencies: [
            "Backends", "Server", "Spec", "Core",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: [.unsafeFlags(["-enable-testing"])]),
        // OpenTelemetry: the OTLP exporter's bootstrap (only here and in the CLI; the layers below
        // speak the swift-distributed-tracing API), the W3C propagator, the dropped-span counter.
        .target(name: "Telemetry", dependencies: [
            "Core",
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "OTel", package: "swift-otel"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: [.unsafeFlags(["-enable-testing"])]),
        .executableTarget(
            name: "autoglm",
            dependencies: [
                "Engine", "Models", "Tokenizers", "GGUF", "Kernels", "Spec", "Deploy", "Registry", "Server", "LoadGen", "Optimizer", "Backends", "Tuner", "Fleet", "Core", "Telemetry", "GRPCAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Matrix×vector bandwidth per weight type / SIMD level / thread count.
        .executableTarget(name: "kernelbench", dependencies: ["Kernels", "GGUF"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Registry"], resources: [.copy("Fixtures")]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "GGUF"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Engine", "Tokenizers", "GGUF", "Kernels", "Registry"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DeployTests", dependencies: ["Deploy", "Spec", "Core", .product(name: "Yams", package: "Yams")], resources: [.copy("Fixtures")]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "GGUF"]),
        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Models", "Tokenizers", "Grammar"]),
        .testTarget(name: "GrammarTests", dependencies: ["Grammar", "JSON"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Engine", "Registry", "GGUF",
                // (the autoscaling objects `deploy render` writes are checked against a real server's /metrics)
                "Deploy", "Spec", "Core", .product(name: "Yams", package: "Yams"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // (the gRPC API, over loopback with grpc-swift's client)
                "GRPCAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(name: "LoadGenTests", dependencies: [
            "LoadGen",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "OptimizerTests", dependencies: ["Optimizer"]),
        .testTarget(name: "BackendsTests", dependencies: ["Backends", "Optimizer", "LoadGen", "Spec", "Server", "Core"], resources: [.copy("Fixtures")]),
        // (GRDB: a test makes the registry's database refuse trial rows.)
        .testTarget(name: "TunerTests", dependencies: ["Tuner", "Backends", "Optimizer", "Registry", "LoadGen",
                                                       .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "FleetTests", dependencies: [
            "Fleet", "Backends", "Server", "Spec", "LoadGen",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TelemetryTests", dependencies: [
            "Telemetry", "Server", "Engine", "Core",
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            .product(name: "OTel", package: "swift-otel"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["GGUF"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
