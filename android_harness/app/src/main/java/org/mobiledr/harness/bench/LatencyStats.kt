package org.mobiledr.harness.bench

import kotlin.math.floor
import kotlin.math.sqrt

/** `mobiledr.bench.worker.latency_stats`: numpy's definitions (population std, linear percentiles). */
object LatencyStats {
    fun of(nanos: LongArray): Latency {
        require(nanos.isNotEmpty()) { "no timings" }
        val ms = DoubleArray(nanos.size) { nanos[it] / 1e6 }
        val mean = ms.sum() / ms.size
        val std = sqrt(ms.sumOf { (it - mean) * (it - mean) } / ms.size)
        val sorted = ms.sortedArray()
        return Latency(
            mean = mean, std = std, min = sorted.first(), max = sorted.last(),
            p50 = percentile(sorted, 50.0), p90 = percentile(sorted, 90.0), p99 = percentile(sorted, 99.0),
            cv = if (mean > 0) std / mean else 0.0,
        )
    }

    /** `np.percentile(values, q)` with the default linear method, on sorted values. */
    fun percentile(sorted: DoubleArray, q: Double): Double {
        val n = sorted.size
        val quantile = q / 100
        val virtual = n * quantile + (1.0 + quantile * (1 - 1 - 1)) - 1
        val lo = floor(virtual).toInt().coerceIn(0, n - 1)
        val hi = (lo + 1).coerceIn(0, n - 1)
        val t = virtual - floor(virtual)
        val a = sorted[lo]
        val b = sorted[hi]
        val diff = b - a
        return if (t >= 0.5) b - diff * (1 - t) else a + diff * t
    }
}
