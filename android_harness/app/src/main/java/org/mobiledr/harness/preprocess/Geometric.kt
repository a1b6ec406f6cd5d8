package org.mobiledr.harness.preprocess

import kotlin.math.abs
import kotlin.math.floor
import kotlin.math.hypot
import kotlin.math.max
import kotlin.math.min
import kotlin.math.sqrt

/** The photograph cannot be graded; the message is the reason (as `geometry.ImageRejected`). */
class ImageRejected(reason: String) : Exception(reason)

/** The fundus disc in original pixels. */
data class Circle(val cx: Double, val cy: Double, val r: Double)

/** The bundle's `preprocessing.geometric` block: what the app must do before calling the model. */
data class GeometricSpec(val size: Int, val mode: String = "fundus", val cropTolerance: Int = 7) {
    init {
        require(mode == "fundus" || mode == "oct") { "geometric mode must be fundus or oct, not $mode" }
    }
}

/** The model-size RGB image and where it came from: `box` = (x0, y0, x1, y1) of the visible disc. */
class GeometricResult(val image: RgbImage, val box: IntArray, val circle: Circle?, val originalWidth: Int, val originalHeight: Int)

/**
 * The geometric stage of `mobiledr.data.geometry`, ported line by line: find the fundus disc
 * (threshold, largest component, robust circle fit that ignores the frame's edges), crop the square of
 * side 2r around it (black outside the frame), bicubic resize. OCT scans are only resized.
 */
object Geometric {
    private const val ANALYSIS_SIDE = 512 // the disc is located on a copy downscaled to at most this side

    fun apply(rgb: RgbImage, spec: GeometricSpec, size: Int = spec.size): GeometricResult {
        if (spec.mode == "oct") {
            return GeometricResult(Resize.cubic(rgb, size, size), intArrayOf(0, 0, rgb.width, rgb.height), null, rgb.width, rgb.height)
        }
        val circle = findDisc(rgb, spec.cropTolerance)
        val box = intArrayOf(
            max(0, pyRound(circle.cx - circle.r)),
            max(0, pyRound(circle.cy - circle.r)),
            min(rgb.width, pyRound(circle.cx + circle.r)),
            min(rgb.height, pyRound(circle.cy + circle.r)),
        )
        return GeometricResult(Resize.cubic(cropToCircle(rgb, circle), size, size), box, circle, rgb.width, rgb.height)
    }

    /** `geometry.find_disc`. */
    fun findDisc(rgb: RgbImage, tolerance: Int = 7): Circle {
        val scale = min(1.0, ANALYSIS_SIDE.toDouble() / max(rgb.height, rgb.width))
        val small = Resize.area(rgb, max(1, pyRound(rgb.width * scale)), max(1, pyRound(rgb.height * scale)))
        val grey = Mask.median5(Mask.grey(small))
        if (grey.data.max() <= tolerance) throw ImageRejected("no fundus disc found (image is black)")
        // Dim exposures: never let the threshold exceed a quarter of the disc's own brightness.
        val threshold = min(tolerance, max(1, (0.25 * percentile90OfPositive(grey.data)).toInt()))
        val mask = Mask.open(Plane(grey.width, grey.height, IntArray(grey.data.size) { if (grey.data[it] > threshold) 1 else 0 }), 5)
        val (labels, areas) = Mask.components(mask)
        if (areas.size < 2) throw ImageRejected("no fundus disc found (nothing above the black level)")
        var largest = 1
        for (label in 2 until areas.size) if (areas[label] > areas[largest]) largest = label
        if (areas[largest] < 0.02 * mask.data.size) throw ImageRejected("no fundus disc found (bright region too small)")
        val blob = Mask.close(Plane(mask.width, mask.height, IntArray(mask.data.size) { if (labels.data[it] == largest) 1 else 0 }), 9)
        val outline = Mask.outerContours(blob).fold(emptyList<IntArray>()) { best, c -> if (c.size > best.size) c else best }
        val w = blob.width
        val h = blob.height
        val inside = outline.filter { (x, y) -> x > 1 && x < w - 2 && y > 1 && y < h - 2 }
        if (inside.size < 20) { // the disc fills the whole frame: fall back to the frame itself
            return Circle(rgb.width / 2.0, rgb.height / 2.0, max(rgb.width, rgb.height) / 2.0)
        }
        val (cx, cy, r) = robustCircle(inside.map { it[0].toDouble() }.toDoubleArray(), inside.map { it[1].toDouble() }.toDoubleArray())
        return Circle(cx / scale, cy / scale, r / scale)
    }

    /** `geometry.crop_to_circle`: the square of side 2r centred on the disc, black where it leaves the frame. */
    fun cropToCircle(rgb: RgbImage, circle: Circle): RgbImage {
        val side = max(2, pyRound(2 * circle.r))
        val x0 = pyRound(circle.cx - side / 2.0)
        val y0 = pyRound(circle.cy - side / 2.0)
        val out = RgbImage(side, side)
        val sx0 = max(0, x0)
        val sy0 = max(0, y0)
        val sx1 = min(rgb.width, x0 + side)
        val sy1 = min(rgb.height, y0 + side)
        if (sx1 > sx0 && sy1 > sy0) {
            for (y in sy0 until sy1) {
                System.arraycopy(rgb.pixels, (y * rgb.width + sx0) * 3, out.pixels, ((y - y0) * side + (sx0 - x0)) * 3, (sx1 - sx0) * 3)
            }
        }
        return out
    }

