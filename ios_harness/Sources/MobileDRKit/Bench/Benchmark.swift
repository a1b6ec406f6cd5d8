import CoreML
import Foundation

/// The phone's half of `mobiledr bench --device ios`, as the Android harness's `Benchmark.kt`:
/// self-checks, load (Core ML: compile + load), first inference, warm-up, timed inferences on the first
/// golden image, memory; Core ML's op placement when the OS has `MLComputePlan`.
public final class Benchmark {
    public let bundle: URL
    public let manifest: Manifest
    private let device: DeviceInfo
    private let log: (String) -> Void

    public init(bundle: URL, device: DeviceInfo, log: @escaping (String) -> Void = { _ in }) throws {
        self.bundle = bundle
        self.device = device
        self.log = log
        manifest = try Manifest.load(bundle: bundle)
    }

    /// Measures the requested artifact (every artifact this app can run when nil) and returns the
    /// report; per-op Core ML placements go to `planFolder/compute_plan.<artifact>.json`.
    public func run(_ arguments: LaunchArguments, mobiledrVersion: String, planFolder: URL?) async throws -> BenchReport {
        let units = try Runners.computeUnits(arguments.computeUnits)
        let artifacts = try arguments.artifact.map { [try manifest.artifact($0)] } ?? manifest.artifacts
        log("geometric self-check on \(manifest.golden.geometric)")
        let geometric = try SelfChecks.geometric(bundle: bundle, manifest: manifest)
        let vectors = try Npz.read(bundle.appendingPathComponent(manifest.golden.vectors))
        var rows: [BenchRow] = []
        for artifact in artifacts {
            log("measuring \(artifact.file) (\(artifact.runtime), compute units \(arguments.computeUnits))")
            let row = await measure(artifact, arguments: arguments, units: units, geometric: geometric, vectors: vectors, planFolder: planFolder)
            log("\(artifact.file): \(row.status) \(row.error ?? row.latenciesMs.map { "\($0.count) timed inferences" } ?? "")")
            rows.append(row)
        }
        return BenchReport(
            created: ISO8601DateFormatter().string(from: Date()), mobiledrVersion: mobiledrVersion, bundle: bundle.path,
            manifestSha256: try Integrity.sha256(bundle.appendingPathComponent(Manifest.fileName)),
            model: .init(name: manifest.model.name, inputSize: manifest.model.inputSize), devices: [device],
            settings: .init(warmup: arguments.warmup, iters: arguments.iterations, threads: [1], computeUnits: arguments.computeUnits), rows: rows
        )
    }

    func measure(_ artifact: Manifest.Artifact, arguments: LaunchArguments, units: MLComputeUnits, geometric: CheckResult,
                 vectors: [String: NpyArray], planFolder: URL?) async -> BenchRow {
        // threads: one inference at a time; Core ML and ExecuTorch size their own thread pools.
        var row = BenchRow(device: device.name, artifact: artifact.file, format: artifact.format, precision: artifact.precision,
                           runtime: artifact.runtime, backend: artifact.backend, threads: 1, params: artifact.params, macs: artifact.macs,
                           sizeBytes: artifact.sizeBytes, status: "ok")
        if let reason = Runners.unavailableReason(artifact) {
            row.status = "skipped"
            row.error = reason
            return row
        }
        var checks = [SelfChecks.integrity: SelfChecks.integrity(bundle: bundle, manifest: manifest, artifact: artifact), SelfChecks.geometric: geometric]
        row.checks = checks
        if checks[SelfChecks.integrity]!.failed {
            row.status = "failed"
            row.error = "integrity: \(checks[SelfChecks.integrity]!.detail ?? "")"
            return row
        }
        do {
            guard let image = vectors["image"] else { throw BundleError(message: "golden vectors have no 'image' array") }
            let runner = try Runners.open(bundle: bundle, manifest: manifest, artifact: artifact, computeUnits: units)
            let baseline = ProcessMemory.resident()?.now
            var start = Date()
            try await runner.load()
            let load = Date().timeIntervalSince(start)
            let side = manifest.model.inputSize
            var first = RGBImage(width: side, height: side)
            let chw = image.item(0)
            for p in 0..<(side * side) { for c in 0..<3 { first.pixels[p * 3 + c] = UInt8(max(0, min(255, chw[c * side * side + p].rounded()))) } }
            let input = try runner.input(for: first)
            start = Date()
            _ = try runner.run(input)
            let firstInference = Date().timeIntervalSince(start)
            checks[SelfChecks.goldenVectors] = try SelfChecks.goldenVectors(runner: runner, manifest: manifest, vectors: vectors, precision: artifact.precision)
            if let coreml = runner as? CoreMLRunner {
                checks[SelfChecks.computePlan] = await computePlan(coreml, artifact: artifact, unitsName: arguments.computeUnits, folder: planFolder)
            }
            for _ in 0..<arguments.warmup { _ = try runner.run(input) }
            var milliseconds: [Double] = []
            milliseconds.reserveCapacity(arguments.iterations)
            for _ in 0..<arguments.iterations {
                let t = DispatchTime.now().uptimeNanoseconds
                _ = try runner.run(input)
                milliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
            }
            let memory = ProcessMemory.resident()
            row.loadMs = load * 1e3
            row.firstMs = firstInference * 1e3
            row.latenciesMs = milliseconds // raw: mobiledr bench computes the statistics and the noisy-CV flag
            row.baselineRssMb = baseline
            row.rssMb = memory?.now
            row.peakRssMb = memory?.peak
            row.warning = warnings(checks)
        } catch let unavailable as RuntimeUnavailable {
            row.status = "skipped"
            row.error = unavailable.reason
        } catch {
            row.status = "failed"
            row.error = "\(type(of: error)): \(error)"
        }
        row.checks = checks
        return row
    }

    private func computePlan(_ runner: CoreMLRunner, artifact: Manifest.Artifact, unitsName: String, folder: URL?) async -> CheckResult {
        let timing = runner.loadDetail ?? ""
        guard #available(iOS 17.4, macOS 14.4, *), let compiled = runner.compiledURL else {
            return CheckResult(status: "skipped", detail: "\(timing); MLComputePlan needs iOS 17.4 / macOS 14.4")
        }
        do {
            let report = try await ComputePlanReport.load(compiledModel: compiled, artifact: artifact.file, computeUnits: runner.computeUnits, unitsName: unitsName)
            if let folder {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: folder.appendingPathComponent("compute_plan.\(artifact.file).json"), options: .atomic)
            }
            return CheckResult(status: "passed", cases: report.operations.count, detail: "\(timing); \(report.summary)")
        } catch {
            return CheckResult(status: "failed", detail: "\(timing); MLComputePlan: \(error)")
        }
    }

    private func warnings(_ checks: [String: CheckResult]) -> String? {
        let notes = checks.filter { $0.value.failed && $0.key != SelfChecks.computePlan }.sorted { $0.key < $1.key }
            .map { "self-check \($0.key) failed: \($0.value.detail ?? "")" }
        return notes.isEmpty ? nil : notes.joined(separator: "; ")
    }
}
