package org.mobiledr.harness.platform

import android.app.ActivityManager
import android.content.Context
import android.os.Build
import android.os.Debug
import android.os.PowerManager
import org.mobiledr.harness.BuildConfig
import org.mobiledr.harness.bench.DeviceInfo

/** The phone, for the results' `devices` entry, and its memory counters. */
object DeviceFacts {
    fun info(context: Context): DeviceInfo {
        val memory = ActivityManager.MemoryInfo().also { (context.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(it) }
        val facts = linkedMapOf<String, Any>(
            "manufacturer" to Build.MANUFACTURER,
            "model" to Build.MODEL,
            "android" to Build.VERSION.RELEASE,
            "sdk_int" to Build.VERSION.SDK_INT,
            "abi" to (Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown"),
            "cores" to Runtime.getRuntime().availableProcessors(),
            "ram_mb" to memory.totalMem / (1 shl 20),
            "app_version" to BuildConfig.VERSION_NAME,
            "executorch" to BuildConfig.EXECUTORCH_VERSION,
            "onnxruntime" to BuildConfig.ONNXRUNTIME_VERSION,
        )
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) facts["soc"] = "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}"
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            val power = context.getSystemService(Context.POWER_SERVICE) as PowerManager
            facts["thermal_status"] = THERMAL.getOrElse(power.currentThermalStatus) { "unknown" } // a hot phone runs slower
        }
        return DeviceInfo("${Build.MANUFACTURER} ${Build.MODEL}", "android", facts)
    }

    private val THERMAL = listOf("none", "light", "moderate", "severe", "critical", "emergency", "shutdown") // PowerManager.THERMAL_STATUS_*

    /** Proportional set size of this process, MB (Java heap, native heap, mapped model files). */
    fun pssMb(): Double = Debug.MemoryInfo().also { Debug.getMemoryInfo(it) }.totalPss / 1024.0
}
