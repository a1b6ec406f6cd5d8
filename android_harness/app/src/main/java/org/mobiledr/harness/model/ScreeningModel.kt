package org.mobiledr.harness.model

import java.io.File
import kotlin.math.exp
import kotlin.math.sqrt
import org.mobiledr.harness.bundle.ArtifactSpec
import org.mobiledr.harness.bundle.BundleException
import org.mobiledr.harness.bundle.Integrity
import org.mobiledr.harness.bundle.Manifest
import org.mobiledr.harness.preprocess.Geometric
import org.mobiledr.harness.preprocess.GeometricResult
import org.mobiledr.harness.preprocess.RgbImage

/** The screening decision under the manifest's rule. [probability] is the calibrated probability of
 * the positive class (binary rule) or of the predicted class (argmax rule). */
data class Prediction(
    val label: String,
    val classIndex: Int,
    val probability: Double,
    val probs: List<Double>,
    val refer: Boolean?, // binary rule only: probs[positive] >= threshold
    val threshold: Double?,
)

/** The out-of-distribution gate: a score below the threshold means the model must not grade. */
data class OodVerdict(val score: Double, val threshold: Double) {
    val outOfDistribution: Boolean get() = score < threshold
}

/** Where the model looked, `side` x `side` values in 0-1 over the model-size crop. */
class Heatmap(val side: Int, val values: FloatArray) {
    /** Bilinear value at ([u], [v]) in 0-1 crop coordinates (pixel centres, edges clamped). */
    fun at(u: Double, v: Double): Float {
        val x = (u * side - 0.5).coerceIn(0.0, side - 1.0)
        val y = (v * side - 0.5).coerceIn(0.0, side - 1.0)
        val x0 = x.toInt()
        val y0 = y.toInt()
        val x1 = minOf(x0 + 1, side - 1)
        val y1 = minOf(y0 + 1, side - 1)
        val fx = (x - x0).toFloat()
        val fy = (y - y0).toFloat()
        val top = values[y0 * side + x0] * (1 - fx) + values[y0 * side + x1] * fx
        val bottom = values[y1 * side + x0] * (1 - fx) + values[y1 * side + x1] * fx
        return top * (1 - fy) + bottom * fy
    }
}

/** One photograph's result: the prediction, the OOD verdict, the heatmap and the crop it came from. */
data class Screening(val prediction: Prediction, val ood: OodVerdict?, val heatmap: Heatmap?, val crop: GeometricResult) {
    /** False when the OOD gate rejects the photograph: report "ungradable", not the prediction. */
    val gradable: Boolean get() = ood?.outOfDistribution != true
}

/**
 * The model-facing part of an app, in one class with no Android imports: open a bundle, run the
 * geometric stage on a decoded photograph (an [RgbImage], EXIF orientation already applied), run the
 * artifact, and apply the manifest's decision rule, temperature and OOD gate.
 *
 * ```
 * ScreeningModel.open(File(filesDir, "bundle")).use { model ->
 *     val result = model.screen(photo)          // throws ImageRejected when no fundus disc is found
 *     if (!result.gradable) showUngradable() else show(result.prediction, result.heatmap)
 * }
 * ```
 * Not thread-safe: use one instance per thread (loading is the expensive part; keep it open).
 */
class ScreeningModel private constructor(val manifest: Manifest, val artifact: ArtifactSpec, private val runner: Runner) : AutoCloseable {
    private val input = InputTensor(manifest.input.shape.map { it.toLong() }.toLongArray())

    /** The geometric stage; throws [org.mobiledr.harness.preprocess.ImageRejected] with the reason
     * for a photograph without a usable fundus disc (the quality verdict). */
    fun preprocess(photo: RgbImage): GeometricResult = Geometric.apply(photo, manifest.geometric)

    fun screen(photo: RgbImage): Screening = predict(preprocess(photo))

