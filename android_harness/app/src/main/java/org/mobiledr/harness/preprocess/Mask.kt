package org.mobiledr.harness.preprocess

/**
 * The 8-bit image operations `geometry.find_disc` calls, as OpenCV computes them: grey conversion,
 * 5x5 median, rectangular morphology, connected components and outer-border following. A [Plane] is a
 * one-channel `(height, width)` uint8 array.
 */
class Plane(val width: Int, val height: Int, val data: IntArray = IntArray(width * height)) {
    operator fun get(x: Int, y: Int): Int = data[y * width + x]

    operator fun set(x: Int, y: Int, v: Int) {
        data[y * width + x] = v
    }
}

object Mask {
    /** `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)`: fixed-point BT.601 weights, Q14, rounded. */
    fun grey(rgb: RgbImage): Plane {
        val out = Plane(rgb.width, rgb.height)
        for (y in 0 until rgb.height) {
            for (x in 0 until rgb.width) {
                out[x, y] = (rgb[x, y, 0] * 4899 + rgb[x, y, 1] * 9617 + rgb[x, y, 2] * 1868 + (1 shl 13)) shr 14
            }
        }
        return out
    }

    /** `cv2.medianBlur(grey, 5)`: the median of each 5x5 window, edges replicated. */
    fun median5(src: Plane): Plane {
        val out = Plane(src.width, src.height)
        val window = IntArray(25)
        for (y in 0 until src.height) {
            for (x in 0 until src.width) {
                var n = 0
                for (dy in -2..2) {
                    val yy = (y + dy).coerceIn(0, src.height - 1)
                    for (dx in -2..2) window[n++] = src[(x + dx).coerceIn(0, src.width - 1), yy]
                }
                window.sort()
                out[x, y] = window[12]
            }
        }
        return out
    }

    /** `cv2.erode` (min) or `cv2.dilate` (max) with a `k` x `k` rectangle anchored at its centre;
     * pixels outside the image never win (OpenCV's default border value). Separable: rows, then columns. */
    fun morph(src: Plane, k: Int, dilate: Boolean): Plane {
        val r = k / 2
        val pick: (Int, Int) -> Int = if (dilate) ::maxOf else ::minOf
        val rows = Plane(src.width, src.height)
        for (y in 0 until src.height) {
            for (x in 0 until src.width) {
                var v = src[x, y]
                for (xx in maxOf(0, x - r)..minOf(src.width - 1, x + k - 1 - r)) v = pick(v, src[xx, y])
                rows[x, y] = v
            }
        }
        val out = Plane(src.width, src.height)
        for (y in 0 until src.height) {
            for (x in 0 until src.width) {
                var v = rows[x, y]
                for (yy in maxOf(0, y - r)..minOf(src.height - 1, y + k - 1 - r)) v = pick(v, rows[x, yy])
                out[x, y] = v
            }
        }
        return out
    }

    /** `cv2.MORPH_OPEN` (erode, dilate) with a `k` x `k` rectangle. */
    fun open(src: Plane, k: Int): Plane = morph(morph(src, k, dilate = false), k, dilate = true)

    /** `cv2.MORPH_CLOSE` (dilate, erode) with a `k` x `k` rectangle. */
    fun close(src: Plane, k: Int): Plane = morph(morph(src, k, dilate = true), k, dilate = false)

    /** 8-connected components of the non-zero pixels, labelled 1, 2, ... in raster order of their
     * first pixel; returns the labels and each label's area (index 0 is the background). */
    fun components(mask: Plane): Pair<Plane, IntArray> {
        val labels = Plane(mask.width, mask.height)
        val areas = ArrayList<Int>().apply { add(0) }
        val stack = IntArray(mask.width * mask.height)
        for (start in mask.data.indices) {
            if (mask.data[start] == 0 || labels.data[start] != 0) continue
            val label = areas.size
            var area = 0
            var top = 0
            stack[top++] = start
            labels.data[start] = label
            while (top > 0) {
                val p = stack[--top]
                area++
                val px = p % mask.width
                val py = p / mask.width
                for (dy in -1..1) for (dx in -1..1) {
                    val x = px + dx
                    val y = py + dy
                    if (x < 0 || y < 0 || x >= mask.width || y >= mask.height) continue
                    val q = y * mask.width + x
                    if (mask.data[q] != 0 && labels.data[q] == 0) {
                        labels.data[q] = label
                        stack[top++] = q
                    }
                }
            }
            areas.add(area)
        }
        return labels to areas.toIntArray()
    }

    /**
     * `cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)`: the outer border of every
     * 8-connected component, each pixel as visited by Suzuki-Abe border following (OpenCV's
     * `icvFetchContour`), starting at the component's first pixel in raster order. Like OpenCV, the
     * image's outermost rows and columns count as background.
     */
    fun outerContours(mask: Plane): List<List<IntArray>> {
        val w = mask.width
        val h = mask.height
        val img = Plane(w, h)
        for (y in 1 until h - 1) for (x in 1 until w - 1) img[x, y] = if (mask[x, y] != 0) 1 else 0
        val (labels, areas) = components(img)
        val seen = BooleanArray(areas.size)
        val contours = ArrayList<List<IntArray>>()
        for (p in labels.data.indices) {
            val label = labels.data[p]
            if (label == 0 || seen[label]) continue
            seen[label] = true
            contours.add(follow(img, p % w, p / w))
        }
        return contours
    }

    private val DX = intArrayOf(1, 1, 0, -1, -1, -1, 0, 1) // OpenCV's chain-code directions
    private val DY = intArrayOf(0, -1, -1, -1, 0, 1, 1, 1)

    private fun follow(img: Plane, x0: Int, y0: Int): List<IntArray> {
        fun on(x: Int, y: Int, s: Int): Boolean {
            val xx = x + DX[s and 7]
            val yy = y + DY[s and 7]
            return xx in 0 until img.width && yy in 0 until img.height && img[xx, yy] != 0
        }
        val points = ArrayList<IntArray>()
        var s = 4
        do {
            s = (s - 1) and 7
        } while (!on(x0, y0, s) && s != 4)
        if (s == 4) return listOf(intArrayOf(x0, y0)) // a single pixel: no neighbour
        val x1 = x0 + DX[s]
        val y1 = y0 + DY[s]
        var x3 = x0
        var y3 = y0
        while (true) {
            while (s < 15) {
                s++
                if (on(x3, y3, s)) break
            }
            s = s and 7
            points.add(intArrayOf(x3, y3))
            val x4 = x3 + DX[s]
            val y4 = y3 + DY[s]
            if (x4 == x0 && y4 == y0 && x3 == x1 && y3 == y1) break
            x3 = x4
            y3 = y4
            s = (s + 4) and 7
        }
        return points
    }
}
