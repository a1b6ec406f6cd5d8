package org.mobiledr.harness.model

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import java.io.File

/** `.onnx` and `.ort` models through ONNX Runtime Android's CPU execution provider. */
class OrtRunner(private val file: File, private val outputNames: List<String>, private val threads: Int) : Runner {
    override val runtime = "onnxruntime"
    private val env: OrtEnvironment = OrtEnvironment.getEnvironment()
    private var session: OrtSession? = null

    override fun load() {
        val options = OrtSession.SessionOptions().apply {
            if (threads > 0) {
                setIntraOpNumThreads(threads)
                setInterOpNumThreads(1)
            }
        }
        session = env.createSession(file.absolutePath, options)
    }

    override fun run(input: InputTensor): Map<String, FloatArray> {
        val session = checkNotNull(session) { "load() first" }
        OnnxTensor.createTensor(env, input.buffer, input.shape).use { tensor ->
            session.run(mapOf(INPUT_NAME to tensor), outputNames.toSet()).use { result ->
                return outputNames.associateWith { name ->
                    val value = result.get(name).orElseThrow { IllegalStateException("${file.name} has no output $name") } as OnnxTensor
                    val buffer = value.floatBuffer
                    FloatArray(buffer.remaining()).also { buffer.get(it) }
                }
            }
        }
    }

    override fun close() {
        session?.close()
        session = null
    }

    companion object {
        const val INPUT_NAME = "image" // every artifact's input tensor (mobiledr.export.manifest.INPUT_NAME)
    }
}
