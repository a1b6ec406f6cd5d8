import CryptoKit
import Foundation

/// The manifest's hashes, checked the way `mobiledr bundle verify` checks them: a file's sha256, and
/// for a folder (`.mlpackage`) the sha256 of its sorted `relative path NUL file sha256 LF` lines.
public enum Integrity {
    public struct Mismatch { public let file: String; public let reason: String }

    public static func sha256(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// sha256 and total size of a file or folder, as the manifest records them.
    public static func treeSha256(_ url: URL) throws -> (sha256: String, size: Int) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw CocoaError(.fileNoSuchFile) }
        if !isDirectory.boolValue {
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
            return (try sha256(url), size)
        }
        let base = url.resolvingSymlinksInPath().path // /var and /private/var are one folder on iOS
        var relatives: [String] = []
        if let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let item as URL in walker where (try? item.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                relatives.append(String(item.resolvingSymlinksInPath().path.dropFirst(base.count + 1)))
            }
        }
        // Python sorts Path objects part by part.
        relatives.sort { $0.split(separator: "/").lexicographicallyPrecedes($1.split(separator: "/")) }
        var hasher = SHA256()
        var total = 0
        for relative in relatives {
            let (sha, size) = try treeSha256(url.appendingPathComponent(relative))
            hasher.update(data: Data("\(relative)\u{0}\(sha)\n".utf8))
            total += size
        }
        return (hasher.finalize().map { String(format: "%02x", $0) }.joined(), total)
    }

    /// Checks one entry; nil when it matches.
    public static func check(bundle: URL, file: String, sizeBytes: Int, sha256 expected: String) -> Mismatch? {
        guard let actual = try? treeSha256(bundle.appendingPathComponent(file)) else { return Mismatch(file: file, reason: "missing") }
        if actual.size != sizeBytes { return Mismatch(file: file, reason: "size \(actual.size), manifest says \(sizeBytes)") }
        if actual.sha256 != expected { return Mismatch(file: file, reason: "sha256 \(actual.sha256.prefix(12))..., manifest says \(expected.prefix(12))...") }
        return nil
    }
}
