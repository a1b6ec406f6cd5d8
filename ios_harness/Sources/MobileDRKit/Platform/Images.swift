import CoreGraphics
import Foundation
import ImageIO

/// Image decoding and display around `RGBImage` with ImageIO and Core Graphics (no UIKit): what
/// `geometry.decode` does with Pillow. Pixel values are taken as stored (no colour management), as
/// Pillow does.
public enum Images {
    public static func decode(url: URL) throws -> RGBImage {
        guard let source = CGImageSourceCreateWithURL(url as CFURL, nil) else { throw BundleError(message: "\(url.lastPathComponent): unreadable") }
        return try decode(source, name: url.lastPathComponent)
    }

    public static func decode(data: Data) throws -> RGBImage {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil) else { throw BundleError(message: "not an image") }
        return try decode(source, name: "image")
    }

    /// Full resolution with the EXIF orientation applied.
    private static func decode(_ source: CGImageSource, name: String) throws -> RGBImage {
        let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any]
        let orientation = (properties?[kCGImagePropertyOrientation] as? NSNumber)?.intValue ?? 1
        let image: CGImage?
        if orientation == 1 {
            image = CGImageSourceCreateImageAtIndex(source, 0, nil)
        } else {
            let width = (properties?[kCGImagePropertyPixelWidth] as? NSNumber)?.intValue ?? 0
            let height = (properties?[kCGImagePropertyPixelHeight] as? NSNumber)?.intValue ?? 0
            let options: [CFString: Any] = [
                kCGImageSourceCreateThumbnailFromImageAlways: true, kCGImageSourceCreateThumbnailWithTransform: true,
                kCGImageSourceThumbnailMaxPixelSize: max(width, height),
            ]
            image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary)
        }
        guard let image else { throw BundleError(message: "\(name): not an image (format not recognised)") }
        return try rgb(image)
    }

    /// 8-bit RGB, composited on black (transparent parts of a fundus photograph are background).
    public static func rgb(_ image: CGImage) throws -> RGBImage {
        let width = image.width, height = image.height
        let space = image.colorSpace?.model == .rgb ? image.colorSpace! : CGColorSpaceCreateDeviceRGB()
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = rgba.withUnsafeMutableBytes { buffer -> Bool in
            guard let context = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8, bytesPerRow: width * 4,
                                          space: space, bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue) else { return false }
            context.setFillColor(CGColor(colorSpace: space, components: [0, 0, 0, 1])!)
            context.fill(CGRect(x: 0, y: 0, width: width, height: height))
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw BundleError(message: "cannot draw a \(width)x\(height) image") }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { for c in 0..<3 { pixels[i * 3 + c] = rgba[i * 4 + c] } }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    public static func cgImage(_ image: RGBImage) -> CGImage? {
        var rgba = [UInt8](repeating: 255, count: image.width * image.height * 4)
        for i in 0..<(image.width * image.height) { for c in 0..<3 { rgba[i * 4 + c] = image.pixels[i * 3 + c] } }
        guard let provider = CGDataProvider(data: Data(rgba) as CFData) else { return nil }
        return CGImage(width: image.width, height: image.height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: image.width * 4,
                       space: CGColorSpace(name: CGColorSpace.sRGB)!, bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.noneSkipLast.rawValue),
                       provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
    }

    /// The model-size crop with the heatmap blended over it: warm colours where the model looked.
    public static func heatmapOverlay(crop: RGBImage, heatmap: Heatmap, strength: Float = 0.5) -> CGImage? {
        var out = crop
        for y in 0..<crop.height {
            for x in 0..<crop.width {
                let h = min(max(heatmap.at((Double(x) + 0.5) / Double(crop.width), (Double(y) + 0.5) / Double(crop.height)), 0), 1)
                let a = strength * h
                let heat: [Float] = [255, 255 * h, 0] // red (low) to yellow (high)
                for c in 0..<3 {
                    out.pixels[(y * crop.width + x) * 3 + c] = UInt8(min(max(Float(crop[x, y, c]) * (1 - a) + heat[c] * a, 0), 255))
                }
            }
        }
        return cgImage(out)
    }
}
