package org.mobiledr.harness.bench

import java.io.File
import java.io.IOException
import org.json.JSONArray
import org.json.JSONObject

/**
 * [BenchReport] as `bench.schema.json` spells it. Rows have `additionalProperties: false`: every key
 * written here must be a property of the schema's row (a test in tests/test_harness_apps.py checks
 * the keys of each function below against the schema). Absent values are left out, never null.
 */
object ResultsWriter {
    const val SCHEMA = "mobiledr-bench/1"

    /** Writes [report] to [target] through a temporary file and a rename, so a reader polling for
     * [target] never sees half a file. */
    fun write(report: BenchReport, target: File) {
        val temp = File(target.parentFile, "${target.name}.tmp")
        temp.writeText(reportJson(report).toString(2) + "\n")
        if (!temp.renameTo(target)) {
            temp.delete()
            throw IOException("cannot rename $temp to $target")
        }
    }

    fun reportJson(report: BenchReport): JSONObject = JSONObject()
        .put("schema", SCHEMA)
        .put("created", report.created)
        .put("mobiledr_version", report.mobiledrVersion)
        .put("bundle", report.bundle)
        .put("manifest_sha256", report.manifestSha256)
        .put("model", JSONObject().put("name", report.modelName).put("input_size", report.inputSize))
        .put("devices", JSONArray().put(deviceJson(report.device)))
        .put("settings", settingsJson(report))
        .put("rows", JSONArray(report.rows.map(::rowJson)))

    fun deviceJson(device: DeviceInfo): JSONObject {
        val json = JSONObject()
        device.facts.forEach { (key, value) -> json.put(key, value) }
        return json.put("device", device.name).put("kind", device.kind)
    }

    fun settingsJson(report: BenchReport): JSONObject = JSONObject()
        .put("warmup", report.warmup)
        .put("iters", report.iters)
        .put("threads", JSONArray(report.threads))

    fun rowJson(row: BenchRow): JSONObject {
        val json = JSONObject()
            .put("device", row.device)
            .put("artifact", row.artifact)
            .put("format", row.format)
            .put("precision", row.precision)
            .put("runtime", row.runtime)
            .put("backend", row.backend)
            .put("threads", row.threads)
            .put("status", row.status)
        row.params?.let { json.put("params", it) }
        row.macs?.let { json.put("macs", it) }
        row.sizeBytes?.let { json.put("size_bytes", it) }
        row.error?.let { json.put("error", it) }
        row.warning?.let { json.put("warning", it) }
        row.loadMs?.let { json.put("load_ms", it) }
        row.firstMs?.let { json.put("first_ms", it) }
        row.latenciesMs?.let { json.put("latencies_ms", JSONArray(it)) }
        row.baselineRssMb?.let { json.put("baseline_rss_mb", it) }
        row.rssMb?.let { json.put("rss_mb", it) }
        row.peakRssMb?.let { json.put("peak_rss_mb", it) }
        row.pssMb?.let { json.put("pss_mb", it) }
        if (row.checks.isNotEmpty()) json.put("checks", checksJson(row.checks))
        return json
    }

    /** The row's self-checks by name (integrity, geometric, golden_vectors, bundled_program). */
    fun checksJson(checks: Map<String, CheckResult>): JSONObject {
        val json = JSONObject()
        checks.forEach { (name, check) -> json.put(name, checkJson(check)) }
        return json
    }


    fun checkJson(check: CheckResult): JSONObject {
        val json = JSONObject().put("status", check.status)
        check.cases?.let { json.put("cases", it) }
        check.maxAbsError?.takeIf { it.isFinite() }?.let { json.put("max_abs_error", it) } // JSON has no NaN
        check.detail?.let { json.put("detail", it) }
        return json
    }
}
