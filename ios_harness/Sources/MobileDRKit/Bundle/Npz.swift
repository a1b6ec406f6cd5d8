import Compression
import Foundation

/// A float32 array read from a `.npy` file: C-order values and their shape.
public struct NpyArray {
    public let shape: [Int]
    public let data: [Float]

    /// Element count of one item along the first axis.
    public var itemSize: Int { shape.dropFirst().reduce(1, *) }

    /// Item `i` along the first axis, flattened.
    public func item(_ i: Int) -> [Float] { Array(data[(i * itemSize)..<((i + 1) * itemSize)]) }
}

/// `numpy.savez` archives (`golden/vectors.npz`): a zip of `.npy` files (stored, or deflated by
/// `savez_compressed`). Only what the bundles hold: little-endian float32 (`<f4`), C order.
public enum Npz {
    public static func read(_ url: URL) throws -> [String: NpyArray] {
        let zip = try Data(contentsOf: url)
        var arrays: [String: NpyArray] = [:]
        for (name, bytes) in try entries(zip) where name.hasSuffix(".npy") {
            arrays[String(name.dropLast(4))] = try parseNpy(bytes, name: name)
        }
        return arrays
    }

    /// Every entry of a zip archive, through its central directory.
    static func entries(_ zip: Data) throws -> [(String, Data)] {
        let bytes = [UInt8](zip)
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        guard let end = stride(from: bytes.count - 22, through: max(0, bytes.count - 65_557), by: -1).first(where: { u32($0) == 0x0605_4B50 }) else {
            throw BundleError(message: "not a zip archive (no end of central directory)")
        }
        var offset = u32(end + 16)
        var out: [(String, Data)] = []
        for _ in 0..<u16(end + 10) {
            guard u32(offset) == 0x0201_4B50 else { throw BundleError(message: "corrupt zip central directory") }
            let method = u16(offset + 10), compressed = u32(offset + 20), size = u32(offset + 24)
            let nameLength = u16(offset + 28), extraLength = u16(offset + 30), commentLength = u16(offset + 32)
            let local = u32(offset + 42)
            let name = String(decoding: bytes[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self)
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            let raw = Data(bytes[start..<(start + compressed)])
            switch method {
            case 0: out.append((name, raw))
            case 8: out.append((name, try inflate(raw, size: size)))
            default: throw BundleError(message: "\(name): zip compression method \(method) is not supported")
            }
            offset += 46 + nameLength + extraLength + commentLength
        }
        return out
    }

    /// Raw DEFLATE (Apple's COMPRESSION_ZLIB is RFC 1951 without the zlib header).
    private static func inflate(_ data: Data, size: Int) throws -> Data {
        var out = Data(count: size)
        let written = out.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { src in
                compression_decode_buffer(dst.bindMemory(to: UInt8.self).baseAddress!, size, src.bindMemory(to: UInt8.self).baseAddress!, data.count, nil, COMPRESSION_ZLIB)
            }
        }
        guard written == size else { throw BundleError(message: "cannot inflate a zip entry") }
        return out
    }

    public static func parseNpy(_ data: Data, name: String = "array") throws -> NpyArray {
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
            throw BundleError(message: "\(name): not a .npy file")
        }
        let major = Int(bytes[6])
        let headerLength = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8 : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        let headerStart = major == 1 ? 10 : 12
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'") else { throw BundleError(message: "\(name): not little-endian float32 (<f4): \(header)") }
        guard header.contains("'fortran_order': False") else { throw BundleError(message: "\(name): Fortran-ordered arrays are not supported") }
        guard let shapeStart = header.range(of: "'shape': ("), let shapeEnd = header[shapeStart.upperBound...].firstIndex(of: ")") else {
            throw BundleError(message: "\(name): .npy header without a shape: \(header)")
        }
        let shape = header[shapeStart.upperBound..<shapeEnd].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let start = headerStart + headerLength
        guard bytes.count - start >= count * 4 else { throw BundleError(message: "\(name): too few data bytes for shape \(shape)") }
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let o = start + i * 4
            values[i] = Float(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
        }
        return NpyArray(shape: shape, data: values)
    }
}
