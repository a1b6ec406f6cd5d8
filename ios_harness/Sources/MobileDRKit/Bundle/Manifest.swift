import Foundation

/// A folder that is not a usable mobiledr bundle; the message says why.
public struct BundleError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The bundle's `manifest.json` (JSON Schema: `mobiledr/export/manifest.schema.json`, version 1), the
/// part an app needs. Keys are spelled out: JSONDecoder's snake-case conversion would also rename the
/// keys of `output_names` and `extras`.
public struct Manifest: Decodable {
    public static let fileName = "manifest.json"
    public static let schemaVersion = 1

    public let format: String
    public let schemaVersionValue: Int
    public let mobiledrVersion: String
    public let model: Model
    public let labels: [String]
    public let labelScheme: String
    public let decision: Decision
    public let ood: Ood?
    public let preprocessing: Preprocessing
    public let input: TensorSpec
    public let outputs: [TensorSpec]
    public let artifacts: [Artifact]
    public let files: [FileEntry]
    public let golden: Golden

    enum CodingKeys: String, CodingKey {
        case format, model, labels, decision, ood, preprocessing, input, outputs, artifacts, files, golden
        case schemaVersionValue = "schema_version"
        case mobiledrVersion = "mobiledr_version"
        case labelScheme = "label_scheme"
    }

    public struct Model: Decodable {
        public let name: String
        public let inputSize: Int
        public let params: Int
        public let macs: Int
        enum CodingKeys: String, CodingKey { case name, params, macs; case inputSize = "input_size" }
    }

    /// Binary `probs[positiveIndex] >= threshold`, otherwise argmax.
    public struct Decision: Decodable {
        public let rule: String
        public let threshold: Double?
        public let positiveIndex: Int?
        public let temperature: Double
        public var binary: Bool { threshold != nil && positiveIndex != nil }
        enum CodingKeys: String, CodingKey { case rule, threshold, temperature; case positiveIndex = "positive_index" }
    }

    /// `ood_score < threshold` means do not grade.
    public struct Ood: Decodable {
        public let output: String
        public let threshold: Double
        public let rule: String
    }

    public struct Preprocessing: Decodable {
        public let geometric: Geometric
        public struct Geometric: Decodable {
            public let mode: String
            public let size: Int
            public let cropTolerance: Int
            enum CodingKeys: String, CodingKey { case mode, size; case cropTolerance = "crop_tolerance" }
        }
    }

    public struct TensorSpec: Decodable {
        public let name: String
        public let shape: [Int]
    }

    public struct Artifact: Decodable {
        public let file: String
        public let format: String
        public let kind: String // pte | onnx | ort | mlpackage
        public let runtime: String // executorch | onnxruntime | onnxruntime-mobile | coreml
        public let backend: String
        public let precision: String
        public let sizeBytes: Int
        public let sha256: String
        public let params: Int
        public let macs: Int
        public let inputType: String // tensor | image
        public let outputNames: [String: String] // manifest output name -> this artifact's name (Core ML classifiers)
        public let extras: [String: String]
        enum CodingKeys: String, CodingKey {
            case file, format, kind, runtime, backend, precision, sha256, params, macs, extras
            case sizeBytes = "size_bytes"
            case inputType = "input_type"
            case outputNames = "output_names"
        }
    }

    public struct FileEntry: Decodable {
        public let file: String
        public let sizeBytes: Int
        public let sha256: String
        enum CodingKeys: String, CodingKey { case file, sha256; case sizeBytes = "size_bytes" }
    }

    public struct Golden: Decodable {
        public let vectors: String
        public let geometric: String
        public let bundledProgram: String?
        public let count: Int
        public let tolerances: [String: Double]
        public var geometricMaxAbsDifference: Int? { tolerances["geometric_max_abs_difference"].map { Int($0) } }
        enum CodingKeys: String, CodingKey { case vectors, geometric, count, tolerances; case bundledProgram = "bundled_program" }
    }

    public var outputNames: [String] { outputs.map(\.name) }
    public var geometricSpec: GeometricSpec {
        GeometricSpec(size: preprocessing.geometric.size, mode: preprocessing.geometric.mode, cropTolerance: preprocessing.geometric.cropTolerance)
    }

    public func artifact(_ file: String) throws -> Artifact {
        guard let found = artifacts.first(where: { $0.file == file }) else {
            throw BundleError(message: "the bundle has no artifact '\(file)' (it has \(artifacts.map(\.file).joined(separator: ", ")))")
        }
        return found
    }

    public static func load(bundle: URL) throws -> Manifest {
        let url = bundle.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw BundleError(message: "\(bundle.path): not a mobiledr bundle (\(fileName) missing)") }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
        } catch {
            throw BundleError(message: "\(url.path): invalid manifest: \(error)")
        }
        guard manifest.format == "mobiledr-bundle" else { throw BundleError(message: "not a mobiledr bundle manifest (format \(manifest.format))") }
        guard manifest.schemaVersionValue == schemaVersion else {
            throw BundleError(message: "manifest schema version \(manifest.schemaVersionValue) is not \(schemaVersion); use a matching harness")
        }
        return manifest
    }
}
