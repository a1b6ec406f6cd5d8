package org.mobiledr.harness.preprocess

/**
 * An 8-bit RGB image, row-major, 3 bytes per pixel (R, G, B): what `mobiledr.data.geometry` calls
 * `rgb` (a `(height, width, 3)` uint8 array). Platform code (Android `Bitmap`, iOS `CGImage`, JVM
 * `BufferedImage`) converts to it; everything in this package is plain Kotlin.
 */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray = ByteArray(width * height * 3)) {
    init {
        require(width > 0 && height > 0) { "empty image ${width}x$height" }
        require(pixels.size == width * height * 3) { "${pixels.size} bytes for a ${width}x$height RGB image" }
    }

    /** Channel [c] (0 = R, 1 = G, 2 = B) of pixel ([x], [y]), 0-255. */
    operator fun get(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

    /** The model input: NCHW float32 RGB 0-255, `(1, 3, height, width)` flattened. */
    fun toChwFloats(): FloatArray {
        val plane = width * height
        val out = FloatArray(3 * plane)
        for (i in 0 until plane) {
            for (c in 0 until 3) out[c * plane + i] = (pixels[i * 3 + c].toInt() and 0xFF).toFloat()
        }
        return out
    }

    /** Largest |difference| over every pixel and channel; 255 if the sizes differ. */
    fun maxAbsDifference(other: RgbImage): Int {
        if (width != other.width || height != other.height) return 255
        var worst = 0
        for (i in pixels.indices) {
            val d = kotlin.math.abs((pixels[i].toInt() and 0xFF) - (other.pixels[i].toInt() and 0xFF))
            if (d > worst) worst = d
        }
        return worst
    }

    companion object {
        /** From packed `0xAARRGGBB` pixels (Android `Bitmap.getPixels`), composited on black like
         * `geometry._to_rgb8`: transparent parts of a fundus photograph are background. */
        fun fromArgb(width: Int, height: Int, argb: IntArray): RgbImage {
            require(argb.size == width * height) { "${argb.size} pixels for ${width}x$height" }
            val out = ByteArray(width * height * 3)
            for (i in argb.indices) {
                val p = argb[i]
                val a = p ushr 24
                for (c in 0 until 3) {
                    val v = (p shr (16 - 8 * c)) and 0xFF
                    out[i * 3 + c] = (if (a == 255) v else (v * a + 127) / 255).toByte()
                }
            }
            return RgbImage(width, height, out)
        }
    }
}
