// swift-tools-version:6.0
// Unroll: a distributed, data-parallel TBPTT trainer for recurrent networks.
// Targets read bottom-up by dependency direction:
//   C libraries (CMPI, CHDF5, CCBLAS) → C shims (MPIShim, HDF5Shim) and C kernels (CKernels)
//   → UnrollKernels (math on buffers) → UnrollModels (cells, stacks, flat parameters)
//   → UnrollData (HDF5) / UnrollDistributed (MPI) / UnrollTensorBoard (event files)
//   → UnrollTraining → UnrollBenchmarks → unroll (CLI).
// No target of the `UnrollTraining` product uses `unsafeFlags` (SwiftPM refuses those in a package
// used as a versioned dependency); only the CLI and the benchmarks, which no library product holds.
import PackageDescription

/// Release builds of the CLI and the benchmarks drop bounds/overflow checks; debug builds keep them.
/// Not for library targets: see the note above.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Unroll",
    products: [
        .executable(name: "unroll", targets: ["unroll"]),
        .library(name: "UnrollTraining", targets: ["UnrollTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Zip container of NumPy .npz inputs (`unroll prepare sequences --input X.npz`).
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.0"),
        // TensorBoard's Event/Summary messages (`unroll train --tensorboard`); the Swift code is
        // generated once by launch/gen-proto and committed, so no build plugin runs here.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // SHA-256 of datasets (BoringSSL's, with SHA-NI where the CPU has it).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Leveled logging from library code; the CLI installs the handler (`--log-level`).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `unroll train --config FILE.toml` (full TOML 1.0 via toml++).
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // C libraries, flags from pkg-config.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CCBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Getters for the C macros Swift cannot import.
        .target(name: "MPIShim", dependencies: ["CMPI"]),
        .target(name: "HDF5Shim", dependencies: ["CHDF5"]),
        // Hand-vectorised kernels (AVX-512 / AVX2 chosen at run time by target_clones and dispatch.c,
        // portable fallback); the ISA flags are per function, so the target needs no build flags.
        .target(name: "CKernels"),

        .target(name: "UnrollKernels", dependencies: ["CCBLAS", "CKernels"], exclude: ["Derivations.md"]),
        .target(name: "UnrollModels", dependencies: ["UnrollKernels"], exclude: ["Seq2Seq.md"]),
        .target(name: "UnrollData",
                dependencies: ["HDF5Shim", .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                               .product(name: "Crypto", package: "swift-crypto"),
                               .product(name: "Logging", package: "swift-log")],
                exclude: ["DatasetFormat.md"]),
        .target(name: "UnrollDistributed", dependencies: ["MPIShim"]),
        // TensorBoard event files: TFRecord framing (masked CRC-32C) of generated protobuf messages.
        .target(name: "UnrollTensorBoard", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["event.proto"]),
        .target(name: "UnrollTraining",
                dependencies: ["UnrollKernels", "UnrollModels", "UnrollData", "UnrollDistributed", "UnrollTensorBoard",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "TOMLKit", package: "TOMLKit")],
                exclude: ["CheckpointFormat.md", "TrainingStep.md"]),
        // `unroll bench-kernels` and `unroll bench-train` (launch/bench): the reference shapes A–E.
        .target(name: "UnrollBenchmarks",
                dependencies: ["UnrollTraining", "UnrollKernels", "UnrollModels", "UnrollData", "UnrollDistributed"],
                swiftSettings: fast),
        .executableTarget(name: "unroll",
                          dependencies: ["UnrollTraining", "UnrollBenchmarks", "UnrollData",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          swiftSettings: fast),

        .target(name: "UnrollTestSupport", dependencies: ["UnrollKernels", "UnrollModels"],
                path: "Tests/UnrollTestSupport"),
        // Initialises MPI when the test bundle loads, before any test opens a file (Bootstrap.c).
        .target(name: "UnrollTestBootstrap", dependencies: ["CMPI"], path: "Tests/UnrollTestBootstrap"),
        .testTarget(name: "UnrollKernelsTests", dependencies: ["UnrollKernels", "UnrollTestSupport"]),
        .testTarget(name: "UnrollModelsTests", dependencies: ["UnrollModels", "UnrollTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "UnrollDataTests",
                    dependencies: ["UnrollData", "HDF5Shim", "UnrollTestSupport", "UnrollTestBootstrap",
                                   .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .testTarget(name: "UnrollTrainingTests",
                    dependencies: ["UnrollTraining", "UnrollData", "UnrollTensorBoard", "HDF5Shim", "UnrollTestSupport",
                                   "UnrollTestBootstrap", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "UnrollDistributedTests", dependencies: ["UnrollDistributed", "UnrollTestBootstrap"]),
        .executableTarget(name: "unroll-mpi-tests", dependencies: ["UnrollDistributed"], path: "Tests/UnrollMPITests"),
        .testTarget(name: "CKernelsTests", dependencies: ["CKernels"]),
    ]
)
