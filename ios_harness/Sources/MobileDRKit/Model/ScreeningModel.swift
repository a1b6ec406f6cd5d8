import CoreML
import Foundation

/// The screening decision under the manifest's rule. `probability` is the calibrated probability of
/// the positive class (binary rule) or of the predicted class (argmax rule).
public struct Prediction: Sendable {
    public let label: String
    public let classIndex: Int
    public let probability: Double
    public let probs: [Double]
    public let refer: Bool? // binary rule only: probs[positive] >= threshold
    public let threshold: Double?
}

/// The out-of-distribution gate: a score below the threshold means the model must not grade.
public struct OodVerdict: Sendable {
    public let score: Double
    public let threshold: Double
    public var outOfDistribution: Bool { score < threshold }
}

/// Where the model looked, `side` x `side` values in 0-1 over the model-size crop.
public struct Heatmap: Sendable {
    public let side: Int
    public let values: [Float]

    /// Bilinear value at (`u`, `v`) in 0-1 crop coordinates (pixel centres, edges clamped).
    public func at(_ u: Double, _ v: Double) -> Float {
        let x = min(max(u * Double(side) - 0.5, 0), Double(side - 1)), y = min(max(v * Double(side) - 0.5, 0), Double(side - 1))
        let x0 = Int(x), y0 = Int(y), x1 = min(x0 + 1, side - 1), y1 = min(y0 + 1, side - 1)
        let fx = Float(x - Double(x0)), fy = Float(y - Double(y0))
        let top = values[y0 * side + x0] * (1 - fx) + values[y0 * side + x1] * fx
        let bottom = values[y1 * side + x0] * (1 - fx) + values[y1 * side + x1] * fx
        return top * (1 - fy) + bottom * fy
    }
}

/// One photograph's result: prediction, OOD verdict, heatmap and the crop it came from.
public struct Screening: Sendable {
    public let prediction: Prediction
    public let ood: OodVerdict?
    public let heatmap: Heatmap?
    public let crop: GeometricResult
    /// False when the OOD gate rejects the photograph: report "ungradable", not the prediction.
    public var gradable: Bool { ood?.outOfDistribution != true }
}

/// The model-facing part of an app, in one class with no UIKit/SwiftUI imports: open a bundle, run
/// the geometric stage on a decoded photograph, run the artifact, apply the manifest's decision rule,
/// temperature and OOD gate. Not thread-safe: use it from one task at a time (it is `Sendable` so that
/// the task may be a background one).
///
///     let model = try await ScreeningModel.open(bundle: bundleURL)
///     let result = try model.screen(photo)        // throws ImageRejected: ask for a retake
public final class ScreeningModel: @unchecked Sendable {
    public let manifest: Manifest
    public let artifact: Manifest.Artifact
    private let runner: Runner

    private init(manifest: Manifest, artifact: Manifest.Artifact, runner: Runner) {
        self.manifest = manifest
        self.artifact = artifact
        self.runner = runner
    }

    /// Opens `bundle` with `artifact` (default: the first Core ML artifact, else the first ExecuTorch
    /// one), after checking its sha256 when `verify` is set.
    public static func open(bundle: URL, artifact: String? = nil, computeUnits: MLComputeUnits = .all, verify: Bool = true) async throws -> ScreeningModel {
        let manifest = try Manifest.load(bundle: bundle)
        let spec = try artifact.map { try manifest.artifact($0) } ?? defaultArtifact(manifest)
        if verify, let mismatch = Integrity.check(bundle: bundle, file: spec.file, sizeBytes: spec.sizeBytes, sha256: spec.sha256) {
            throw BundleError(message: "\(mismatch.file): \(mismatch.reason); refusing to load it")
        }
        let runner = try Runners.open(bundle: bundle, manifest: manifest, artifact: spec, computeUnits: computeUnits)
        try await runner.load()
        return ScreeningModel(manifest: manifest, artifact: spec, runner: runner)
    }

    public static func defaultArtifact(_ manifest: Manifest) throws -> Manifest.Artifact {
        let runnable = manifest.artifacts.filter { Runners.unavailableReason($0) == nil }
        guard let first = runnable.first(where: { $0.runtime == "coreml" && $0.precision == "fp16" }) ?? runnable.first else {
            throw BundleError(message: "the bundle has no artifact this app can run")
        }
        return first
    }

    /// The geometric stage; throws `ImageRejected` for a photograph without a usable fundus disc.
    public func preprocess(_ photo: RGBImage) throws -> GeometricResult { try Geometric.apply(photo, spec: manifest.geometricSpec) }

    public func screen(_ photo: RGBImage) throws -> Screening { try predict(try preprocess(photo)) }

    public func predict(_ crop: GeometricResult) throws -> Screening {
        let outputs = try infer(crop.image)
        return Screening(prediction: try Self.decide(manifest, outputs), ood: Self.oodVerdict(manifest, outputs), heatmap: Self.heatmap(outputs), crop: crop)
    }

    /// The artifact's raw outputs, by manifest name, for a model-size image.
    public func infer(_ image: RGBImage) throws -> [String: [Float]] {
        guard image.width == manifest.model.inputSize, image.height == manifest.model.inputSize else {
            throw BundleError(message: "the model takes \(manifest.model.inputSize)x\(manifest.model.inputSize) images, got \(image.width)x\(image.height)")
        }
        return try runner.run(try runner.input(for: image))
    }

    /// Calibrated probabilities: the `probs` output, or the softmax of `logits / temperature`.
    public static func probabilities(_ manifest: Manifest, _ outputs: [String: [Float]]) throws -> [Double] {
        if let probs = outputs["probs"] { return probs.map(Double.init) }
        guard let logits = outputs["logits"] else { throw BundleError(message: "the artifact returned neither probs nor logits") }
        let scaled = logits.map { Double($0) / manifest.decision.temperature }
        let top = scaled.max() ?? 0
        let e = scaled.map { exp($0 - top) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    /// The manifest's decision rule (`mobiledr.parity.compare.Decision`).
    public static func decide(_ manifest: Manifest, _ outputs: [String: [Float]]) throws -> Prediction {
        let probs = try probabilities(manifest, outputs)
        let rule = manifest.decision
        if let threshold = rule.threshold, let positive = rule.positiveIndex {
            let refer = probs[positive] >= threshold
            let index = refer ? positive : probs.indices.filter { $0 != positive }.max { probs[$0] < probs[$1] }!
            return Prediction(label: manifest.labels[index], classIndex: index, probability: probs[positive], probs: probs, refer: refer, threshold: threshold)
        }
        let index = probs.indices.max { probs[$0] < probs[$1] }!
        return Prediction(label: manifest.labels[index], classIndex: index, probability: probs[index], probs: probs, refer: nil, threshold: nil)
    }

    public static func oodVerdict(_ manifest: Manifest, _ outputs: [String: [Float]]) -> OodVerdict? {
        guard let rule = manifest.ood, let score = outputs[rule.output]?.first else { return nil }
        return OodVerdict(score: Double(score), threshold: rule.threshold)
    }

    public static func heatmap(_ outputs: [String: [Float]]) -> Heatmap? {
        guard let values = outputs["heatmap"] else { return nil }
        let side = Int(Double(values.count).squareRoot())
        return side * side == values.count ? Heatmap(side: side, values: values) : nil
    }
}
