import Foundation

/// The photograph cannot be graded; the message is the reason (as `geometry.ImageRejected`).
public struct ImageRejected: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// The fundus disc in original pixels.
public struct Circle: Equatable, Sendable {
    public let cx: Double
    public let cy: Double
    public let r: Double
}

/// The bundle's `preprocessing.geometric` block: what the app must do before calling the model.
public struct GeometricSpec: Equatable {
    public let size: Int
    public let mode: String // fundus | oct
    public let cropTolerance: Int

    public init(size: Int, mode: String = "fundus", cropTolerance: Int = 7) {
        self.size = size
        self.mode = mode
        self.cropTolerance = cropTolerance
    }
}

/// The model-size RGB image and where it came from: `box` = (x0, y0, x1, y1) of the visible disc.
public struct GeometricResult: Sendable {
    public let image: RGBImage
    public let box: [Int]
    public let circle: Circle?
    public let originalWidth: Int
    public let originalHeight: Int
}

/// The geometric stage of `mobiledr.data.geometry`, ported line by line (as `Geometric.kt`): find the
/// fundus disc, crop the square of side 2r around it (black outside the frame), bicubic resize. OCT
/// scans are only resized.
public enum Geometric {
    static let analysisSide = 512 // the disc is located on a copy downscaled to at most this side

    public static func apply(_ rgb: RGBImage, spec: GeometricSpec, size: Int? = nil) throws -> GeometricResult {
        let side = size ?? spec.size
        if spec.mode == "oct" {
            return GeometricResult(image: Resize.cubic(rgb, width: side, height: side), box: [0, 0, rgb.width, rgb.height], circle: nil,
                                   originalWidth: rgb.width, originalHeight: rgb.height)
        }
        let circle = try findDisc(rgb, tolerance: spec.cropTolerance)
        let box = [
            max(0, pyRound(circle.cx - circle.r)), max(0, pyRound(circle.cy - circle.r)),
            min(rgb.width, pyRound(circle.cx + circle.r)), min(rgb.height, pyRound(circle.cy + circle.r)),
        ]
        return GeometricResult(image: Resize.cubic(cropToCircle(rgb, circle), width: side, height: side), box: box, circle: circle,
                               originalWidth: rgb.width, originalHeight: rgb.height)
    }

    /// `geometry.find_disc`.
    public static func findDisc(_ rgb: RGBImage, tolerance: Int = 7) throws -> Circle {
        let scale = min(1.0, Double(analysisSide) / Double(max(rgb.height, rgb.width)))
        let small = Resize.area(rgb, width: max(1, pyRound(Double(rgb.width) * scale)), height: max(1, pyRound(Double(rgb.height) * scale)))
        let grey = Mask.median5(Mask.grey(small))
        if (grey.data.max() ?? 0) <= tolerance { throw ImageRejected(reason: "no fundus disc found (image is black)") }
        // Dim exposures: never let the threshold exceed a quarter of the disc's own brightness.
        let threshold = min(tolerance, max(1, Int(0.25 * percentile90OfPositive(grey.data))))
        let mask = Mask.open(Plane(width: grey.width, height: grey.height, data: grey.data.map { $0 > threshold ? 1 : 0 }), k: 5)
        let (labels, areas) = Mask.components(mask)
        if areas.count < 2 { throw ImageRejected(reason: "no fundus disc found (nothing above the black level)") }
        var largest = 1
        for label in stride(from: 2, to: areas.count, by: 1) where areas[label] > areas[largest] { largest = label }
        if Double(areas[largest]) < 0.02 * Double(mask.data.count) { throw ImageRejected(reason: "no fundus disc found (bright region too small)") }
        let blob = Mask.close(Plane(width: mask.width, height: mask.height, data: labels.data.map { $0 == largest ? 1 : 0 }), k: 9)
        var outline: [(x: Int, y: Int)] = []
        for contour in Mask.outerContours(blob) where contour.count > outline.count { outline = contour }
        let w = blob.width, h = blob.height
        let inside = outline.filter { $0.x > 1 && $0.x < w - 2 && $0.y > 1 && $0.y < h - 2 }
        if inside.count < 20 { // the disc fills the whole frame: fall back to the frame itself
            return Circle(cx: Double(rgb.width) / 2, cy: Double(rgb.height) / 2, r: Double(max(rgb.width, rgb.height)) / 2)
        }
        let fit = try robustCircle(xs: inside.map { Double($0.x) }, ys: inside.map { Double($0.y) })
        return Circle(cx: fit.cx / scale, cy: fit.cy / scale, r: fit.r / scale)
    }

