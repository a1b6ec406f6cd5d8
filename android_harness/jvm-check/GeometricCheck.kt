// Runs the app's geometric stage (app/src/main/java/org/mobiledr/harness/preprocess) on a desktop JVM:
//
//     kotlinc ../app/src/main/java/org/mobiledr/harness/preprocess/*.kt GeometricCheck.kt -include-runtime -d check.jar
//     java -jar check.jar SIZE MODE CROP_TOLERANCE ORIGINAL.png EXPECTED.png [ORIGINAL.png EXPECTED.png ...]
//
// prints one line per pair: "max_abs_difference cx cy r" (circle "- - -" for OCT; "rejected: why").
// tests/test_harness_apps.py compares it with mobiledr.data.geometry on the golden pairs.

import java.io.File
import javax.imageio.ImageIO
import org.mobiledr.harness.preprocess.Geometric
import org.mobiledr.harness.preprocess.GeometricSpec
import org.mobiledr.harness.preprocess.ImageRejected
import org.mobiledr.harness.preprocess.RgbImage

fun decodePng(file: File): RgbImage {
    val image = ImageIO.read(file) ?: error("$file: not an image")
    return RgbImage.fromArgb(image.width, image.height, image.getRGB(0, 0, image.width, image.height, null, 0, image.width))
}

fun main(args: Array<String>) {
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
