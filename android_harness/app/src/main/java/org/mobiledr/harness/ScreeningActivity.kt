package org.mobiledr.harness

import android.net.Uri
import android.os.Bundle
import android.util.Log
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.content.FileProvider
import java.io.File
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.mobiledr.harness.model.Runtimes
import org.mobiledr.harness.model.Screening
import org.mobiledr.harness.model.ScreeningModel
import org.mobiledr.harness.platform.BundleLocator
import org.mobiledr.harness.platform.Images
import org.mobiledr.harness.preprocess.ImageRejected

/**
 * The screening screen: pick or capture a fundus photograph and show the prediction, the calibrated
 * probability, the heatmap over the crop the model saw, and the OOD / quality verdict. All model work
 * is in [ScreeningModel] on one background thread; this class only moves pixels and text.
 */
class ScreeningActivity : ComponentActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var model: ScreeningModel? = null
    private lateinit var photo: ImageView
    private lateinit var verdict: TextView
    private lateinit var details: TextView
    private lateinit var captureUri: Uri

    private val pick = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri -> uri?.let(::analyze) }
    private val capture = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved -> if (saved) analyze(captureUri) }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_screening)
        photo = findViewById(R.id.photo)
        verdict = findViewById(R.id.verdict)
        details = findViewById(R.id.details)
        val captures = File(cacheDir, "captures").apply { mkdirs() }
        captureUri = FileProvider.getUriForFile(this, "$packageName.files", File(captures, "capture.jpg"))
        findViewById<Button>(R.id.pick).setOnClickListener {
            pick.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.capture).setOnClickListener { capture.launch(captureUri) }
        verdict.setText(R.string.loading_model)
        val explicit = intent.getStringExtra("bundle")
        worker.execute {
            val bundle = BundleLocator.find(this, explicit)
            val text = if (bundle == null) {
                getString(R.string.no_bundle)
            } else {
                try {
                    val opened = ScreeningModel.open(bundle, Runtimes).also { model = it }
                    getString(R.string.model_ready, opened.manifest.modelName, opened.artifact.file, opened.artifact.runtime)
                } catch (e: Exception) {
                    Log.e(TAG, "cannot open $bundle", e)
                    getString(R.string.model_failed, e.message)
                }
            }
            runOnUiThread { verdict.text = text }
        }
    }

    private fun analyze(uri: Uri) {
        verdict.setText(R.string.analysing)
        details.text = ""
        worker.execute {
            val model = model
            if (model == null) {
                runOnUiThread { verdict.setText(R.string.no_model) }
                return@execute
            }
            try {
                val result = model.screen(Images.decodeUri(contentResolver, uri))
                val overlay = result.heatmap?.let { Images.heatmapOverlay(result.crop.image, it) } ?: Images.toBitmap(result.crop.image)
                runOnUiThread {
                    photo.setImageBitmap(overlay)
                    show(result)
                }
            } catch (e: ImageRejected) {
                runOnUiThread { verdict.text = getString(R.string.ungradable, e.message) }
            } catch (e: Exception) {
                Log.e(TAG, "screening failed", e)
                runOnUiThread { verdict.text = getString(R.string.screening_failed, e.message) }
            }
        }
    }

    private fun show(result: Screening) {
        val p = result.prediction
        val ood = result.ood
        verdict.text = when {
            !result.gradable -> getString(R.string.out_of_distribution)
            p.refer == true -> getString(R.string.refer, p.label)
            p.refer == false -> getString(R.string.no_referral, p.label)
            else -> getString(R.string.predicted, p.label)
        }
        val lines = mutableListOf(
            if (p.threshold != null) {
                getString(R.string.probability_vs_threshold, fmt(p.probability), fmt(p.threshold))
            } else {
                getString(R.string.probability, fmt(p.probability))
            },
        )
        if (ood != null) lines += getString(R.string.ood_line, fmt(ood.score), fmt(ood.threshold))
        lines += getString(R.string.disclaimer)
        details.text = lines.joinToString("\n")
    }

    override fun onDestroy() {
        worker.execute { model?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun fmt(v: Double) = String.format(Locale.ROOT, "%.3f", v)

    companion object {
        private const val TAG = "mobiledr"
    }
}