    /// `geometry.crop_to_circle`: the square of side 2r centred on the disc, black where it leaves the frame.
    public static func cropToCircle(_ rgb: RGBImage, _ circle: Circle) -> RGBImage {
        let side = max(2, pyRound(2 * circle.r))
        let x0 = pyRound(circle.cx - Double(side) / 2), y0 = pyRound(circle.cy - Double(side) / 2)
        var out = RGBImage(width: side, height: side)
        let sx0 = max(0, x0), sy0 = max(0, y0)
        let sx1 = min(rgb.width, x0 + side), sy1 = min(rgb.height, y0 + side)
        if sx1 > sx0 && sy1 > sy0 {
            for y in sy0..<sy1 {
                let from = (y * rgb.width + sx0) * 3, to = ((y - y0) * side + (sx0 - x0)) * 3, count = (sx1 - sx0) * 3
                out.pixels.replaceSubrange(to..<(to + count), with: rgb.pixels[from..<(from + count)])
            }
        }
        return out
    }

    /// Algebraic (Kasa) least-squares circle, refitted on the points nearest the circle each round.
    private static func robustCircle(xs: [Double], ys: [Double], rounds: Int = 4) throws -> Circle {
        var keep = [Bool](repeating: true, count: xs.count)
        var cx = 0.0, cy = 0.0, r = 0.0
        for _ in 0..<rounds {
            let s = try kasa(xs: xs, ys: ys, keep: keep)
            cx = s[0] / 2
            cy = s[1] / 2
            r = max(s[2] + cx * cx + cy * cy, 1e-9).squareRoot()
            let residual = xs.indices.map { abs(hypot(xs[$0] - cx, ys[$0] - cy) - r) }
            let cutoff = max(1.5, 2.5 * median(xs.indices.filter { keep[$0] }.map { residual[$0] }) * 1.4826)
            keep = residual.map { $0 <= cutoff }
            if keep.filter({ $0 }).count < 10 { break }
        }
        return Circle(cx: cx, cy: cy, r: r)
    }

    /// Least squares of `[x y 1] s = x^2 + y^2` over the kept points (normal equations on centred
    /// coordinates, which leave the fitted circle unchanged); returns s in original coordinates.
    private static func kasa(xs: [Double], ys: [Double], keep: [Bool]) throws -> [Double] {
        let kept = xs.indices.filter { keep[$0] }
        let n = Double(kept.count)
        let mx = kept.reduce(0.0) { $0 + xs[$1] } / n, my = kept.reduce(0.0) { $0 + ys[$1] } / n
        var m = [[Double]](repeating: [0, 0, 0, 0], count: 3)
        for i in kept {
            let row = [xs[i] - mx, ys[i] - my, 1.0]
            let target = row[0] * row[0] + row[1] * row[1]
            for p in 0..<3 {
                for q in 0..<3 { m[p][q] += row[p] * row[q] }
                m[p][3] += row[p] * target
            }
        }
        let u = try solve3(m)
        let ccx = mx + u[0] / 2, ccy = my + u[1] / 2
        let rr = u[2] + (u[0] / 2) * (u[0] / 2) + (u[1] / 2) * (u[1] / 2)
        return [2 * ccx, 2 * ccy, rr - ccx * ccx - ccy * ccy]
    }

    /// Gaussian elimination with partial pivoting on a 3x4 augmented matrix.
    private static func solve3(_ input: [[Double]]) throws -> [Double] {
        var m = input
        for col in 0..<3 {
            let pivot = (col..<3).max { abs(m[$0][col]) < abs(m[$1][col]) }!
            m.swapAt(col, pivot)
            if m[col][col] == 0 { throw ImageRejected(reason: "no fundus disc found (degenerate outline)") }
            for row in (col + 1)..<3 {
                let f = m[row][col] / m[col][col]
                for k in col..<4 { m[row][k] -= f * m[col][k] }
            }
        }
        var s = [0.0, 0.0, 0.0]
        for row in stride(from: 2, through: 0, by: -1) {
            var acc = m[row][3]
            for k in (row + 1)..<3 { acc -= m[row][k] * s[k] }
            s[row] = acc / m[row][row]
        }
        return s
    }

    /// `np.median`: the middle value, or the mean of the two middle values.
    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// `np.percentile(grey[grey > 0], 90)` (linear interpolation, numpy's formulas) on 0-255 values.
    private static func percentile90OfPositive(_ values: [Int]) -> Double {
        var histogram = [Int](repeating: 0, count: 256)
        for v in values where v > 0 { histogram[v] += 1 }
        let n = histogram.reduce(0, +)
        let q = 90.0 / 100
        let virtual = Double(n) * q + (1.0 + q * (1 - 1 - 1)) - 1 // numpy's _compute_virtual_index, alpha = beta = 1
        let lo = min(max(Int(virtual.rounded(.down)), 0), n - 1)
        let hi = min(max(lo + 1, 0), n - 1)
        let t = virtual - virtual.rounded(.down)
        let a = Double(rank(histogram, lo)), b = Double(rank(histogram, hi))
        let diff = b - a
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t
    }

    /// The value at 0-based position `k` of the sorted values a histogram counts.
    private static func rank(_ histogram: [Int], _ k: Int) -> Int {
        var seen = 0
        for (v, count) in histogram.enumerated() {
            seen += count
            if seen > k { return v }
        }
        return histogram.count - 1
    }

    /// Python's `round()`: half to even.
    private static func pyRound(_ v: Double) -> Int { Int(v.rounded(.toNearestOrEven)) }
}
