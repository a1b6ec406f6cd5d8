import MobileDRKit
import SwiftUI

/// Launched with `--bundle` (by `mobiledr bench --device ios` through `xcrun devicectl device process
/// launch`), the app benchmarks and writes `Documents/results.json`; otherwise it opens the screening
/// screen.
@main
struct MobileDRHarnessApp: App {
    private let launch = Result { try LaunchArguments.parse(CommandLine.arguments) }

    var body: some Scene {
        WindowGroup {
            switch launch {
            case .success(let arguments) where arguments.bundle != nil:
                BenchmarkView(arguments: arguments)
            case .success:
                ScreeningView()
            case .failure(let error):
                BenchmarkView(failure: "\(error)")
            }
        }
    }
}
