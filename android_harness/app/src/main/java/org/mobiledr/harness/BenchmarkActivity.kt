package org.mobiledr.harness

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.util.Log
import android.view.WindowManager
import android.widget.TextView
import java.io.File
import java.time.Instant
import java.time.temporal.ChronoUnit
import kotlin.concurrent.thread
import org.mobiledr.harness.bench.BenchRequest
import org.mobiledr.harness.bench.Benchmark
import org.mobiledr.harness.bench.PssProbe
import org.mobiledr.harness.bench.ResultsWriter
import org.mobiledr.harness.model.Runtimes
import org.mobiledr.harness.platform.DeviceFacts
import org.mobiledr.harness.platform.Images

/**
 * The on-phone half of `mobiledr bench --device android --mode app`, started with
 *
 *     adb shell am start -W -n org.mobiledr.harness/.BenchmarkActivity \
 *         --es bundle /data/local/tmp/mobiledr/bundle --es artifact model.xnnpack-fp32.pte \
 *         --es runtime executorch --ei iterations 50 --ei warmup 10 --ei threads 4
 *
 * (the extras are `mobiledr.bench.contract.APP_EXTRAS`). It deletes `files/results.json`, runs the
 * self-checks and the measurement on a background thread, writes `files/results.json` atomically and
 * finishes. A request it cannot run at all (no bundle) leaves `files/error.txt` instead.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val status = TextView(this).apply { setPadding(48, 48, 48, 48) }
        setContentView(status)
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON) // no dimming or sleep mid-run
        if (savedInstanceState != null) return // recreated (the manifest keeps rotations from doing it): the first run goes on
        val results = File(filesDir, RESULTS)
        val error = File(filesDir, ERROR)
        results.delete()
        error.delete()
        thread(name = "mobiledr-bench") {
            val message = try {
                val request = benchRequest(intent)
                status.post { status.text = getString(R.string.bench_running, request.artifact ?: "all artifacts") }
                val benchmark = Benchmark(
                    bundle = File(request.bundle),
                    device = DeviceFacts.info(this),
                    decodePng = Images::decodeFile,
                    pss = PssProbe { DeviceFacts.pssMb() },
                    runners = Runtimes,
                    log = { Log.i(TAG, it) },
                )
                val created = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()
                ResultsWriter.write(benchmark.run(request, BuildConfig.VERSION_NAME, created), results)
                "results written: ${results.path}"
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                error.writeText("${e.javaClass.simpleName}: ${e.message}\n")
                "error: ${e.message} (${error.path})"
            }
            Log.i(TAG, message)
            runOnUiThread {
                status.text = message
                finish()
            }
        }
    }

    companion object {
        const val TAG = "mobiledr"
        const val RESULTS = "results.json" // mobiledr.bench.contract.APP_RESULTS, under the app's files/
        const val ERROR = "error.txt"

        /** The intent extras, names and types exactly as `mobiledr.bench.contract.APP_EXTRAS`. */
        fun benchRequest(intent: Intent): BenchRequest = BenchRequest(
            bundle = intent.getStringExtra("bundle") ?: throw IllegalArgumentException("missing extra: --es bundle <bundle folder on the device>"),
            artifact = intent.getStringExtra("artifact"),
            runtime = intent.getStringExtra("runtime"),
            iterations = intent.getIntExtra("iterations", 50),
            warmup = intent.getIntExtra("warmup", 10),
            threads = intent.getIntExtra("threads", 1),
        )
    }
}
