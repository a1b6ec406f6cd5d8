import Foundation

/// OpenCV's `cv2.resize` for 8-bit RGB images, ported operation by operation (as the Android
/// harness's `Resize.kt`) so a phone produces the pixels `mobiledr.data.geometry` produces with
/// opencv-python 5.0: `INTER_CUBIC` (float coefficients, separable, replicated border, rounded to
/// even) and `INTER_AREA` (fractional pixel areas, float accumulation).
public enum Resize {
    /// `cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)`.
    public static func cubic(_ src: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == src.width && height == src.height { return src }
        let xs = cubicTaps(srcSize: src.width, dstSize: width)
        let ys = cubicTaps(srcSize: src.height, dstSize: height)
        let rowLength = width * 3
        var rows = [[Double]?](repeating: nil, count: src.height)
        func row(_ sy: Int) -> [Double] {
            if let cached = rows[sy] { return cached }
            var out = [Double](repeating: 0, count: rowLength)
            for dx in 0..<width {
                for c in 0..<3 {
                    var v = 0.0
                    for k in 0..<4 { v += Double(src[clamp(xs.start[dx] - 1 + k, src.width), sy, c]) * Double(xs.coef[dx * 4 + k]) }
                    out[dx * 3 + c] = v
                }
            }
            rows[sy] = out
            return out
        }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        var dropped = 0
        for dy in 0..<height {
            let r = (0..<4).map { row(clamp(ys.start[dy] - 1 + $0, src.height)) }
            for i in 0..<rowLength {
                var v = 0.0
                for k in 0..<4 { v += r[k][i] * Double(ys.coef[dy * 4 + k]) }
                out[dy * rowLength + i] = saturate(Int(v.rounded(.toNearestOrEven)))
            }
            while dropped < ys.start[dy] - 1 { rows[dropped] = nil; dropped += 1 }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// `cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)` when shrinking.
    public static func area(_ src: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == src.width && height == src.height { return src }
        precondition(width <= src.width && height <= src.height, "INTER_AREA here only shrinks")
        let xtab = areaTab(srcSize: src.width, dstSize: width, scale: 1.0 / (Double(width) / Double(src.width)))
        let ytab = areaTab(srcSize: src.height, dstSize: height, scale: 1.0 / (Double(height) / Double(src.height)))
        let rowLength = width * 3
        var out = [UInt8](repeating: 0, count: width * height * 3)
        var buf = [Float](repeating: 0, count: rowLength)
        var sum = [Float](repeating: 0, count: rowLength)
        var prevDy = ytab[0].di
        for entry in ytab {
            let beta = entry.alpha
            for i in 0..<rowLength { buf[i] = 0 }
            for x in xtab {
                for c in 0..<3 { buf[x.di * 3 + c] = buf[x.di * 3 + c] + Float(src[x.si, entry.si, c]) * x.alpha }
            }
            if entry.di != prevDy {
                for i in 0..<rowLength {
                    out[prevDy * rowLength + i] = saturate(Int(sum[i].rounded(.toNearestOrEven)))
                    sum[i] = beta * buf[i]
                }
                prevDy = entry.di
            } else {
                for i in 0..<rowLength { sum[i] += beta * buf[i] }
            }
        }
        for i in 0..<rowLength { out[prevDy * rowLength + i] = saturate(Int(sum[i].rounded(.toNearestOrEven))) }
        return RGBImage(width: width, height: height, pixels: out)
    }

    private struct Taps { var start: [Int]; var coef: [Float] }

    /// Source positions and cubic weights (A = -0.75) for every destination column or row.
    private static func cubicTaps(srcSize: Int, dstSize: Int) -> Taps {
        let scale = 1.0 / (Double(dstSize) / Double(srcSize))
        var taps = Taps(start: [Int](repeating: 0, count: dstSize), coef: [Float](repeating: 0, count: dstSize * 4))
        for d in 0..<dstSize {
            var f = Float((Double(d) + 0.5) * scale - 0.5)
            let s = Int(f.rounded(.down))
            f -= Float(s)
            taps.start[d] = s
            let w = cubicWeights(f)
            for k in 0..<4 { taps.coef[d * 4 + k] = w[k] }
        }
        return taps
    }

    /// OpenCV's `interpolateCubic`, in float as there.
    private static func cubicWeights(_ x: Float) -> [Float] {
        let a: Float = -0.75
        let w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        let w1 = ((a + 2) * x - (a + 3)) * x * x + 1
        let w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        return [w0, w1, w2, 1 - w0 - w1 - w2]
    }

    private struct AreaEntry { var di: Int; var si: Int; var alpha: Float }

    /// OpenCV's `computeResizeAreaTab`: which source pixels cover each destination pixel, and how much.
    private static func areaTab(srcSize: Int, dstSize: Int, scale: Double) -> [AreaEntry] {
        var tab: [AreaEntry] = []
        for dx in 0..<dstSize {
            let fsx1 = Double(dx) * scale
            let fsx2 = fsx1 + scale
            let cellWidth = min(scale, Double(srcSize) - fsx1)
            var sx1 = Int(fsx1.rounded(.up))
            let sx2 = min(Int(fsx2.rounded(.down)), srcSize - 1)
            sx1 = min(sx1, sx2)
            if Double(sx1) - fsx1 > 1e-3 {
                tab.append(AreaEntry(di: dx, si: sx1 - 1, alpha: Float((Double(sx1) - fsx1) / cellWidth)))
            }
            for sx in stride(from: sx1, to: sx2, by: 1) {
                tab.append(AreaEntry(di: dx, si: sx, alpha: Float(1.0 / cellWidth)))
            }
            if fsx2 - Double(sx2) > 1e-3 {
                tab.append(AreaEntry(di: dx, si: sx2, alpha: Float(min(min(fsx2 - Double(sx2), 1.0), cellWidth) / cellWidth)))
            }
        }
        return tab
    }

    @inline(__always) private static func clamp(_ i: Int, _ size: Int) -> Int { i < 0 ? 0 : (i >= size ? size - 1 : i) }

    @inline(__always) private static func saturate(_ v: Int) -> UInt8 { UInt8(v < 0 ? 0 : (v > 255 ? 255 : v)) }
}
