package org.mobiledr.harness.model

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer
import org.mobiledr.harness.bundle.ArtifactSpec
import org.mobiledr.harness.bundle.Manifest

/** The artifact cannot run on this device (Core ML off Apple, an unknown runtime): reported as
 * skipped with this reason, never as passed. */
class RuntimeUnavailable(message: String) : Exception(message)

/**
 * The model input, `(1, 3, S, S)` float32 RGB 0-255 (the geometric stage's output), in a direct
 * native-order buffer that ExecuTorch and ONNX Runtime read without copying.
 */
class InputTensor(val shape: LongArray) {
    val buffer: FloatBuffer = ByteBuffer.allocateDirect(shape.fold(1L) { a, b -> a * b }.toInt() * 4).order(ByteOrder.nativeOrder()).asFloatBuffer()

    fun set(values: FloatArray): InputTensor {
        require(values.size == buffer.capacity()) { "${values.size} values for an input of shape ${shape.toList()}" }
        buffer.clear()
        buffer.put(values)
        buffer.rewind()
        return this
    }
}

/**
 * One artifact on one runtime, the interface `mobiledr.runners.base.Runner` has on the desktop: load
 * once, then one image per inference; outputs by manifest name, flattened (batch of 1).
 */
interface Runner : AutoCloseable {
    val runtime: String

    fun load()

    fun run(input: InputTensor): Map<String, FloatArray>
}

object Runners {
    /** Runtimes this app links, by the manifest's `runtime` field. */
    val SUPPORTED = listOf("executorch", "onnxruntime", "onnxruntime-mobile")

    /** Why [artifact] cannot run here, or null if it can. */
    fun unavailableReason(artifact: ArtifactSpec): String? = when {
        artifact.runtime == "coreml" || artifact.backend == "coreml" -> "Core ML runs only on Apple devices"
        artifact.runtime !in SUPPORTED -> "runtime ${artifact.runtime} is not linked into this app"
        artifact.runtime == "executorch" && artifact.backend !in listOf("xnnpack", "portable") ->
            "this app's ExecuTorch AAR has no ${artifact.backend} backend"
        else -> null
    }

}

/**
 * Opens a [Runner] for an artifact of a bundle ([threads] = 0 lets the runtime choose). The app passes
 * [Runtimes.open] (ExecuTorch, ONNX Runtime); the JVM checks pass runners of their own, so this file
 * and everything using it compile without the runtime libraries.
 */
fun interface RunnerFactory {
    fun open(bundle: File, manifest: Manifest, artifact: ArtifactSpec, threads: Int): Runner
}
