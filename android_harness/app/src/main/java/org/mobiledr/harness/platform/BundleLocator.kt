package org.mobiledr.harness.platform

import android.content.Context
import java.io.File

/**
 * Where the screening screen finds its bundle, first match wins:
 * 1. an explicit folder (the launch intent's `bundle` extra);
 * 2. `/sdcard/Android/data/org.mobiledr.harness/files/bundle` (`adb push BUNDLE <that path>`);
 * 3. `app/src/main/assets/bundle/` built into the APK, copied once to `files/bundle` (runtimes
 *    need real files, and ExecuTorch maps them).
 */
object BundleLocator {
    private const val NAME = "bundle"
    private const val MANIFEST = "manifest.json"

    fun find(context: Context, explicit: String?): File? {
        explicit?.let { return File(it).takeIf { dir -> File(dir, MANIFEST).isFile } }
        context.getExternalFilesDir(null)?.let { File(it, NAME) }?.takeIf { File(it, MANIFEST).isFile }?.let { return it }
        return fromAssets(context)
    }

    private fun fromAssets(context: Context): File? {
        val assets = context.assets
        val packaged = try {
            assets.open("$NAME/$MANIFEST").use { it.readBytes() }
        } catch (e: java.io.IOException) {
            return null
        }
        val target = File(context.filesDir, NAME)
        val copied = File(target, MANIFEST)
        if (copied.isFile && copied.readBytes().contentEquals(packaged)) return target
        target.deleteRecursively()
        copyTree(context, NAME, target)
        return target
    }

    private fun copyTree(context: Context, asset: String, target: File) {
        val children = context.assets.list(asset).orEmpty()
        if (children.isEmpty()) {
            target.parentFile?.mkdirs()
            context.assets.open(asset).use { input -> target.outputStream().use { input.copyTo(it) } }
            return
        }
        target.mkdirs()
        for (child in children) copyTree(context, "$asset/$child", File(target, child))
    }
}
