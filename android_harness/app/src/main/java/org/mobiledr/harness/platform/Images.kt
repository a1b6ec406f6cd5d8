package org.mobiledr.harness.platform

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import java.io.File
import java.io.IOException
import java.io.InputStream
import org.mobiledr.harness.model.Heatmap
import org.mobiledr.harness.preprocess.RgbImage

/** Android image decoding and display around [RgbImage]: what `geometry.decode` does with Pillow. */
object Images {
    /** A PNG or JPEG file, at full resolution, with its EXIF orientation applied. */
    fun decodeFile(file: File): RgbImage = decode({ file.inputStream() }, file.path)

    /** A content URI (photo picker, camera), at full resolution, with its EXIF orientation applied. */
    fun decodeUri(resolver: ContentResolver, uri: Uri): RgbImage =
        decode({ resolver.openInputStream(uri) ?: throw IOException("cannot open $uri") }, uri.toString())

    private fun decode(openStream: () -> InputStream, name: String): RgbImage {
        val options = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inScaled = false
            inPremultiplied = false // composite alpha on black ourselves, as geometry._to_rgb8 does
        }
        val bitmap = openStream().use { BitmapFactory.decodeStream(it, null, options) } ?: throw IOException("$name: not an image (format not recognised)")
        val orientation = try {
            openStream().use { ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL) }
        } catch (e: IOException) {
            ExifInterface.ORIENTATION_NORMAL
        }
        return toRgb(oriented(bitmap, orientation))
    }

    /** The EXIF orientation transform (the table image libraries such as Glide use). */
    private fun oriented(bitmap: Bitmap, orientation: Int): Bitmap {
        val matrix = Matrix()
        when (orientation) {
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> matrix.setScale(-1f, 1f)
            ExifInterface.ORIENTATION_ROTATE_180 -> matrix.setRotate(180f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> matrix.apply { setRotate(180f); postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_TRANSPOSE -> matrix.apply { setRotate(90f); postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_90 -> matrix.setRotate(90f)
            ExifInterface.ORIENTATION_TRANSVERSE -> matrix.apply { setRotate(-90f); postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_270 -> matrix.setRotate(-90f)
            else -> return bitmap
        }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, false)
    }

    fun toRgb(bitmap: Bitmap): RgbImage {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return RgbImage.fromArgb(bitmap.width, bitmap.height, argb)
    }

    fun toBitmap(image: RgbImage): Bitmap {
        val argb = IntArray(image.width * image.height) { i ->
            val p = i * 3
            (0xFF shl 24) or ((image.pixels[p].toInt() and 0xFF) shl 16) or ((image.pixels[p + 1].toInt() and 0xFF) shl 8) or (image.pixels[p + 2].toInt() and 0xFF)
        }
        return Bitmap.createBitmap(argb, image.width, image.height, Bitmap.Config.ARGB_8888)
    }

    /** The model-size crop with the heatmap blended over it: warm colours where the model looked. */
    fun heatmapOverlay(crop: RgbImage, heatmap: Heatmap, strength: Float = 0.5f): Bitmap {
        val argb = IntArray(crop.width * crop.height)
        for (y in 0 until crop.height) {
            for (x in 0 until crop.width) {
                val h = heatmap.at((x + 0.5) / crop.width, (y + 0.5) / crop.height).coerceIn(0f, 1f)
                val a = strength * h
                val heat = intArrayOf(255, (255 * h).toInt(), 0) // red (low) to yellow (high)
                var pixel = 0xFF shl 24
                for (c in 0 until 3) pixel = pixel or ((crop[x, y, c] * (1 - a) + heat[c] * a).toInt().coerceIn(0, 255) shl (16 - 8 * c))
                argb[y * crop.width + x] = pixel
            }
        }
        return Bitmap.createBitmap(argb, crop.width, crop.height, Bitmap.Config.ARGB_8888)
    }
}
