// swift-tools-version:6.0
import PackageDescription

// Targets by layer: C modules over Debian's system libraries, a thin Swift
// layer per module, a core of pure logic (unit-tested without sockets; its
// one C import is libcrypto's SHA-256, itself a pure function), the
// application that wires them, the Kimi API simulator beside it, and the
// command line over both. One package from outside: swift-argument-parser.
let package = Package(
    name: "KimiGateway",
    products: [
        .executable(name: "kimi-gateway", targets: ["kimi-gateway"]),
        .executable(name: "kimi-bench", targets: ["kimi-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CFastCGI", pkgConfig: "fcgi", providers: [.apt(["libfcgi-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .target(name: "CAtomics"),
        .target(name: "KimiCore", dependencies: ["CCrypto"]),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "KimiCore"]),
        .target(name: "Upstream", dependencies: ["CCurl", "KimiCore"]),
        .target(name: "SharedMemory", dependencies: ["CAtomics", "KimiCore"]),
        .target(name: "Storage", dependencies: ["CSQLite", "KimiCore"]),
        .target(name: "Fleet", dependencies: ["CHiredis", "KimiCore"]),
        .target(name: "GatewayApp", dependencies: ["KimiCore", "FastCGI", "Upstream", "SharedMemory", "Storage", "Fleet"]),
        .target(name: "KimiSimulator", dependencies: ["KimiCore", "FastCGI"]),
        .executableTarget(name: "kimi-gateway", dependencies: [
            "GatewayApp", "KimiSimulator", "FastCGI", "KimiCore", "Storage",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "kimi-bench", dependencies: ["KimiCore", "SharedMemory", "Fleet"]),
        .testTarget(name: "KimiCoreTests", dependencies: ["KimiCore"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory", "KimiCore"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "KimiCore"]),
        .testTarget(name: "FleetTests", dependencies: ["Fleet", "KimiCore", "GatewayApp", "Storage"]),
        .testTarget(name: "GatewayAppTests", dependencies: ["GatewayApp", "KimiCore", "Upstream"]),
    ],
    swiftLanguageModes: [.v5]
)
