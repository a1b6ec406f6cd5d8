import Foundation

/// An 8-bit RGB image, row-major, 3 bytes per pixel: what `mobiledr.data.geometry` calls `rgb`
/// (a `(height, width, 3)` uint8 array). `Platform/Images.swift` converts `CGImage`s to it.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]? = nil) {
        precondition(width > 0 && height > 0, "empty image \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels ?? [UInt8](repeating: 0, count: width * height * 3)
        precondition(self.pixels.count == width * height * 3, "\(self.pixels.count) bytes for a \(width)x\(height) RGB image")
    }

    /// Channel `c` (0 = R, 1 = G, 2 = B) of pixel (`x`, `y`), 0-255.
    @inline(__always) public subscript(x: Int, y: Int, c: Int) -> Int {
        Int(pixels[(y * width + x) * 3 + c])
    }

    /// The model input: NCHW float32 RGB 0-255, `(1, 3, height, width)` flattened.
    public func chwFloats() -> [Float] {
        let plane = width * height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for c in 0..<3 { out[c * plane + i] = Float(pixels[i * 3 + c]) }
        }
        return out
    }

    /// Largest |difference| over every pixel and channel; 255 if the sizes differ.
    public func maxAbsDifference(_ other: RGBImage) -> Int {
        guard width == other.width, height == other.height else { return 255 }
        var worst = 0
        for i in pixels.indices { worst = max(worst, abs(Int(pixels[i]) - Int(other.pixels[i]))) }
        return worst
    }
}
