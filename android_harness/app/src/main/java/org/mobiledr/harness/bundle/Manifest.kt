package org.mobiledr.harness.bundle

import java.io.File
import org.json.JSONArray
import org.json.JSONObject
import org.mobiledr.harness.preprocess.GeometricSpec

/** Thrown for a folder that is not a usable mobiledr bundle; the message says why. */
class BundleException(message: String) : Exception(message)

/** One exported model file (`manifest.artifacts[]`). */
data class ArtifactSpec(
    val file: String,
    val format: String,
    val kind: String, // pte | onnx | ort | mlpackage
    val runtime: String, // executorch | onnxruntime | onnxruntime-mobile | coreml
    val backend: String,
    val precision: String, // fp32 | fp16 | int8 | int8-weights | palettized-6bit
    val sizeBytes: Long,
    val sha256: String,
    val params: Long,
    val macs: Long,
    val inputType: String, // tensor | image (Core ML)
    val outputNames: Map<String, String>, // manifest output name -> this artifact's name, where they differ
    val extras: Map<String, String>,
    val selfCheck: Map<String, OutputLimit> = emptyMap(), // manifest output name -> the golden-vector limits (`self_check`)
)

/** The element-wise limits of one output in an artifact's `self_check` (the parity policy's
 * `max_abs` / `max_rel` rules for its precision); null: no such limit. */
data class OutputLimit(val maxAbs: Double?, val maxRel: Double?)

/** Any other bundle file with its hash (`manifest.files[]`). */
data class FileEntry(val file: String, val sizeBytes: Long, val sha256: String)

/** The decision rule: binary `probs[positiveIndex] >= threshold`, otherwise argmax. */
data class DecisionRule(val rule: String, val threshold: Double?, val positiveIndex: Int?, val temperature: Double) {
    val binary: Boolean get() = threshold != null && positiveIndex != null
}

/** Out-of-distribution gate: `ood_score < threshold` means do not grade. */
data class OodRule(val output: String, val threshold: Double, val rule: String)

data class TensorSpec(val name: String, val shape: List<Int>)

/** The self-check material `mobiledr export` writes under `golden/`. */
data class GoldenSpec(val vectors: String, val geometric: String, val bundledProgram: String?, val count: Int, val geometricMaxAbsDifference: Int?)

/**
 * The bundle's `manifest.json` (JSON Schema: `mobiledr/export/manifest.schema.json`, version 1), the
 * part an app needs. Field names follow the schema; see the README's Export section for meanings.
 */
class Manifest(
    val mobiledrVersion: String,
    val modelName: String,
    val inputSize: Int,
    val labels: List<String>,
    val labelScheme: String,
    val decision: DecisionRule,
    val ood: OodRule?,
    val geometric: GeometricSpec,
    val input: TensorSpec,
    val outputs: List<TensorSpec>,
    val artifacts: List<ArtifactSpec>,
    val files: List<FileEntry>,
    val golden: GoldenSpec,
) {
    val outputNames: List<String> get() = outputs.map { it.name }

    fun artifact(file: String): ArtifactSpec =
        artifacts.firstOrNull { it.file == file } ?: throw BundleException("the bundle has no artifact '$file' (it has ${artifacts.joinToString { it.file }})")

    companion object {
        const val FILE = "manifest.json"
        const val SCHEMA_VERSION = 1

        fun load(bundle: File): Manifest {
            val path = File(bundle, FILE)
            if (!path.isFile) throw BundleException("$bundle: not a mobiledr bundle ($FILE missing)")
            return try {
                parse(path.readText())
            } catch (e: org.json.JSONException) {
                throw BundleException("$path: invalid manifest: ${e.message}")
            }
        }

        fun parse(text: String): Manifest {
            val j = JSONObject(text)
            if (j.getString("format") != "mobiledr-bundle") throw BundleException("not a mobiledr bundle manifest (format ${j.getString("format")})")
            val version = j.getInt("schema_version")
            if (version != SCHEMA_VERSION) throw BundleException("manifest schema version $version is not $SCHEMA_VERSION; use a matching harness")
            val model = j.getJSONObject("model")
            val geometric = j.getJSONObject("preprocessing").getJSONObject("geometric")
            val decision = j.getJSONObject("decision")
            val ood = j.optJSONObject("ood")
            val golden = j.getJSONObject("golden")
            val tolerances = golden.optJSONObject("tolerances")
            return Manifest(
                mobiledrVersion = j.getString("mobiledr_version"),
                modelName = model.getString("name"),
                inputSize = model.getInt("input_size"),
                labels = j.getJSONArray("labels").strings(),
                labelScheme = j.getString("label_scheme"),
                decision = DecisionRule(
                    rule = decision.getString("rule"),
                    threshold = decision.optDoubleOrNull("threshold"),
                    positiveIndex = if (decision.isNull("positive_index")) null else decision.getInt("positive_index"),
                    temperature = decision.getDouble("temperature"),
                ),
                ood = ood?.let { OodRule(it.getString("output"), it.getDouble("threshold"), it.getString("rule")) },
                geometric = GeometricSpec(geometric.getInt("size"), geometric.getString("mode"), geometric.getInt("crop_tolerance")),
                input = tensor(j.getJSONObject("input")),
                outputs = j.getJSONArray("outputs").objects().map(::tensor),
                artifacts = j.getJSONArray("artifacts").objects().map(::artifact),
                files = j.getJSONArray("files").objects().map { FileEntry(it.getString("file"), it.getLong("size_bytes"), it.getString("sha256")) },
                golden = GoldenSpec(
                    vectors = golden.getString("vectors"),
                    geometric = golden.getString("geometric"),
                    bundledProgram = golden.optString("bundled_program").ifEmpty { null },
                    count = golden.getInt("count"),
                    geometricMaxAbsDifference = tolerances?.takeIf { it.has("geometric_max_abs_difference") }?.getInt("geometric_max_abs_difference"),
                ),
            )
        }

        private fun tensor(j: JSONObject) = TensorSpec(j.getString("name"), j.getJSONArray("shape").let { a -> List(a.length()) { a.getInt(it) } })

        private fun artifact(j: JSONObject) = ArtifactSpec(
            file = j.getString("file"),
            format = j.getString("format"),
            kind = j.getString("kind"),
            runtime = j.getString("runtime"),
            backend = j.getString("backend"),
            precision = j.getString("precision"),
            sizeBytes = j.getLong("size_bytes"),
            sha256 = j.getString("sha256"),
            params = j.getLong("params"),
            macs = j.getLong("macs"),
            inputType = j.getString("input_type"),
            outputNames = j.getJSONObject("output_names").stringMap(),
            extras = j.getJSONObject("extras").stringMap(),
            selfCheck = j.optJSONObject("self_check")?.let { limits ->
                limits.keys().asSequence().associateWith { name ->
                    val limit = limits.getJSONObject(name)
                    OutputLimit(limit.optDoubleOrNull("max_abs"), limit.optDoubleOrNull("max_rel"))
                }
            } ?: emptyMap(),
        )

        private fun JSONArray.objects(): List<JSONObject> = List(length()) { getJSONObject(it) }

        private fun JSONArray.strings(): List<String> = List(length()) { getString(it) }

        private fun JSONObject.stringMap(): Map<String, String> = keys().asSequence().associateWith { getString(it) }

        private fun JSONObject.optDoubleOrNull(key: String): Double? = if (!has(key) || isNull(key)) null else getDouble(key)
    }
}
