import CoreML
import Foundation

/// The artifact cannot run on this device; reported as skipped with this reason, never as passed.
public struct RuntimeUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// A model-size image converted once into what one runtime takes (a Core ML feature provider, an
/// ExecuTorch tensor), reused for every timed inference.
public struct RunnerInput {
    let storage: Any
}

/// One artifact on one runtime, the interface `mobiledr.runners.base.Runner` has on the desktop: load
/// once, then one image per inference; outputs by manifest name, flattened (batch of 1).
public protocol Runner: AnyObject {
    var runtime: String { get }
    /// What loading cost, split when the runtime has steps (Core ML: compile, then load).
    var loadDetail: String? { get }
    func load() async throws
    func input(for image: RGBImage) throws -> RunnerInput
    func run(_ input: RunnerInput) throws -> [String: [Float]]
}

public enum Runners {
    /// Why `artifact` cannot run in this app, or nil if it can.
    public static func unavailableReason(_ artifact: Manifest.Artifact) -> String? {
        switch artifact.runtime {
        case "coreml": return nil
        case "executorch": return ["xnnpack", "coreml", "portable"].contains(artifact.backend) ? nil : "this app links no ExecuTorch \(artifact.backend) backend"
        default: return "runtime \(artifact.runtime) is not linked into the iOS harness (Core ML and ExecuTorch only)"
        }
    }

    /// The Core ML compute units by their launch-argument names.
    public static func computeUnits(_ name: String) throws -> MLComputeUnits {
        switch name {
        case "cpuOnly": return .cpuOnly
        case "cpuAndGPU": return .cpuAndGPU
        case "cpuAndNeuralEngine": return .cpuAndNeuralEngine
        case "all": return .all
        default: throw BundleError(message: "unknown compute units '\(name)'; use cpuOnly, cpuAndGPU, cpuAndNeuralEngine or all")
        }
    }

    public static func open(bundle: URL, manifest: Manifest, artifact: Manifest.Artifact, computeUnits: MLComputeUnits) throws -> Runner {
        if let reason = unavailableReason(artifact) { throw RuntimeUnavailable(reason: reason) }
        let url = bundle.appendingPathComponent(artifact.file)
        if artifact.runtime == "coreml" {
            return CoreMLRunner(packageURL: url, outputNames: manifest.outputNames, renamed: artifact.outputNames, labels: manifest.labels, computeUnits: computeUnits)
        }
        return ExecuTorchRunner(url: url, outputNames: manifest.outputNames, inputShape: manifest.input.shape)
    }
}
