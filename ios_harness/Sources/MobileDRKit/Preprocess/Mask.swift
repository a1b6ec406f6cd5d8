import Foundation

/// A one-channel `(height, width)` uint8 image as Ints.
public struct Plane {
    public let width: Int
    public let height: Int
    public var data: [Int]

    public init(width: Int, height: Int, data: [Int]? = nil) {
        self.width = width
        self.height = height
        self.data = data ?? [Int](repeating: 0, count: width * height)
    }

    @inline(__always) public subscript(x: Int, y: Int) -> Int {
        get { data[y * width + x] }
        set { data[y * width + x] = newValue }
    }
}

/// The 8-bit image operations `geometry.find_disc` calls, as OpenCV computes them (the Android
/// harness's `Mask.kt`): grey conversion, 5x5 median, rectangular morphology, connected components and
/// outer-border following.
public enum Mask {
    /// `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)`: fixed-point BT.601 weights, Q14, rounded.
    public static func grey(_ rgb: RGBImage) -> Plane {
        var out = Plane(width: rgb.width, height: rgb.height)
        for y in 0..<rgb.height {
            for x in 0..<rgb.width {
                out[x, y] = (rgb[x, y, 0] * 4899 + rgb[x, y, 1] * 9617 + rgb[x, y, 2] * 1868 + (1 << 13)) >> 14
            }
        }
        return out
    }

    /// `cv2.medianBlur(grey, 5)`: the median of each 5x5 window, edges replicated.
    public static func median5(_ src: Plane) -> Plane {
        var out = Plane(width: src.width, height: src.height)
        var window = [Int](repeating: 0, count: 25)
        for y in 0..<src.height {
            for x in 0..<src.width {
                var n = 0
                for dy in -2...2 {
                    let yy = min(max(y + dy, 0), src.height - 1)
                    for dx in -2...2 { window[n] = src[min(max(x + dx, 0), src.width - 1), yy]; n += 1 }
                }
                window.sort()
                out[x, y] = window[12]
            }
        }
        return out
    }

    /// `cv2.erode` (min) or `cv2.dilate` (max) with a `k` x `k` rectangle anchored at its centre;
    /// pixels outside the image never win. Separable: rows, then columns.
    public static func morph(_ src: Plane, k: Int, dilate: Bool) -> Plane {
        let r = k / 2
        let pick: (Int, Int) -> Int = dilate ? { max($0, $1) } : { min($0, $1) }
        var rows = Plane(width: src.width, height: src.height)
        for y in 0..<src.height {
            for x in 0..<src.width {
                var v = src[x, y]
                for xx in max(0, x - r)...min(src.width - 1, x + k - 1 - r) { v = pick(v, src[xx, y]) }
                rows[x, y] = v
            }
        }
        var out = Plane(width: src.width, height: src.height)
        for y in 0..<src.height {
            for x in 0..<src.width {
                var v = rows[x, y]
                for yy in max(0, y - r)...min(src.height - 1, y + k - 1 - r) { v = pick(v, rows[x, yy]) }
                out[x, y] = v
            }
        }
        return out
    }

    /// `cv2.MORPH_OPEN` (erode, dilate) and `cv2.MORPH_CLOSE` (dilate, erode).
    public static func open(_ src: Plane, k: Int) -> Plane { morph(morph(src, k: k, dilate: false), k: k, dilate: true) }

    public static func close(_ src: Plane, k: Int) -> Plane { morph(morph(src, k: k, dilate: true), k: k, dilate: false) }

    /// 8-connected components of the non-zero pixels, labelled 1, 2, ... in raster order of their first
    /// pixel; returns the labels and each label's area (index 0 is the background).
    public static func components(_ mask: Plane) -> (labels: Plane, areas: [Int]) {
        var labels = Plane(width: mask.width, height: mask.height)
        var areas = [0]
        var stack: [Int] = []
        for start in mask.data.indices where mask.data[start] != 0 && labels.data[start] == 0 {
            let label = areas.count
            var area = 0
            stack.append(start)
            labels.data[start] = label
            while let p = stack.popLast() {
                area += 1
                let px = p % mask.width, py = p / mask.width
                for dy in -1...1 {
                    for dx in -1...1 {
                        let x = px + dx, y = py + dy
                        guard x >= 0, y >= 0, x < mask.width, y < mask.height else { continue }
                        let q = y * mask.width + x
                        if mask.data[q] != 0 && labels.data[q] == 0 {
                            labels.data[q] = label
                            stack.append(q)
                        }
                    }
                }
            }
            areas.append(area)
        }
        return (labels, areas)
    }

    /// `cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)`: the outer border of every
    /// 8-connected component, pixel by pixel as Suzuki-Abe border following visits them (OpenCV's
    /// `icvFetchContour`), from the component's first pixel in raster order. The image's outermost rows
    /// and columns count as background, as in OpenCV.
    public static func outerContours(_ mask: Plane) -> [[(x: Int, y: Int)]] {
        var img = Plane(width: mask.width, height: mask.height)
        if mask.width > 2 && mask.height > 2 {
            for y in 1..<(mask.height - 1) { for x in 1..<(mask.width - 1) { img[x, y] = mask[x, y] != 0 ? 1 : 0 } }
        }
        let (labels, areas) = components(img)
        var seen = [Bool](repeating: false, count: areas.count)
        var contours: [[(x: Int, y: Int)]] = []
        for p in labels.data.indices {
            let label = labels.data[p]
            if label == 0 || seen[label] { continue }
            seen[label] = true
            contours.append(follow(img, x0: p % img.width, y0: p / img.width))
        }
        return contours
    }

    private static let dxs = [1, 1, 0, -1, -1, -1, 0, 1] // OpenCV's chain-code directions
    private static let dys = [0, -1, -1, -1, 0, 1, 1, 1]

    private static func follow(_ img: Plane, x0: Int, y0: Int) -> [(x: Int, y: Int)] {
        func on(_ x: Int, _ y: Int, _ s: Int) -> Bool {
            let xx = x + dxs[s & 7], yy = y + dys[s & 7]
            return xx >= 0 && yy >= 0 && xx < img.width && yy < img.height && img[xx, yy] != 0
        }
        var s = 4
        repeat { s = (s - 1) & 7 } while !on(x0, y0, s) && s != 4
        if s == 4 { return [(x0, y0)] } // a single pixel: no neighbour
        let x1 = x0 + dxs[s], y1 = y0 + dys[s]
        var x3 = x0, y3 = y0
        var points: [(x: Int, y: Int)] = []
        while true {
            while s < 15 {
                s += 1
                if on(x3, y3, s) { break }
            }
            s &= 7
            points.append((x3, y3))
            let x4 = x3 + dxs[s], y4 = y3 + dys[s]
            if x4 == x0 && y4 == y0 && x3 == x1 && y3 == y1 { break }
            x3 = x4
            y3 = y4
            s = (s + 4) & 7
        }
        return points
    }
}
