import Foundation

/// The phone, for the results' `devices` entry.
public enum DeviceFacts {
    /// The hardware identifier, e.g. "iPhone16,1" (the simulator reports the Mac's: "arm64").
    public static var machine: String {
        var system = utsname()
        uname(&system)
        return withUnsafeBytes(of: &system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    public static func info(harnessVersion: String) -> DeviceInfo {
        let process = ProcessInfo.processInfo
        return DeviceInfo(name: machine, kind: "ios", facts: [
            "machine": machine,
            "os": process.operatingSystemVersionString,
            "cores": String(process.processorCount),
            "ram_mb": String(process.physicalMemory / 1_048_576),
            "harness": "ios_harness \(harnessVersion)",
        ])
    }
}
