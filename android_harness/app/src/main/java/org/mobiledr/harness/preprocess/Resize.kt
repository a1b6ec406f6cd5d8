package org.mobiledr.harness.preprocess

import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.min

/**
 * OpenCV's `cv2.resize` for 8-bit RGB images, ported operation by operation so a phone produces the
 * pixels `mobiledr.data.geometry` produces (opencv-python 5.0, the version in the bundle's
 * `libraries`): `INTER_CUBIC` (float coefficients, separable, replicated border, rounded to even) and
 * `INTER_AREA` (fractional pixel areas, float accumulation).
 */
object Resize {
    /** `cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)`. */
    fun cubic(src: RgbImage, width: Int, height: Int): RgbImage {
        if (width == src.width && height == src.height) return RgbImage(width, height, src.pixels.copyOf())
        val xs = cubicTaps(src.width, width)
        val ys = cubicTaps(src.height, height)
        val rowLen = width * 3
        // Horizontal pass, computed once per source row when first needed and dropped when passed.
        val rows = arrayOfNulls<DoubleArray>(src.height)
        fun row(sy: Int): DoubleArray = rows[sy] ?: DoubleArray(rowLen).also { out ->
            for (dx in 0 until width) {
                for (c in 0 until 3) {
                    var v = 0.0
                    for (k in 0 until 4) v += src[clamp(xs.start[dx] - 1 + k, src.width), sy, c].toDouble() * xs.coef[dx * 4 + k]
                    out[dx * 3 + c] = v
                }
            }
            rows[sy] = out
        }
        val out = ByteArray(width * height * 3)
        var dropped = 0
        for (dy in 0 until height) {
            val r = Array(4) { k -> row(clamp(ys.start[dy] - 1 + k, src.height)) }
            for (i in 0 until rowLen) {
                var v = 0.0
                for (k in 0 until 4) v += r[k][i] * ys.coef[dy * 4 + k]
                out[dy * rowLen + i] = saturate(Math.rint(v).toInt()).toByte()
            }
            while (dropped < ys.start[dy] - 1) rows[dropped++] = null
        }
        return RgbImage(width, height, out)
    }

    /** `cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)` when shrinking. */
    fun area(src: RgbImage, width: Int, height: Int): RgbImage {
        if (width == src.width && height == src.height) return RgbImage(width, height, src.pixels.copyOf())
        require(width <= src.width && height <= src.height) { "INTER_AREA here only shrinks" }
        val xtab = areaTab(src.width, width, 1.0 / (width.toDouble() / src.width))
        val ytab = areaTab(src.height, height, 1.0 / (height.toDouble() / src.height))
        val rowLen = width * 3
        val out = ByteArray(width * height * 3)
        val buf = FloatArray(rowLen)
        val sum = FloatArray(rowLen)
        var prevDy = ytab.di[0]
        for (j in 0 until ytab.size) {
            val beta = ytab.alpha[j]
            val dy = ytab.di[j]
            val sy = ytab.si[j]
            buf.fill(0f)
            for (k in 0 until xtab.size) {
                val dx = xtab.di[k]
                val sx = xtab.si[k]
                val alpha = xtab.alpha[k]
                for (c in 0 until 3) buf[dx * 3 + c] = buf[dx * 3 + c] + src[sx, sy, c] * alpha
            }
            if (dy != prevDy) {
                for (i in 0 until rowLen) {
                    out[prevDy * rowLen + i] = roundSaturate(sum[i])
                    sum[i] = beta * buf[i]
                }
                prevDy = dy
            } else {
                for (i in 0 until rowLen) sum[i] += beta * buf[i]
            }
        }
        for (i in 0 until rowLen) out[prevDy * rowLen + i] = roundSaturate(sum[i])
        return RgbImage(width, height, out)
    }

    private class Taps(val start: IntArray, val coef: FloatArray)

    /** Source positions and cubic weights (A = -0.75) for every destination column or row. */
    private fun cubicTaps(srcSize: Int, dstSize: Int): Taps {
        val scale = 1.0 / (dstSize.toDouble() / srcSize)
        val start = IntArray(dstSize)
        val coef = FloatArray(dstSize * 4)
        val w = FloatArray(4)
        for (d in 0 until dstSize) {
            var f = ((d + 0.5) * scale - 0.5).toFloat()
            val s = floor(f).toInt()
            f -= s
            start[d] = s
            cubicWeights(f, w)
            w.copyInto(coef, d * 4)
        }
        return Taps(start, coef)
    }

    /** OpenCV's `interpolateCubic`, in float as there. */
    private fun cubicWeights(x: Float, out: FloatArray) {
        val a = -0.75f
        out[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        out[1] = ((a + 2) * x - (a + 3)) * x * x + 1
        out[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        out[3] = 1f - out[0] - out[1] - out[2]
    }

    private class AreaTab(val di: IntArray, val si: IntArray, val alpha: FloatArray, val size: Int)

    /** OpenCV's `computeResizeAreaTab`: which source pixels cover each destination pixel, and how much. */
    private fun areaTab(srcSize: Int, dstSize: Int, scale: Double): AreaTab {
        val di = IntArray(srcSize * 2)
        val si = IntArray(srcSize * 2)
        val alpha = FloatArray(srcSize * 2)
        var k = 0
        for (dx in 0 until dstSize) {
            val fsx1 = dx * scale
            val fsx2 = fsx1 + scale
            val cellWidth = min(scale, srcSize - fsx1)
            var sx1 = ceil(fsx1).toInt()
            val sx2 = min(floor(fsx2).toInt(), srcSize - 1)
            sx1 = min(sx1, sx2)
            if (sx1 - fsx1 > 1e-3) {
                di[k] = dx; si[k] = sx1 - 1; alpha[k++] = ((sx1 - fsx1) / cellWidth).toFloat()
            }
            for (sx in sx1 until sx2) {
                di[k] = dx; si[k] = sx; alpha[k++] = (1.0 / cellWidth).toFloat()
            }
            if (fsx2 - sx2 > 1e-3) {
                di[k] = dx; si[k] = sx2; alpha[k++] = (min(min(fsx2 - sx2, 1.0), cellWidth) / cellWidth).toFloat()
            }
        }
        return AreaTab(di, si, alpha, k)
    }

    private fun clamp(i: Int, size: Int): Int = if (i < 0) 0 else if (i >= size) size - 1 else i

    private fun saturate(v: Int): Int = if (v < 0) 0 else if (v > 255) 255 else v

    /** `saturate_cast<uchar>(float)`: round half to even, then clamp. */
    private fun roundSaturate(v: Float): Byte = saturate(Math.rint(v.toDouble()).toInt()).toByte()
}
