import MobileDRKit
import SwiftUI

/// Runs the benchmark once, then shows where the results went. `Documents/results.json` is deleted
/// first and written atomically at the end; a run that cannot start writes `Documents/error.txt`.
@MainActor
struct BenchmarkView: View {
    private let arguments: LaunchArguments?
    private let failure: String?
    @State private var lines: [String] = []

    init(arguments: LaunchArguments) {
        self.arguments = arguments
        failure = nil
    }

    init(failure: String) {
        arguments = nil
        self.failure = failure
    }

    var body: some View {
        ScrollView {
            Text(lines.joined(separator: "\n")).font(.system(.footnote, design: .monospaced)).frame(maxWidth: .infinity, alignment: .leading).padding()
        }
        .task { await run() }
    }

    private static let version = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "0.1.0"

    private func run() async {
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        let results = documents.appendingPathComponent("results.json")
        let errorFile = documents.appendingPathComponent("error.txt")
        try? FileManager.default.removeItem(at: results)
        try? FileManager.default.removeItem(at: errorFile)
        do {
            if let failure { throw BundleError(message: failure) }
            guard let arguments, let bundle = arguments.bundleURL(documents: documents) else { throw BundleError(message: "no --bundle") }
            let benchmark = try Benchmark(bundle: bundle, device: DeviceFacts.info(harnessVersion: Self.version)) { line in
                print("mobiledr: \(line)")
                Task { @MainActor in lines.append(line) }
            }
            let report = try await benchmark.run(arguments, mobiledrVersion: Self.version, planFolder: documents)
            try report.write(to: results)
            lines.append("results written: Documents/results.json")
        } catch {
            try? "\(error)\n".write(to: errorFile, atomically: true, encoding: .utf8)
            lines.append("error: \(error) (Documents/error.txt)")
        }
        print("mobiledr: \(lines.last ?? "")")
    }
}
