// swift-tools-version:6.1
import PackageDescription

// The emulation path (hart, devices, directory and cache, node) runs class state that
// Swift guards with dynamic exclusivity checks; in the cluster's remote-access path those
// checks (swift_beginAccess and its thread-local access set) took about a fifth of a
// node's CPU time (perf, 2-node litmus run). Release builds drop them there; debug
// builds, which the tests use, keep them.
let emulationPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

// Dependency direction (DESIGN.md §3): Protocol and RISCV depend on nothing of ours;
// Transport on Protocol; Platform on RISCV; Cluster (specs, node ids, clock) on nothing of ours;
// Coherence on Cluster; Node and Coordinator on those (the Coordinator not on Node); DiscoMetrics on
// Protocol and Coordinator (never the other way: the runtimes hand it snapshots through closures);
// the CLI on everything.
let package = Package(
    name: "Disco",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "disco", targets: ["disco"]),
        .executable(name: "uv-pingpong", targets: ["uv-pingpong"]),
        .library(name: "RISCV", targets: ["RISCV"]),
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "Protocol", targets: ["Protocol"]),
        .library(name: "Transport", targets: ["Transport"]),
        .library(name: "Node", targets: ["Node"]),
        .library(name: "Coherence", targets: ["Coherence"]),
        .library(name: "Coordinator", targets: ["Coordinator"]),
        .library(name: "Cluster", targets: ["Cluster"]),
        .library(name: "DiscoMetrics", targets: ["DiscoMetrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // The metrics endpoint: swift-metrics is the API, swift-prometheus the registry that
        // writes the text format, FlyingFox (no dependencies) the HTTP server for GET /metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // MARK: - Libraries
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // The `--nic user` uplink: Debian's libslirp-dev (QEMU's user-mode network stack).
        .systemLibrary(name: "CSlirp", providers: [.apt(["libslirp-dev"])]),
        // prctl(PR_SET_PDEATHSIG) for processes a launcher starts (the CLI's ParentWatch).
        .target(name: "CProcessControl"),
        .target(name: "Protocol"),
        // What the node and the coordinator both speak of: VM specs, node ids, the cluster clock.
        .target(name: "Cluster", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(
            name: "Transport",
            dependencies: [
                "Protocol", "CLibUV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "RISCV", swiftSettings: emulationPath),
        .target(name: "Coherence", dependencies: ["Cluster"], swiftSettings: emulationPath),
        .target(
            name: "Platform",
            dependencies: ["RISCV", "CSlirp", .product(name: "Logging", package: "swift-log")],
            swiftSettings: emulationPath
        ),
        .target(
            name: "Node",
            dependencies: [
                "RISCV", "Platform", "Protocol", "Transport", "Coherence", "Cluster",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: emulationPath
        ),
        .target(
            name: "Coordinator",
            dependencies: ["Protocol", "Transport", "Cluster", .product(name: "Logging", package: "swift-log")]
        ),
        // `--metrics HOST:PORT`: the node's and the coordinator's figures in Prometheus's text
        // format, served on threads of its own from snapshots the runtimes hand over.
        .target(
            name: "DiscoMetrics",
            dependencies: [
                "Protocol", "Coordinator", "Cluster",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "disco",
            dependencies: [
                "RISCV", "Platform", "Node", "Coordinator", "Protocol", "Transport", "Cluster", "CProcessControl", "DiscoMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // `disco top` reads the coordinator's YAML answers; `disco experiment` its sweep files.
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // The floor for `disco bench transport`: a minimal libuv ping-pong in C.
        .executableTarget(name: "uv-pingpong", dependencies: ["CLibUV"], path: "Benchmarks/UVPingPong"),

        // MARK: - Tests
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol", "TestSupport"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Protocol"]),
        // A seeded random generator the randomized tests share.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "RISCVTests", dependencies: ["RISCV"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "RISCV"]),
        .testTarget(name: "NodeTests", dependencies: ["Node", "Platform", "Coherence", "Protocol", "RISCV", "Transport", "Cluster", "TestSupport"]),
        .testTarget(name: "CoherenceTests", dependencies: ["Coherence", "Cluster", "TestSupport"]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Cluster", "Protocol", "Transport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster"]),
        // A whole cluster (coordinator, nodes, a client) in one test process on InMemoryTransport.
        .testTarget(name: "InProcessClusterTests", dependencies: ["Coordinator", "Node", "Platform", "Protocol", "Transport", "Cluster", "TestSupport"]),
        .testTarget(name: "MetricsTests", dependencies: ["DiscoMetrics", "Coordinator", "Protocol", "Transport", "Cluster"]),
        // Starts the real `disco` binary (and QEMU, and Prometheus) as child processes.
        .testTarget(name: "SystemTests", dependencies: ["TestSupport"]),
        // The systemd units and Kubernetes manifests in deploy/, checked offline.
        .testTarget(name: "DeployTests", dependencies: ["TestSupport", .product(name: "Yams", package: "Yams")]),
    ],
    swiftLanguageModes: [.v5]
)
