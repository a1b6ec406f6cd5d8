import Foundation

/// The arguments `mobiledr bench --device ios` passes through
/// `xcrun devicectl device process launch ... org.mobiledr.harness ARGS`. Without `--bundle` the app
/// opens the screening screen. Unknown arguments (Xcode adds `-NSDocumentRevisionsDebugMode YES`)
/// are ignored.
public struct LaunchArguments: Equatable {
    public var bundle: String?
    public var artifact: String?
    public var computeUnits = "all"
    public var iterations = 50
    public var warmup = 10

    public init() {}

    public static func parse(_ arguments: [String]) throws -> LaunchArguments {
        var parsed = LaunchArguments()
        var i = 1 // arguments[0] is the executable
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < arguments.count else { throw BundleError(message: "\(flag) needs a value") }
            return arguments[i]
        }
        func count(_ flag: String, minimum: Int) throws -> Int {
            let text = try value(flag)
            guard let number = Int(text), number >= minimum else { throw BundleError(message: "\(flag) must be an integer >= \(minimum), got '\(text)'") }
            return number
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--bundle": parsed.bundle = try value("--bundle")
            case "--artifact": parsed.artifact = try value("--artifact")
            case "--compute-units": parsed.computeUnits = try value("--compute-units")
            case "--iterations": parsed.iterations = try count("--iterations", minimum: 1)
            case "--warmup": parsed.warmup = try count("--warmup", minimum: 0)
            default: break
            }
            i += 1
        }
        _ = try Runners.computeUnits(parsed.computeUnits) // fail early on a misspelt name
        return parsed
    }

    /// The bundle folder: an absolute path, or one relative to the app's Documents folder.
    public func bundleURL(documents: URL) -> URL? {
        guard let bundle else { return nil }
        return bundle.hasPrefix("/") ? URL(fileURLWithPath: bundle) : documents.appendingPathComponent(bundle)
    }
}
