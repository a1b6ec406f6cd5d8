import Foundation

/// What the phone checks before timing, by the names `bench.schema.json` gives them (the Android
/// harness's `SelfChecks.kt`): the bundle's hashes, this app's geometric stage on the golden
/// photographs, and the artifact on the golden vectors with the element-wise rules of
/// `mobiledr/parity/tolerances.yaml`.
public enum SelfChecks {
    public static let integrity = "integrity"
    public static let geometric = "geometric"
    public static let goldenVectors = "golden_vectors"
    public static let computePlan = "compute_plan" // informational: Core ML's op placement (MLComputePlan)
    static let relFloor = 1e-6

    public struct Rule { public let measure: String; public let output: String; public let limit: Double }

    /// The policy's element-wise rules per precision; others (int8, int8-weights, palettized-6bit) are
    /// judged by their decisions, as the policy does.
    public static let elementwise: [String: [Rule]] = [
        "fp32": [Rule(measure: "max_abs", output: "probs", limit: 1.0e-4), Rule(measure: "max_abs", output: "logits", limit: 1.0e-3),
                 Rule(measure: "max_abs", output: "heatmap", limit: 1.0e-3), Rule(measure: "max_rel", output: "ood_score", limit: 1.0e-3)],
        "fp16": [Rule(measure: "max_abs", output: "probs", limit: 1.0e-2), Rule(measure: "max_abs", output: "logits", limit: 5.0e-2),
                 Rule(measure: "max_abs", output: "heatmap", limit: 5.0e-2), Rule(measure: "max_rel", output: "ood_score", limit: 2.0e-2)],
    ]

    /// The artifact, the golden files the checks read and the artifact's extra files against the
    /// manifest's sizes and sha256; other bundle files are not needed to measure this artifact.
    public static func integrity(bundle: URL, manifest: Manifest, artifact: Manifest.Artifact) -> CheckResult {
        let used = manifest.files.filter { $0.file.hasPrefix("golden/") || artifact.extras.values.contains($0.file) }
        var mismatches: [Integrity.Mismatch] = []
        if let m = Integrity.check(bundle: bundle, file: artifact.file, sizeBytes: artifact.sizeBytes, sha256: artifact.sha256) { mismatches.append(m) }
        for entry in used {
            if let m = Integrity.check(bundle: bundle, file: entry.file, sizeBytes: entry.sizeBytes, sha256: entry.sha256) { mismatches.append(m) }
        }
        let cases = 1 + used.count
        if mismatches.isEmpty { return CheckResult(status: "passed", cases: cases, detail: "\(artifact.file) and \(used.count) golden and extra files match the manifest") }
        return CheckResult(status: "failed", cases: cases, detail: mismatches.map { "\($0.file): \($0.reason)" }.joined(separator: "; "))
    }

    private struct GoldenPairs: Decodable {
        struct Pair: Decodable { let name: String; let original: String; let expected: String }
        let size: Int
        let mode: String
        let cropTolerance: Int
        let maxAbsDifference: Int
        let pairs: [Pair]
        enum CodingKeys: String, CodingKey { case size, mode, pairs; case cropTolerance = "crop_tolerance"; case maxAbsDifference = "max_abs_difference" }
    }

    /// This app's geometric stage on the golden photographs against the expected outputs.
    public static func geometric(bundle: URL, manifest: Manifest) throws -> CheckResult {
        let url = bundle.appendingPathComponent(manifest.golden.geometric)
        let info = try JSONDecoder().decode(GoldenPairs.self, from: Data(contentsOf: url))
        let spec = GeometricSpec(size: info.size, mode: info.mode, cropTolerance: info.cropTolerance)
        let limit = manifest.golden.geometricMaxAbsDifference ?? info.maxAbsDifference
        let folder = url.deletingLastPathComponent()
        var worst = 0
        var notes: [String] = []
        for pair in info.pairs {
            let expected = try Images.decode(url: folder.appendingPathComponent(pair.expected))
            let difference: Int
            do {
                difference = try Geometric.apply(try Images.decode(url: folder.appendingPathComponent(pair.original)), spec: spec).image.maxAbsDifference(expected)
            } catch let rejected as ImageRejected {
                notes.append("\(pair.name) rejected: \(rejected.reason)")
                difference = 255
            }
            notes.append("\(pair.name) \(difference)")
            worst = max(worst, difference)
        }
        return CheckResult(status: worst <= limit ? "passed" : "failed", cases: info.pairs.count, maxAbsError: Double(worst),
                           detail: "max |difference| per pair in grey levels (limit \(limit)): \(notes.joined(separator: ", "))")
    }

    /// The artifact on every golden image against the float32 PyTorch reference outputs.
    public static func goldenVectors(runner: Runner, manifest: Manifest, vectors: [String: NpyArray], precision: String) throws -> CheckResult {
        guard let images = vectors["image"] else { return CheckResult(status: "failed", cases: 0, detail: "golden vectors have no 'image' array") }
        let count = images.shape[0], side = manifest.model.inputSize
        var actual: [[String: [Float]]] = []
        for i in 0..<count { // the vectors hold CHW floats 0-255: back to the RGB image Core ML takes
            let chw = images.item(i)
            var rgb = RGBImage(width: side, height: side)
            for p in 0..<(side * side) { for c in 0..<3 { rgb.pixels[p * 3 + c] = UInt8(max(0, min(255, chw[c * side * side + p].rounded()))) } }
            actual.append(try runner.run(try runner.input(for: rgb)))
        }
        let compared = manifest.outputNames.filter { vectors[$0] != nil }
        var maxAbs: [String: Double] = [:], maxRel: [String: Double] = [:]
        for name in compared {
            for i in 0..<count {
                let reference = vectors[name]!.item(i)
                guard let values = actual[i][name], values.count == reference.count else {
                    return CheckResult(status: "failed", cases: count, detail: "\(name): \(actual[i][name]?.count ?? 0) values, the reference has \(reference.count)")
                }
                for k in reference.indices {
                    let error = abs(Double(values[k]) - Double(reference[k]))
                    maxAbs[name] = max(maxAbs[name] ?? 0, error)
                    maxRel[name] = max(maxRel[name] ?? 0, error / max(abs(Double(reference[k])), relFloor))
                }
            }
        }
        let worst = maxAbs.values.max() ?? 0
        guard let rules = elementwise[precision] else {
            var agree = 0
            for i in 0..<count {
                var reference: [String: [Float]] = [:]
                for name in compared { reference[name] = vectors[name]!.item(i) }
                if try ScreeningModel.decide(manifest, reference).classIndex == ScreeningModel.decide(manifest, actual[i]).classIndex { agree += 1 }
            }
            return CheckResult(status: agree == count ? "passed" : "failed", cases: count, maxAbsError: worst,
                               detail: "\(precision) has no element-wise rules: decisions agree on \(agree)/\(count) golden images")
        }
        let results = rules.filter { compared.contains($0.output) }.map { rule -> (Rule, Double, Bool) in
            let value = (rule.measure == "max_abs" ? maxAbs : maxRel)[rule.output] ?? 0
            return (rule, value, value <= rule.limit)
        }
        let detail = results.map { "\($0.0.measure).\($0.0.output) \(String(format: "%.2e", $0.1)) \($0.2 ? "<=" : ">") \($0.0.limit)" }.joined(separator: ", ")
        return CheckResult(status: (results.allSatisfy { $0.2 }) ? "passed" : "failed", cases: count, maxAbsError: worst, detail: detail)
    }
}
