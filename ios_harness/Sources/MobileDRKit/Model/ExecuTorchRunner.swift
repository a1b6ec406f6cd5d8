import ExecuTorch
import Foundation

/// `.pte` programs (XNNPACK, or the Core ML delegate) through the ExecuTorch Swift package. The app
/// target needs `-all_load` in Other Linker Flags so the backends and kernels register (README.md).
public final class ExecuTorchRunner: Runner {
    public let runtime = "executorch"
    public let loadDetail: String? = nil
    private let url: URL
    private let outputNames: [String]
    private let inputShape: [Int]
    private let module: Module

    public init(url: URL, outputNames: [String], inputShape: [Int]) {
        self.url = url
        self.outputNames = outputNames
        self.inputShape = inputShape
        module = Module(filePath: url.path)
    }

    public func load() async throws {
        try module.load("forward") // moves the method's setup out of the first inference
    }

    public func input(for image: RGBImage) throws -> RunnerInput {
        RunnerInput(storage: Tensor<Float>(image.chwFloats(), shape: inputShape))
    }

    public func run(_ input: RunnerInput) throws -> [String: [Float]] {
        guard let tensor = input.storage as? Tensor<Float> else { throw BundleError(message: "not an ExecuTorch input") }
        let values = try module.forward(tensor) // the input goes in on every call: memory planning reuses its slot
        guard values.count == outputNames.count else {
            throw BundleError(message: "\(url.lastPathComponent) returned \(values.count) outputs, the manifest lists \(outputNames.count)")
        }
        var outputs: [String: [Float]] = [:]
        for (name, value) in zip(outputNames, values) {
            let output: Tensor<Float>? = value.tensor()
            guard let output else { throw BundleError(message: "\(name) is not a float tensor") }
            outputs[name] = output.scalars()
        }
        return outputs
    }
}
