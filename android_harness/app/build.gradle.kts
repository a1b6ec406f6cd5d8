plugins {
    // AGP 9 compiles the Kotlin sources itself (built-in Kotlin); no kotlin-android plugin.
    alias(libs.plugins.android.application)
}

android {
    namespace = "org.mobiledr.harness" // mobiledr.bench.contract.APP_PACKAGE
    compileSdk = 36

    defaultConfig {
        applicationId = "org.mobiledr.harness"
        minSdk = 26 // Android 8.0: java.time, and every phone a clinic is likely to use
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0" // written as mobiledr_version in results.json; keep it equal to mobiledr's version
        // Recorded in results.json's device facts: which runtimes measured the rows.
        buildConfigField("String", "EXECUTORCH_VERSION", "\"${libs.versions.executorch.get()}\"")
        buildConfigField("String", "ONNXRUNTIME_VERSION", "\"${libs.versions.onnxruntime.get()}\"")
        ndk {
            // The ABIs the ExecuTorch and ONNX Runtime AARs ship: phones and x86_64 emulators.
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildFeatures {
        buildConfig = true
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17 // built-in Kotlin takes its jvmTarget from here
    }

    androidResources {
        // A bundle packaged under app/src/main/assets/bundle is copied out byte for byte.
        noCompress += listOf("pte", "bpte", "ort", "onnx", "npz")
    }
}

dependencies {
    implementation(libs.executorch.android)
    implementation(libs.onnxruntime.android)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.exifinterface)
}