    fun predict(crop: GeometricResult): Screening {
        val outputs = infer(crop.image)
        return Screening(decide(manifest, outputs), oodVerdict(manifest, outputs), heatmap(outputs), crop)
    }

    /** The artifact's raw outputs, by manifest name, for a model-size image. */
    fun infer(image: RgbImage): Map<String, FloatArray> {
        require(image.width == manifest.inputSize && image.height == manifest.inputSize) {
            "the model takes ${manifest.inputSize}x${manifest.inputSize} images, got ${image.width}x${image.height}"
        }
        return runner.run(input.set(image.toChwFloats()))
    }

    override fun close() = runner.close()

    companion object {
        /**
         * Opens [bundle] with [artifact] (a manifest file name; default: the first float32 artifact this
         * app can run, ExecuTorch before ONNX Runtime). With [verify] the artifact's sha256 is checked
         * first and a tampered or truncated file is refused.
         */
        fun open(bundle: File, runners: RunnerFactory, artifact: String? = null, threads: Int = 0, verify: Boolean = true): ScreeningModel {
            val manifest = Manifest.load(bundle)
            val spec = if (artifact != null) manifest.artifact(artifact) else defaultArtifact(manifest)
            if (verify) Integrity.check(bundle, spec)?.let { throw BundleException("${it.file}: ${it.reason}; refusing to load it") }
            val runner = runners.open(bundle, manifest, spec, threads)
            runner.load()
            return ScreeningModel(manifest, spec, runner)
        }

        fun defaultArtifact(manifest: Manifest): ArtifactSpec {
            val runnable = manifest.artifacts.filter { Runners.unavailableReason(it) == null }
            return runnable.sortedWith(compareBy({ it.precision != "fp32" }, { Runners.SUPPORTED.indexOf(it.runtime) })).firstOrNull()
                ?: throw BundleException("the bundle has no artifact this app can run (${manifest.artifacts.joinToString { it.file }})")
        }

        /** Calibrated probabilities: the `probs` output, or the softmax of `logits / temperature`. */
        fun probabilities(manifest: Manifest, outputs: Map<String, FloatArray>): DoubleArray {
            outputs["probs"]?.let { probs -> return DoubleArray(probs.size) { probs[it].toDouble() } }
            val logits = outputs["logits"] ?: throw IllegalStateException("the artifact returned neither probs nor logits")
            val scaled = DoubleArray(logits.size) { logits[it] / manifest.decision.temperature }
            val top = scaled.max()
            val e = DoubleArray(scaled.size) { exp(scaled[it] - top) }
            val sum = e.sum()
            return DoubleArray(e.size) { e[it] / sum }
        }

        /** The manifest's decision rule (`mobiledr.parity.compare.Decision`). */
        fun decide(manifest: Manifest, outputs: Map<String, FloatArray>): Prediction {
            val probs = probabilities(manifest, outputs)
            val rule = manifest.decision
            if (rule.binary) {
                val positive = rule.positiveIndex!!
                val refer = probs[positive] >= rule.threshold!!
                val index = if (refer) positive else probs.indices.filter { it != positive }.maxBy { probs[it] }
                return Prediction(manifest.labels[index], index, probs[positive], probs.toList(), refer, rule.threshold)
            }
            val index = probs.indices.maxBy { probs[it] }
            return Prediction(manifest.labels[index], index, probs[index], probs.toList(), null, null)
        }

        fun oodVerdict(manifest: Manifest, outputs: Map<String, FloatArray>): OodVerdict? {
            val rule = manifest.ood ?: return null
            val score = outputs[rule.output]?.firstOrNull() ?: return null
            return OodVerdict(score.toDouble(), rule.threshold)
        }

        fun heatmap(outputs: Map<String, FloatArray>): Heatmap? {
            val values = outputs["heatmap"] ?: return null
            val side = sqrt(values.size.toDouble()).toInt()
            return if (side * side == values.size) Heatmap(side, values) else null
        }
    }
}
