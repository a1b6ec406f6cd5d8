package org.mobiledr.harness.bundle

import java.io.File
import java.security.MessageDigest

/** A file whose size or sha256 is not what the manifest says (or that is missing). */
data class Mismatch(val file: String, val reason: String)

/**
 * The manifest's hashes, checked the way `mobiledr bundle verify` checks them: a file's sha256, and for
 * a folder (`.mlpackage`) the sha256 of its sorted `relative path NUL file sha256 LF` lines
 * (`mobiledr.export.manifest.tree_sha256`).
 */
object Integrity {
    fun sha256(file: File): String {
        val digest = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val buffer = ByteArray(1 shl 20)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    /** sha256 and total size of a file or folder, as the manifest records them. */
    fun treeSha256(path: File): Pair<String, Long> {
        if (path.isFile) return sha256(path) to path.length()
        if (!path.isDirectory) throw java.io.FileNotFoundException(path.path)
        val digest = MessageDigest.getInstance("SHA-256")
        var total = 0L
        val files = path.walkTopDown().filter { it.isFile }.map { it.relativeTo(path).invariantSeparatorsPath }
            .sortedWith { a, b -> comparePathParts(a, b) }
        for (relative in files) {
            val (sha, size) = treeSha256(File(path, relative))
            digest.update("$relative\u0000$sha\n".toByteArray(Charsets.UTF_8))
            total += size
        }
        return digest.digest().joinToString("") { "%02x".format(it) } to total
    }

    /** Checks one entry; null when it matches. */
    fun check(bundle: File, file: String, sizeBytes: Long, sha256: String): Mismatch? {
        val path = File(bundle, file)
        if (!path.exists()) return Mismatch(file, "missing")
        val (actualSha, actualSize) = treeSha256(path)
        return when {
            actualSize != sizeBytes -> Mismatch(file, "size $actualSize, manifest says $sizeBytes")
            actualSha != sha256 -> Mismatch(file, "sha256 ${actualSha.take(12)}..., manifest says ${sha256.take(12)}...")
            else -> null
        }
    }

    fun check(bundle: File, artifact: ArtifactSpec): Mismatch? = check(bundle, artifact.file, artifact.sizeBytes, artifact.sha256)

    fun check(bundle: File, entry: FileEntry): Mismatch? = check(bundle, entry.file, entry.sizeBytes, entry.sha256)

    /** Python sorts `Path` objects part by part, which differs from plain string order for '-' vs '/'. */
    private fun comparePathParts(a: String, b: String): Int {
        val pa = a.split('/')
        val pb = b.split('/')
        for (i in 0 until minOf(pa.size, pb.size)) {
            val c = pa[i].compareTo(pb[i])
            if (c != 0) return c
        }
        return pa.size - pb.size
    }
}
