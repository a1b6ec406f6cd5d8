// The app's plain Kotlin (everything under app/src/main/java except platform/, the two activities and
// model/Runtimes.kt, ExecuTorchRunner.kt, OrtRunner.kt, which need Android or the runtime AARs) run
// on a desktop JVM. tests/test_kotlin_jvm.py compiles it once per session and runs every command:
//
//     kotlinc $(the plain sources) JvmCheck.kt -cp json.jar -d check.jar   # json.jar: Android's org.json (Debian libandroid-json-java)
//     java -cp check.jar:json.jar:kotlin-stdlib.jar JvmCheckKt COMMAND ...
//
// geometric SIZE MODE CROP_TOLERANCE ORIGINAL.png EXPECTED.png [...]
//     the geometric stage on each original against its expected image: one line per pair,
//     "max_abs_difference cx cy r" (circle "- - -" for OCT; "rejected: why")
// manifest MANIFEST.json
//     Manifest.parse, printed back as JSON (the fields the app reads)
// bench BUNDLE OUTPUTS.npz RESULTS.json [ARTIFACT|- [ITERATIONS [WARMUP]]]
//     Benchmark.run over the bundle (integrity, geometric and golden-vector self-checks, timing) with a
//     runner that answers each golden image with the outputs recorded in OUTPUTS.npz (keys
//     "<artifact>/<output>", one row per golden image, from the desktop runtime); ResultsWriter writes RESULTS.json
// decide MANIFEST.json OUTPUTS.npz
//     ScreeningModel.decide and the OOD gate on each row of OUTPUTS.npz ("<output>" keys): "class refer ood_ok"

import java.io.File
import javax.imageio.ImageIO
import org.json.JSONArray
import org.json.JSONObject
import org.mobiledr.harness.bench.BenchRequest
import org.mobiledr.harness.bench.Benchmark
import org.mobiledr.harness.bench.DeviceInfo
import org.mobiledr.harness.bench.ResultsWriter
import org.mobiledr.harness.bundle.Manifest
import org.mobiledr.harness.bundle.NpyArray
import org.mobiledr.harness.bundle.Npz
import org.mobiledr.harness.model.InputTensor
import org.mobiledr.harness.model.Runner
import org.mobiledr.harness.model.RunnerFactory
import org.mobiledr.harness.model.ScreeningModel
import org.mobiledr.harness.preprocess.Geometric
import org.mobiledr.harness.preprocess.GeometricSpec
import org.mobiledr.harness.preprocess.ImageRejected
import org.mobiledr.harness.preprocess.RgbImage

fun decodePng(file: File): RgbImage {
    val image = ImageIO.read(file) ?: error("$file: not an image")
    return RgbImage.fromArgb(image.width, image.height, image.getRGB(0, 0, image.width, image.height, null, 0, image.width))
}

fun geometric(args: List<String>) {
    val spec = GeometricSpec(args[0].toInt(), args[1], args[2].toInt())
    for (i in 3 until args.size step 2) {
        try {
            val result = Geometric.apply(decodePng(File(args[i])), spec)
            val circle = result.circle?.let { "${it.cx} ${it.cy} ${it.r}" } ?: "- - -"
            println("${result.image.maxAbsDifference(decodePng(File(args[i + 1])))} $circle")
        } catch (e: ImageRejected) {
            println("rejected: ${e.message}")
        }
    }
}

