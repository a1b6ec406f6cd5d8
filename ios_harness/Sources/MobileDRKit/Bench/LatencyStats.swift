import Foundation

/// `mobiledr.bench.worker.latency_stats`: numpy's definitions (population std, linear percentiles).
public enum LatencyStats {
    public static func of(seconds: [Double]) -> Latency {
        precondition(!seconds.isEmpty, "no timings")
        let ms = seconds.map { $0 * 1e3 }
        let mean = ms.reduce(0, +) / Double(ms.count)
        let std = (ms.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(ms.count)).squareRoot()
        let sorted = ms.sorted()
        return Latency(mean: mean, std: std, min: sorted.first!, p50: percentile(sorted, 50), p90: percentile(sorted, 90),
                       p99: percentile(sorted, 99), max: sorted.last!, cv: mean > 0 ? std / mean : 0)
    }

    /// `np.percentile(values, q)` with the default linear method, on sorted values.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let n = sorted.count
        let quantile = q / 100
        let virtual = Double(n) * quantile + (1.0 + quantile * (1 - 1 - 1)) - 1
        let lo = min(max(Int(virtual.rounded(.down)), 0), n - 1)
        let hi = min(max(lo + 1, 0), n - 1)
        let t = virtual - virtual.rounded(.down)
        let a = sorted[lo], b = sorted[hi], diff = b - a
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t
    }
}

/// Resident memory of this process from Mach (`task_vm_info`), in MB.
public enum ProcessMemory {
    public static func resident() -> (now: Double, peak: Double)? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let status = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        guard status == KERN_SUCCESS else { return nil }
        return (Double(info.resident_size) / 1_048_576, Double(info.resident_size_peak) / 1_048_576)
    }
}
