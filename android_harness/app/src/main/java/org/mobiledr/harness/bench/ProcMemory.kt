package org.mobiledr.harness.bench

import java.io.File

/** Resident memory of this process from Linux's `/proc/self/status` (Android is Linux), in MB. */
object ProcMemory {
    /** Resident now (`VmRSS`). */
    fun rssMb(): Double? = field("VmRSS:")

    /** Peak resident so far (`VmHWM`). */
    fun peakRssMb(): Double? = field("VmHWM:")

    private fun field(name: String): Double? = try {
        File("/proc/self/status").readLines().firstOrNull { it.startsWith(name) }?.split(Regex("\\s+"))?.get(1)?.toDouble()?.div(1024)
    } catch (e: java.io.IOException) {
        null
    }
}

/** Proportional set size, which only the platform can measure (`Debug.MemoryInfo` on Android). */
fun interface PssProbe {
    fun pssMb(): Double?
}
