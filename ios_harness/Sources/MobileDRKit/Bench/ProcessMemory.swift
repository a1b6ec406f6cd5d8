import Foundation

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
