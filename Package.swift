// swift-tools-version:6.0
import PackageDescription

// Targets by layer: C modules over system libraries, a thin Swift layer per
// module, a core of pure logic (no C imports, unit-tested without sockets),
// the application that wires them, and a thin executable.
let package = Package(
    name: "KimiGateway",
    products: [
        .executable(name: "kimi-gateway", targets: ["kimi-gateway"]),
        .executable(name: "kimi-bench", targets: ["kimi-bench"]),
    ],
    targets: [
        .systemLibrary(name: "CFastCGI", pkgConfig: "fcgi", providers: [.apt(["libfcgi-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CAtomics"),
        .target(name: "KimiCore"),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "KimiCore"]),
        .target(name: "Upstream", dependencies: ["CCurl", "KimiCore"]),
        .target(name: "SharedMemory", dependencies: ["CAtomics", "KimiCore"]),
        .target(name: "GatewayApp", dependencies: ["KimiCore", "FastCGI", "Upstream", "SharedMemory"]),
        .executableTarget(name: "kimi-gateway", dependencies: ["GatewayApp"]),
        .executableTarget(name: "kimi-bench", dependencies: ["KimiCore", "SharedMemory"]),
        .testTarget(name: "KimiCoreTests", dependencies: ["KimiCore"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory", "KimiCore"]),
        .testTarget(name: "GatewayAppTests", dependencies: ["GatewayApp", "KimiCore"]),
    ],
    swiftLanguageModes: [.v5]
)
