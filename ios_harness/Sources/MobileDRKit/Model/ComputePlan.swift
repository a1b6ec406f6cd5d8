import CoreML
import Foundation

/// Where Core ML will run each operation of a compiled ML program (`MLComputePlan`, iOS 17.4 /
/// macOS 14.4): the preferred device per op, the devices that support it, and its estimated cost.
public struct ComputePlanReport: Encodable {
    public struct Operation: Encodable {
        public let op: String
        public let device: String // cpu | gpu | neural_engine | none (constants and the like)
        public let supported: [String]
        public let cost: Double?
    }

    public let artifact: String
    public let computeUnits: String
    public let operations: [Operation]

    enum CodingKeys: String, CodingKey {
        case artifact, operations
        case computeUnits = "compute_units"
    }

    /// "143 ops: neural_engine 139, cpu 4; estimated cost: neural_engine 97%, cpu 3%".
    public var summary: String {
        let placed = operations.filter { $0.device != "none" }
        let counts = Dictionary(grouping: placed, by: \.device).mapValues(\.count).sorted { $0.value > $1.value }
        let costs = Dictionary(grouping: placed, by: \.device).mapValues { $0.compactMap(\.cost).reduce(0, +) }
        let total = costs.values.reduce(0, +)
        var text = "\(placed.count) ops: " + counts.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        if total > 0 {
            text += "; estimated cost: " + costs.sorted { $0.value > $1.value }.map { "\($0.key) \(Int(($0.value / total * 100).rounded()))%" }.joined(separator: ", ")
        }
        return text
    }

    @available(iOS 17.4, macOS 14.4, *)
    public static func load(compiledModel: URL, artifact: String, computeUnits: MLComputeUnits, unitsName: String) async throws -> ComputePlanReport {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        let plan = try await MLComputePlan.load(contentsOf: compiledModel, configuration: configuration)
        var operations: [Operation] = []
        func visit(_ block: MLModelStructure.Program.Block) {
            for operation in block.operations {
                let usage = plan.deviceUsage(for: operation)
                operations.append(Operation(
                    op: operation.operatorName,
                    device: usage.map { name($0.preferred) } ?? "none",
                    supported: usage?.supported.map(name) ?? [],
                    cost: plan.estimatedCost(of: operation)?.weight
                ))
                operation.blocks.forEach(visit)
            }
        }
        if case let .program(program) = plan.modelStructure {
            program.functions.keys.sorted().forEach { visit(program.functions[$0]!.block) }
        }
        return ComputePlanReport(artifact: artifact, computeUnits: unitsName, operations: operations)
    }

    @available(iOS 17.4, macOS 14.4, *)
    private static func name(_ device: MLComputeDevice) -> String {
        switch device {
        case .cpu: return "cpu"
        case .gpu: return "gpu"
        case .neuralEngine: return "neural_engine"
        @unknown default: return "other"
        }
    }
}