    /** Algebraic (Kasa) least-squares circle, refitted on the points nearest the circle each round. */
    private fun robustCircle(xs: DoubleArray, ys: DoubleArray, rounds: Int = 4): Triple<Double, Double, Double> {
        var keep = BooleanArray(xs.size) { true }
        var cx = 0.0
        var cy = 0.0
        var r = 0.0
        repeat(rounds) {
            val (a, b, c) = kasa(xs, ys, keep)
            cx = a / 2
            cy = b / 2
            r = sqrt(max(c + cx * cx + cy * cy, 1e-9))
            val residual = DoubleArray(xs.size) { abs(hypot(xs[it] - cx, ys[it] - cy) - r) }
            val cutoff = max(1.5, 2.5 * median(residual.filterIndexed { i, _ -> keep[i] }) * 1.4826)
            keep = BooleanArray(xs.size) { residual[it] <= cutoff }
            if (keep.count { it } < 10) return Triple(cx, cy, r)
        }
        return Triple(cx, cy, r)
    }

    /** Least squares of `[x y 1] s = x^2 + y^2` over the kept points (normal equations on centred
     * coordinates, which leave the fitted circle unchanged and keep them well conditioned). */
    private fun kasa(xs: DoubleArray, ys: DoubleArray, keep: BooleanArray): Triple<Double, Double, Double> {
        val n = keep.count { it }.toDouble()
        var mx = 0.0
        var my = 0.0
        for (i in xs.indices) if (keep[i]) { mx += xs[i]; my += ys[i] }
        mx /= n
        my /= n
        val m = Array(3) { DoubleArray(4) }
        for (i in xs.indices) {
            if (!keep[i]) continue
            val row = doubleArrayOf(xs[i] - mx, ys[i] - my, 1.0)
            val target = row[0] * row[0] + row[1] * row[1]
            for (p in 0 until 3) {
                for (q in 0 until 3) m[p][q] += row[p] * row[q]
                m[p][3] += row[p] * target
            }
        }
        val (u, v, w) = solve3(m)
        // Back to original coordinates: centre (mx + u/2, my + v/2), same radius.
        val ccx = mx + u / 2
        val ccy = my + v / 2
        val rr = w + (u / 2) * (u / 2) + (v / 2) * (v / 2)
        return Triple(2 * ccx, 2 * ccy, rr - ccx * ccx - ccy * ccy)
    }

    /** Gaussian elimination with partial pivoting on a 3x4 augmented matrix. */
    private fun solve3(m: Array<DoubleArray>): DoubleArray {
        for (col in 0 until 3) {
            val pivot = (col until 3).maxBy { abs(m[it][col]) }
            val tmp = m[col]; m[col] = m[pivot]; m[pivot] = tmp
            if (m[col][col] == 0.0) throw ImageRejected("no fundus disc found (degenerate outline)")
            for (row in col + 1 until 3) {
                val f = m[row][col] / m[col][col]
                for (k in col until 4) m[row][k] -= f * m[col][k]
            }
        }
        val s = DoubleArray(3)
        for (row in 2 downTo 0) {
            var acc = m[row][3]
            for (k in row + 1 until 3) acc -= m[row][k] * s[k]
            s[row] = acc / m[row][row]
        }
        return s
    }

    /** `np.median`: the middle value, or the mean of the two middle values. */
    private fun median(values: List<Double>): Double {
        val sorted = values.sorted()
        val mid = sorted.size / 2
        return if (sorted.size % 2 == 1) sorted[mid] else (sorted[mid - 1] + sorted[mid]) / 2
    }

    /** `np.percentile(grey[grey > 0], 90)` (linear interpolation, numpy's formulas) on 0-255 values. */
    private fun percentile90OfPositive(values: IntArray): Double {
        val histogram = IntArray(256)
        for (v in values) if (v > 0) histogram[v]++
        val n = histogram.sum()
        val q = 90.0 / 100
        val virtual = n * q + (1.0 + q * (1 - 1 - 1)) - 1 // numpy's _compute_virtual_index, alpha = beta = 1
        val lo = floor(virtual).toInt().coerceIn(0, n - 1)
        val hi = (lo + 1).coerceIn(0, n - 1)
        val t = virtual - floor(virtual)
        val a = rank(histogram, lo).toDouble()
        val b = rank(histogram, hi).toDouble()
        val diff = b - a
        return if (t >= 0.5) b - diff * (1 - t) else a + diff * t
    }

    /** The value at 0-based position [k] of the sorted values a histogram counts. */
    private fun rank(histogram: IntArray, k: Int): Int {
        var seen = 0
        for (v in histogram.indices) {
            seen += histogram[v]
            if (seen > k) return v
        }
        return histogram.lastIndex
    }

    /** Python's `round()`: half to even. */
    private fun pyRound(v: Double): Int = Math.rint(v).toInt()
}