fun manifest(args: List<String>) {
    val m = Manifest.parse(File(args[0]).readText())
    val artifacts = JSONArray(m.artifacts.map { a ->
        JSONObject().put("file", a.file).put("format", a.format).put("kind", a.kind).put("runtime", a.runtime).put("backend", a.backend)
            .put("precision", a.precision).put("size_bytes", a.sizeBytes).put("sha256", a.sha256).put("params", a.params).put("macs", a.macs)
            .put("input_type", a.inputType).put("output_names", JSONObject(a.outputNames)).put("extras", JSONObject(a.extras))
            .put("self_check", JSONObject(a.selfCheck.mapValues { (_, l) -> JSONObject().apply { l.maxAbs?.let { put("max_abs", it) }; l.maxRel?.let { put("max_rel", it) } } }))
    })
    val d = m.decision
    val out = JSONObject()
        .put("mobiledr_version", m.mobiledrVersion).put("model", JSONObject().put("name", m.modelName).put("input_size", m.inputSize))
        .put("labels", JSONArray(m.labels)).put("label_scheme", m.labelScheme)
        .put("decision", JSONObject().put("rule", d.rule).put("threshold", d.threshold ?: JSONObject.NULL).put("positive_index", d.positiveIndex ?: JSONObject.NULL).put("temperature", d.temperature))
        .put("ood", m.ood?.let { JSONObject().put("output", it.output).put("threshold", it.threshold).put("rule", it.rule) } ?: JSONObject.NULL)
        .put("geometric", JSONObject().put("size", m.geometric.size).put("mode", m.geometric.mode).put("crop_tolerance", m.geometric.cropTolerance))
        .put("input", JSONObject().put("name", m.input.name).put("shape", JSONArray(m.input.shape)))
        .put("outputs", JSONArray(m.outputs.map { JSONObject().put("name", it.name).put("shape", JSONArray(it.shape)) }))
        .put("artifacts", artifacts)
        .put("files", JSONArray(m.files.map { JSONObject().put("file", it.file).put("size_bytes", it.sizeBytes).put("sha256", it.sha256) }))
        .put("golden", JSONObject().put("vectors", m.golden.vectors).put("geometric", m.golden.geometric).put("bundled_program", m.golden.bundledProgram ?: JSONObject.NULL)
            .put("count", m.golden.count).put("geometric_max_abs_difference", m.golden.geometricMaxAbsDifference ?: JSONObject.NULL))
    println(out.toString())
}

/** Answers each golden image with the outputs the desktop runtime gave for it (recorded in an .npz). */
class RecordedRunner(private val images: NpyArray, private val outputs: Map<String, NpyArray>) : Runner {
    override val runtime = "recorded"

    override fun load() {}

    override fun run(input: InputTensor): Map<String, FloatArray> {
        val values = FloatArray(input.buffer.capacity()).also { input.buffer.rewind(); input.buffer.get(it); input.buffer.rewind() }
        val index = (0 until images.shape[0]).firstOrNull { images.item(it).contentEquals(values) } ?: error("an input that is not a golden image")
        return outputs.mapValues { (_, array) -> array.item(index) }
    }

    override fun close() {}
}

fun bench(args: List<String>) {
    val bundle = File(args[0])
    val recorded = Npz.read(File(args[1]))
    val runners = RunnerFactory { _, manifest, artifact, _ ->
        val images = Npz.read(File(bundle, manifest.golden.vectors)).getValue("image")
        RecordedRunner(images, manifest.outputNames.associateWith { recorded["${artifact.file}/$it"] ?: error("${args[1]}: no ${artifact.file}/$it") })
    }
    val note = "written by android_harness's Kotlin code (Benchmark, SelfChecks, ResultsWriter) on a JVM with a runner replaying the desktop " +
        "runtimes' outputs; the timings are of the replay, not of a phone"
    val device = DeviceInfo("jvm-replay", "android", mapOf("note" to note, "jvm" to System.getProperty("java.version")))
    val benchmark = Benchmark(bundle, device, ::decodePng, runners = runners)
    val artifact = args.getOrNull(3)?.takeIf { it != "-" }
    val request = BenchRequest(args[0], artifact, null, args.getOrNull(4)?.toInt() ?: 3, args.getOrNull(5)?.toInt() ?: 1, 1)
    val report = benchmark.run(request, "0.1.0", java.time.Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS).toString())
    ResultsWriter.write(report, File(args[2]))
}

fun decide(args: List<String>) {
    val m = Manifest.parse(File(args[0]).readText())
    val outputs = Npz.read(File(args[1]))
    val rows = outputs.values.first().shape[0]
    for (i in 0 until rows) {
        val row = outputs.mapValues { (_, a) -> a.item(i) }
        val prediction = ScreeningModel.decide(m, row)
        val ood = ScreeningModel.oodVerdict(m, row)
        println("${prediction.classIndex} ${prediction.refer} ${ood?.outOfDistribution}")
    }
}

fun main(args: Array<String>) {
    val rest = args.drop(1)
    when (args.firstOrNull()) {
        "geometric" -> geometric(rest)
        "manifest" -> manifest(rest)
        "bench" -> bench(rest)
        "decide" -> decide(rest)
        else -> {
            System.err.println("usage: JvmCheckKt geometric|manifest|bench|decide ...")
            kotlin.system.exitProcess(2)
        }
    }
}
