package org.mobiledr.harness.bench

import java.io.File
import org.mobiledr.harness.bundle.ArtifactSpec
import org.mobiledr.harness.bundle.Integrity
import org.mobiledr.harness.bundle.Manifest
import org.mobiledr.harness.bundle.NpyArray
import org.mobiledr.harness.bundle.Npz
import org.mobiledr.harness.model.InputTensor
import org.mobiledr.harness.model.RunnerFactory
import org.mobiledr.harness.model.Runners
import org.mobiledr.harness.model.RuntimeUnavailable
import org.mobiledr.harness.preprocess.RgbImage

/** What `mobiledr bench --device android --mode app` asks for (the intent extras). A null
 * [artifact] measures every artifact this app can run; a null [runtime] takes the artifact's own. */
data class BenchRequest(val bundle: String, val artifact: String?, val runtime: String?, val iterations: Int, val warmup: Int, val threads: Int) {
    init {
        require(iterations >= 1) { "iterations must be >= 1, got $iterations" }
        require(warmup >= 0) { "warmup must be >= 0, got $warmup" }
        require(threads >= 1) { "threads must be >= 1, got $threads" }
        require(runtime == null || runtime in listOf("executorch", "onnxruntime")) { "runtime must be executorch or onnxruntime, got $runtime" }
    }
}

/**
 * The phone's half of `mobiledr bench`, as `mobiledr.bench.worker.measure` does it on the desktop:
 * self-checks, load, first inference, warm-up, timed inferences on the first golden image, memory.
 * Plain Kotlin: the activity passes the platform parts (PNG decoding, PSS, device facts).
 */
class Benchmark(
    private val bundle: File,
    private val device: DeviceInfo,
    private val decodePng: (File) -> RgbImage,
    private val pss: PssProbe = PssProbe { null },
    private val runners: RunnerFactory,
    private val log: (String) -> Unit = {},
) {
    val manifest: Manifest = Manifest.load(bundle)

    fun run(request: BenchRequest, mobiledrVersion: String, created: String): BenchReport {
        val unknown = request.artifact?.takeIf { name -> manifest.artifacts.none { it.file == name } }
        val artifacts = request.artifact?.let { name -> manifest.artifacts.filter { it.file == name } } ?: manifest.artifacts
        log("geometric self-check on ${manifest.golden.geometric}")
        val geometric = SelfChecks.geometric(bundle, manifest, decodePng)
        val vectors = Npz.read(File(bundle, manifest.golden.vectors))
        val rows = artifacts.map { artifact ->
            log("measuring ${artifact.file} (${artifact.runtime}, ${request.threads} threads)")
            measure(artifact, request, geometric, vectors).also { log("${artifact.file}: ${it.status} ${it.error ?: it.latenciesMs?.let { l -> "${l.size} timed inferences" } ?: ""}") }
        }
        val missing = unknown?.let {
            BenchRow(device.name, it, "unknown", "unknown", request.runtime ?: "unknown", "unknown", request.threads, null, null, null, status = "failed",
                error = "the bundle has no artifact '$it' (it has ${manifest.artifacts.joinToString { a -> a.file }})")
        }
        return BenchReport(
            created = created, mobiledrVersion = mobiledrVersion, bundle = bundle.path, manifestSha256 = Integrity.sha256(File(bundle, Manifest.FILE)),
            modelName = manifest.modelName, inputSize = manifest.inputSize, device = device, warmup = request.warmup, iters = request.iterations,
            threads = listOf(request.threads), rows = listOfNotNull(missing) + rows,
        )
    }

    fun measure(artifact: ArtifactSpec, request: BenchRequest, geometric: CheckResult, vectors: Map<String, NpyArray>): BenchRow {
        val base = BenchRow(
            device = device.name, artifact = artifact.file, format = artifact.format, precision = artifact.precision, runtime = artifact.runtime,
            backend = artifact.backend, threads = request.threads, params = artifact.params, macs = artifact.macs, sizeBytes = artifact.sizeBytes, status = "ok",
        )
        if (request.runtime != null && !artifact.runtime.startsWith(request.runtime)) {
            return base.copy(status = "skipped", error = "${artifact.file} runs on ${artifact.runtime}, not ${request.runtime}")
        }
        Runners.unavailableReason(artifact)?.let { return base.copy(status = "skipped", error = it) }
        val checks = linkedMapOf(SelfChecks.INTEGRITY to SelfChecks.integrity(bundle, manifest, artifact), SelfChecks.GEOMETRIC to geometric)
        if (checks.getValue(SelfChecks.INTEGRITY).failed) {
            return base.copy(status = "failed", error = "integrity: ${checks.getValue(SelfChecks.INTEGRITY).detail}", checks = checks)
        }
        val image = vectors["image"] ?: return base.copy(status = "failed", error = "golden vectors have no 'image' array", checks = checks)
        val input = InputTensor(manifest.input.shape.map { it.toLong() }.toLongArray()).set(image.item(0))
        return try {
            runners.open(bundle, manifest, artifact, request.threads).use { runner ->
                val baseline = ProcMemory.rssMb() // the runtime's library is loaded, the artifact is not
                var start = System.nanoTime()
                runner.load()
                val loadNs = System.nanoTime() - start
                start = System.nanoTime()
                runner.run(input)
                val firstNs = System.nanoTime() - start
                checks[SelfChecks.GOLDEN_VECTORS] = SelfChecks.goldenVectors(runner, manifest, vectors, artifact)
                if (artifact.extras.containsKey("bundled_program")) {
                    checks[SelfChecks.BUNDLED_PROGRAM] = CheckResult.skipped("the ExecuTorch Android AAR cannot load a BundledProgram; the native runner (adb shell mode) runs it")
                }
                repeat(request.warmup) { runner.run(input) }
                val timings = List(request.iterations) {
                    val t = System.nanoTime()
                    runner.run(input)
                    (System.nanoTime() - t) / 1e6
                }
                base.copy(
                    status = "ok", warning = warnings(checks), loadMs = loadNs / 1e6, firstMs = firstNs / 1e6, latenciesMs = timings,
                    baselineRssMb = baseline, rssMb = ProcMemory.rssMb(),
                    peakRssMb = ProcMemory.peakRssMb(), pssMb = pss.pssMb(), checks = checks,
                )
            }
        } catch (e: RuntimeUnavailable) {
            base.copy(status = "skipped", error = e.message ?: "runtime unavailable", checks = checks)
        } catch (e: Exception) {
            base.copy(status = "failed", error = "${e.javaClass.simpleName}: ${e.message}", checks = checks)
        }
    }

    /** Failed self-checks; the latency statistics and the noisy-CV flag are `mobiledr bench`'s, from the raw timings. */
    private fun warnings(checks: Map<String, CheckResult>): String? =
        checks.filterValues { it.failed }.map { (name, check) -> "self-check $name failed: ${check.detail}" }.joinToString("; ").ifEmpty { null }
}
