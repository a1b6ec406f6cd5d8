import CoreML
import Foundation

/// `.mlpackage` models through Core ML: compiled on the device (`MLModel.compileModel`), loaded with
/// the chosen compute units, the input given as an image (the exporter declared it `ct.ImageType`).
public final class CoreMLRunner: Runner {
    public let runtime = "coreml"
    public let packageURL: URL
    public let computeUnits: MLComputeUnits
    public private(set) var compiledURL: URL?
    public private(set) var compileSeconds = 0.0
    public private(set) var loadSeconds = 0.0
    private let outputNames: [String]
    private let renamed: [String: String] // manifest output name -> Core ML output name (classifiers)
    private let labels: [String]
    private var model: MLModel?

    public init(packageURL: URL, outputNames: [String], renamed: [String: String], labels: [String], computeUnits: MLComputeUnits) {
        self.packageURL = packageURL
        self.outputNames = outputNames
        self.renamed = renamed
        self.labels = labels
        self.computeUnits = computeUnits
    }

    public var loadDetail: String? {
        String(format: "compile %.1f ms, load %.1f ms", compileSeconds * 1e3, loadSeconds * 1e3)
    }

    public func load() async throws {
        var start = Date()
        let compiled = try await MLModel.compileModel(at: packageURL)
        compileSeconds = Date().timeIntervalSince(start)
        compiledURL = compiled
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        start = Date()
        model = try MLModel(contentsOf: compiled, configuration: configuration)
        loadSeconds = Date().timeIntervalSince(start)
    }

    public func input(for image: RGBImage) throws -> RunnerInput {
        guard let model else { throw BundleError(message: "load() first") }
        guard let description = model.modelDescription.inputDescriptionsByName[Self.inputName], let constraint = description.imageConstraint else {
            throw BundleError(message: "\(packageURL.lastPathComponent) has no image input named '\(Self.inputName)'")
        }
        guard let cgImage = Images.cgImage(image) else { throw BundleError(message: "cannot make a CGImage") }
        let value = try MLFeatureValue(cgImage: cgImage, constraint: constraint, options: nil)
        return RunnerInput(storage: try MLDictionaryFeatureProvider(dictionary: [Self.inputName: value]))
    }

    public func run(_ input: RunnerInput) throws -> [String: [Float]] {
        guard let model else { throw BundleError(message: "load() first") }
        guard let features = input.storage as? MLFeatureProvider else { throw BundleError(message: "not a Core ML input") }
        let result = try model.prediction(from: features)
        var outputs: [String: [Float]] = [:]
        for name in outputNames {
            let key = renamed[name] ?? name
            guard let value = result.featureValue(for: key) else { throw BundleError(message: "\(packageURL.lastPathComponent) has no output \(key)") }
            switch value.type {
            case .dictionary: // the classifier's label -> probability dictionary, in the manifest's label order
                let dictionary = value.dictionaryValue
                outputs[name] = labels.map { Float(truncating: dictionary[AnyHashable($0)] ?? 0) }
            case .multiArray:
                let array = value.multiArrayValue!
                outputs[name] = (0..<array.count).map { array[$0].floatValue }
            case .double:
                outputs[name] = [Float(value.doubleValue)]
            default:
                throw BundleError(message: "\(key): unexpected Core ML feature type \(value.type.rawValue)")
            }
        }
        return outputs
    }

    static let inputName = "image" // every artifact's input (mobiledr.export.manifest.INPUT_NAME)
}
