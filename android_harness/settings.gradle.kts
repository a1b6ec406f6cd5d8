pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // AndroidX, the Android Gradle plugin
        mavenCentral() // org.pytorch:executorch-android, com.microsoft.onnxruntime:onnxruntime-android
    }
}

rootProject.name = "mobiledr-harness"
include(":app")
