package org.mobiledr.harness.bundle

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.ZipFile

/** A float32 array read from a `.npy` file: row-major (C order) values and their shape. */
class NpyArray(val shape: IntArray, val data: FloatArray) {
    /** Element count of one item along the first axis (one image, one row of outputs). */
    val itemSize: Int get() = shape.drop(1).fold(1) { a, b -> a * b }

    /** Item [i] along the first axis, flattened. */
    fun item(i: Int): FloatArray = data.copyOfRange(i * itemSize, (i + 1) * itemSize)
}

/**
 * `numpy.savez` archives (`golden/vectors.npz`): a zip of `.npy` files. Only what the bundles hold is
 * supported: little-endian float32 (`<f4`), C order, format versions 1-3.
 */
object Npz {
    fun read(file: File): Map<String, NpyArray> = ZipFile(file).use { zip ->
        zip.entries().asSequence().filter { it.name.endsWith(".npy") }.associate { entry ->
            entry.name.removeSuffix(".npy") to zip.getInputStream(entry).use { parseNpy(it.readBytes(), entry.name) }
        }
    }

    fun parseNpy(bytes: ByteArray, name: String = "array"): NpyArray {
        val buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
        val magic = ByteArray(6).also { buffer.get(it) }
        if (!(magic[0] == 0x93.toByte() && String(magic, 1, 5, Charsets.US_ASCII) == "NUMPY")) throw BundleException("$name: not a .npy file")
        val major = buffer.get().toInt()
        buffer.get() // minor version
        val headerLength = if (major == 1) buffer.short.toInt() and 0xFFFF else buffer.int
        val header = String(bytes, buffer.position(), headerLength, if (major >= 3) Charsets.UTF_8 else Charsets.ISO_8859_1)
        buffer.position(buffer.position() + headerLength)
        val descr = Regex("""'descr':\s*'([^']*)'""").find(header)?.groupValues?.get(1)
        val fortran = Regex("""'fortran_order':\s*(True|False)""").find(header)?.groupValues?.get(1)
        val shapeText = Regex("""'shape':\s*\(([^)]*)\)""").find(header)?.groupValues?.get(1)
            ?: throw BundleException("$name: .npy header without a shape: $header")
        if (descr != "<f4") throw BundleException("$name: dtype $descr, expected little-endian float32 (<f4)")
        if (fortran != "False") throw BundleException("$name: Fortran-ordered arrays are not supported")
        val shape = shapeText.split(',').map { it.trim() }.filter { it.isNotEmpty() }.map { it.toInt() }.toIntArray()
        val count = shape.fold(1) { a, b -> a * b }
        if (buffer.remaining() < count * 4) throw BundleException("$name: ${buffer.remaining()} data bytes for shape ${shape.toList()}")
        val data = FloatArray(count)
        buffer.asFloatBuffer().get(data)
        return NpyArray(shape, data)
    }
}
