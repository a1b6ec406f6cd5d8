package org.mobiledr.harness.bench

/**
 * One benchmark run in the shared bench schema (`mobiledr/bench/bench.schema.json`,
 * `mobiledr-bench/1`): the same rows `mobiledr bench` writes on the desktop, with the phone's PSS and
 * the self-checks. Times in milliseconds, memory in MB (2^20 bytes).
 */
data class BenchReport(
    val created: String,
    val mobiledrVersion: String,
    val bundle: String,
    val manifestSha256: String,
    val modelName: String,
    val inputSize: Int,
    val device: DeviceInfo,
    val warmup: Int,
    val iters: Int,
    val threads: List<Int>,
    val rows: List<BenchRow>,
)

/** The phone: [name] is what rows put in their `device` column; [facts] are free-form. */
data class DeviceInfo(val name: String, val kind: String, val facts: Map<String, Any>)

/** A self-check's outcome: status passed | failed | skipped. */
data class CheckResult(val status: String, val cases: Int? = null, val maxAbsError: Double? = null, val detail: String? = null) {
    val failed: Boolean get() = status == FAILED

    companion object {
        const val PASSED = "passed"
        const val FAILED = "failed"
        const val SKIPPED = "skipped"

        fun skipped(detail: String) = CheckResult(SKIPPED, detail = detail)
    }
}

/** One artifact x runtime x thread count on this device; status ok | skipped | failed. */
data class BenchRow(
    val device: String,
    val artifact: String,
    val format: String,
    val precision: String,
    val runtime: String,
    val backend: String,
    val threads: Int,
    val params: Long?,
    val macs: Long?,
    val sizeBytes: Long?,
    val status: String,
    val error: String? = null,
    val warning: String? = null,
    val loadMs: Double? = null,
    val firstMs: Double? = null,
    val latenciesMs: List<Double>? = null, // every timed inference, raw: `mobiledr bench` computes the statistics
    val baselineRssMb: Double? = null,
    val rssMb: Double? = null,
    val peakRssMb: Double? = null,
    val pssMb: Double? = null,
    val checks: Map<String, CheckResult> = emptyMap(),
)
