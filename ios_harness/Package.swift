// swift-tools-version:5.9
// MobileDRKit: the model-facing and benchmark code of the iOS harness (the SwiftUI app in App/ links it).
import PackageDescription

let package = Package(
    name: "MobileDRHarness",
    platforms: [
        .iOS(.v17), // the ExecuTorch Swift package's minimum; MLComputePlan is used from iOS 17.4 when present
        .macOS(.v14),
    ],
    products: [
        .library(name: "MobileDRKit", targets: ["MobileDRKit"]),
    ],
    dependencies: [
        // Prebuilt ExecuTorch xcframeworks. The branch follows the executorch that exported the
        // bundle's .pte files (manifest.libraries.executorch 1.5.x): see README.md, "Versions".
        .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-1.5.0"),
    ],
    targets: [
        .target(
            name: "MobileDRKit",
            dependencies: [
                .product(name: "executorch", package: "executorch"),
                .product(name: "backend_xnnpack", package: "executorch"),
                .product(name: "backend_coreml", package: "executorch"),
                .product(name: "kernels_optimized", package: "executorch"),
                .product(name: "kernels_quantized", package: "executorch"),
            ],
            path: "Sources/MobileDRKit"
        ),
    ]
)
