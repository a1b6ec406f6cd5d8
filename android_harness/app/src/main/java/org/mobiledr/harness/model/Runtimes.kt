package org.mobiledr.harness.model

import java.io.File
import org.mobiledr.harness.bundle.ArtifactSpec
import org.mobiledr.harness.bundle.Manifest

/** The runtimes this app links (the ExecuTorch and ONNX Runtime AARs): the app's [RunnerFactory]. */
object Runtimes : RunnerFactory {
    override fun open(bundle: File, manifest: Manifest, artifact: ArtifactSpec, threads: Int): Runner {
        Runners.unavailableReason(artifact)?.let { throw RuntimeUnavailable(it) }
        val file = File(bundle, artifact.file)
        return when (artifact.runtime) {
            "executorch" -> ExecuTorchRunner(file, manifest.outputNames, threads)
            else -> OrtRunner(file, manifest.outputNames, threads)
        }
    }
}
