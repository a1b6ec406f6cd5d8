package org.mobiledr.harness.bench

import java.io.File
import java.util.Locale
import kotlin.math.abs
import kotlin.math.max
import org.json.JSONObject
import org.mobiledr.harness.bench.CheckResult.Companion.FAILED
import org.mobiledr.harness.bench.CheckResult.Companion.PASSED
import org.mobiledr.harness.bundle.ArtifactSpec
import org.mobiledr.harness.bundle.Integrity
import org.mobiledr.harness.bundle.Manifest
import org.mobiledr.harness.bundle.NpyArray
import org.mobiledr.harness.model.InputTensor
import org.mobiledr.harness.model.Runner
import org.mobiledr.harness.model.ScreeningModel
import org.mobiledr.harness.preprocess.Geometric
import org.mobiledr.harness.preprocess.GeometricSpec
import org.mobiledr.harness.preprocess.ImageRejected
import org.mobiledr.harness.preprocess.RgbImage

/** An element-wise rule of the artifact's `self_check` (from `mobiledr/parity/tolerances.yaml`):
 * `max_abs` or `max_rel` of one output. */
data class Rule(val measure: String, val output: String, val limit: Double)

/**
 * What the phone checks before timing, by the names `bench.schema.json` gives them: the bundle's
 * hashes, this app's geometric stage on the golden photographs, and the artifact on the golden vectors
 * (parity on the phone, the same element-wise rules `mobiledr parity` applies to them).
 */
object SelfChecks {
    const val INTEGRITY = "integrity"
    const val GEOMETRIC = "geometric"
    const val GOLDEN_VECTORS = "golden_vectors"
    const val BUNDLED_PROGRAM = "bundled_program"
    private const val REL_FLOOR = 1e-6 // relative errors divide by max(|reference|, 1e-6)

    /** The element-wise rules of [artifact], in the manifest's output order: its `self_check`, which
     * `mobiledr export` fills from the parity policy. Without them (int8, int8-weights,
     * palettized-6bit) an artifact is judged by its decisions, as the policy does. */
    fun rules(manifest: Manifest, artifact: ArtifactSpec): List<Rule> = manifest.outputNames.flatMap { name ->
        val limit = artifact.selfCheck[name] ?: return@flatMap emptyList()
        listOfNotNull(limit.maxAbs?.let { Rule("max_abs", name, it) }, limit.maxRel?.let { Rule("max_rel", name, it) })
    }

    private fun plain(v: Double): String = java.math.BigDecimal(v).round(java.math.MathContext(3)).stripTrailingZeros().toPlainString()

    /**
     * The artifact, the golden files the checks read and the artifact's extra files against the
     * manifest's sizes and sha256. Other bundle files are not needed to measure this artifact (the
     * driver pushes only what a run uses) and are not checked.
     */
    fun integrity(bundle: File, manifest: Manifest, artifact: ArtifactSpec): CheckResult {
        val used = manifest.files.filter { it.file.startsWith("golden/") || it.file in artifact.extras.values }
        val mismatches = listOfNotNull(Integrity.check(bundle, artifact)) + used.mapNotNull { Integrity.check(bundle, it) }
        val cases = 1 + used.size
        if (mismatches.isEmpty()) return CheckResult(PASSED, cases, detail = "${artifact.file} and ${used.size} golden and extra files match the manifest")
        return CheckResult(FAILED, cases, detail = mismatches.joinToString("; ") { "${it.file}: ${it.reason}" })
    }

    /** This app's geometric stage on the golden photographs against the expected outputs. */
    fun geometric(bundle: File, manifest: Manifest, decodePng: (File) -> RgbImage): CheckResult {
        val path = File(bundle, manifest.golden.geometric)
        val info = JSONObject(path.readText())
        val spec = GeometricSpec(info.getInt("size"), info.getString("mode"), info.getInt("crop_tolerance"))
        val limit = manifest.golden.geometricMaxAbsDifference ?: info.getInt("max_abs_difference")
        val pairs = info.getJSONArray("pairs")
        var worst = 0
        val notes = ArrayList<String>()
        for (i in 0 until pairs.length()) {
            val pair = pairs.getJSONObject(i)
            val expected = decodePng(File(path.parentFile, pair.getString("expected")))
            val difference = try {
                Geometric.apply(decodePng(File(path.parentFile, pair.getString("original"))), spec).image.maxAbsDifference(expected)
            } catch (e: ImageRejected) {
                notes.add("${pair.getString("name")} rejected: ${e.message}")
                255
            }
            notes.add("${pair.getString("name")} $difference")
            worst = max(worst, difference)
        }
        val status = if (worst <= limit) PASSED else FAILED
        return CheckResult(status, pairs.length(), worst.toDouble(), "max |difference| per pair in grey levels (limit $limit): ${notes.joinToString(", ")}")
    }

    /** The artifact on every golden image against the float32 PyTorch reference outputs. */
    fun goldenVectors(runner: Runner, manifest: Manifest, vectors: Map<String, NpyArray>, artifact: ArtifactSpec): CheckResult {
        val precision = artifact.precision
        val images = vectors["image"] ?: return CheckResult(FAILED, 0, detail = "golden vectors have no 'image' array")
        val count = images.shape[0]
        val input = InputTensor(manifest.input.shape.map { it.toLong() }.toLongArray())
        val actual = List(count) { runner.run(input.set(images.item(it))) }
        val compared = manifest.outputNames.filter { it in vectors }
        val maxAbs = HashMap<String, Double>()
        val maxRel = HashMap<String, Double>()
        for (name in compared) {
            val reference = vectors.getValue(name)
            for (case in 0 until count) {
                val r = reference.item(case)
                val a = actual[case].getValue(name)
                if (a.size != r.size) return CheckResult(FAILED, count, detail = "$name: ${a.size} values, the reference has ${r.size}")
                for (k in r.indices) {
                    val error = abs(a[k].toDouble() - r[k])
                    maxAbs[name] = max(maxAbs[name] ?: 0.0, error)
                    maxRel[name] = max(maxRel[name] ?: 0.0, error / max(abs(r[k].toDouble()), REL_FLOOR))
                }
            }
        }
        val worst = maxAbs.values.maxOrNull() ?: 0.0
        val rules = rules(manifest, artifact).ifEmpty { null }
        if (rules == null) {
            val agree = (0 until count).count { case ->
                val reference = compared.associateWith { vectors.getValue(it).item(case) }
                ScreeningModel.decide(manifest, reference).classIndex == ScreeningModel.decide(manifest, actual[case]).classIndex
            }
            val status = if (agree == count) PASSED else FAILED
            return CheckResult(status, count, worst, "$precision: no element-wise limits (self_check): decisions agree on $agree/$count golden images")
        }
        val results = rules.filter { it.output in compared }.map { rule ->
            val value = (if (rule.measure == "max_abs") maxAbs else maxRel).getValue(rule.output)
            Triple(rule, value, value <= rule.limit)
        }
        val status = if (results.all { it.third }) PASSED else FAILED
        val detail = results.joinToString(", ") { (rule, value, ok) -> "${rule.measure}.${rule.output} ${"%.2e".format(Locale.ROOT, value)} ${if (ok) "<=" else ">"} ${plain(rule.limit)}" }
        return CheckResult(status, count, worst, detail)
    }
}
