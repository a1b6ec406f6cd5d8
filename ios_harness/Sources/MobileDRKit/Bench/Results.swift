import Foundation

/// One benchmark run in the shared bench schema (`mobiledr/bench/bench.schema.json`,
/// `mobiledr-bench/1`), as the Android harness writes it. Rows have `additionalProperties: false`:
/// every CodingKeys value below is a schema property (tests/test_harness_apps.py checks them). Optional
/// values that are nil are left out, never written as null.
public struct BenchReport: Encodable {
    public let schema = "mobiledr-bench/1"
    public let created: String
    public let mobiledrVersion: String
    public let bundle: String
    public let manifestSha256: String
    public let model: ModelInfo
    public let devices: [DeviceInfo]
    public let settings: Settings
    public let rows: [BenchRow]

    enum CodingKeys: String, CodingKey {
        case schema, created, bundle, model, devices, settings, rows
        case mobiledrVersion = "mobiledr_version"
        case manifestSha256 = "manifest_sha256"
    }

    public struct ModelInfo: Encodable {
        public let name: String
        public let inputSize: Int
        enum CodingKeys: String, CodingKey { case name; case inputSize = "input_size" }
    }

    public struct Settings: Encodable {
        public let warmup: Int
        public let iters: Int
        public let threads: [Int]
        public let computeUnits: String
        enum CodingKeys: String, CodingKey { case warmup, iters, threads; case computeUnits = "compute_units" }
    }

    /// Writes the report atomically (a temporary file, then a rename).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

/// The phone: `name` is what rows put in their `device` column; `facts` are free-form.
public struct DeviceInfo: Encodable {
    public let name: String
    public let kind: String
    public let facts: [String: String]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (key, value) in facts { try container.encode(value, forKey: Key(key)) }
        try container.encode(name, forKey: Key("device"))
        try container.encode(kind, forKey: Key("kind"))
    }
}

/// A self-check's outcome: status passed | failed | skipped.
public struct CheckResult: Encodable {
    public let status: String
    public let cases: Int?
    public let maxAbsError: Double?
    public let detail: String?

    public init(status: String, cases: Int? = nil, maxAbsError: Double? = nil, detail: String? = nil) {
        self.status = status
        self.cases = cases
        self.maxAbsError = maxAbsError.flatMap { $0.isFinite ? $0 : nil } // JSON has no NaN
        self.detail = detail
    }

    public var failed: Bool { status == "failed" }

    enum CodingKeys: String, CodingKey {
        case status = "status", cases = "cases", maxAbsError = "max_abs_error", detail = "detail"
    }
}

/// One artifact x runtime x compute units on this device; status ok | skipped | failed.
public struct BenchRow: Encodable {
    public var device: String
    public var artifact: String
    public var format: String
    public var precision: String
    public var runtime: String
    public var backend: String
    public var threads: Int
    public var params: Int?
    public var macs: Int?
    public var sizeBytes: Int?
    public var status: String
    public var error: String?
    public var warning: String?
    public var loadMs: Double?
    public var firstMs: Double?
    public var latenciesMs: [Double]? // every timed inference, raw
    public var baselineRssMb: Double?
    public var rssMb: Double?
    public var peakRssMb: Double?
    public var checks: [String: CheckResult]?

    enum CodingKeys: String, CodingKey {
        case device = "device"
        case artifact = "artifact"
        case format = "format"
        case precision = "precision"
        case runtime = "runtime"
        case backend = "backend"
        case threads = "threads"
        case params = "params"
        case macs = "macs"
        case sizeBytes = "size_bytes"
        case status = "status"
        case error = "error"
        case warning = "warning"
        case loadMs = "load_ms"
        case firstMs = "first_ms"
        case latenciesMs = "latencies_ms"
        case baselineRssMb = "baseline_rss_mb"
        case rssMb = "rss_mb"
        case peakRssMb = "peak_rss_mb"
        case checks = "checks"
    }
}
