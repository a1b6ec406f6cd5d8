"""The contract between ``mobiledr bench`` and the on-phone runners: where files go on an Android
device, the native runner's name, and the harness app's component and intent extras. The Kotlin and
Swift harnesses read the same names (tests compare both sides)."""

from __future__ import annotations

DEVICE_DIR = "/data/local/tmp/mobiledr"  # adb shell mode: runner, libraries, bundle files
NATIVE_RUNNER = "mobiledr_runner"  # the C++ benchmark program in android_harness/native/

APP_PACKAGE = "org.mobiledr.harness"
APP_ACTIVITY = "org.mobiledr.harness.BenchmarkActivity"
APP_RESULTS = "files/results.json"  # relative to the app's data folder, read with run-as
# Intent extras the benchmark activity reads: name -> am start flag (--es string, --ei int).
APP_EXTRAS: dict[str, str] = {
    "bundle": "--es",  # folder on the device holding manifest.json and the artifacts
    "artifact": "--es",  # a manifest artifact file name, e.g. model.xnnpack-int8.pte
    "runtime": "--es",  # executorch | onnxruntime
    "iterations": "--ei",
    "warmup": "--ei",
    "threads": "--ei",
}

# iOS (ios_harness/README.md): the app ``xcrun devicectl`` launches, the files it reads and writes in
# its Documents folder, and the launch arguments Sources/MobileDRKit/Bench/LaunchArguments.swift parses.
IOS_APP_BUNDLE_ID = "org.mobiledr.harness"
IOS_DOCUMENTS = "Documents"  # the app data container's folder devicectl copies to and from
IOS_BUNDLE = "bundle"  # the bundle folder, relative to Documents (--bundle takes this relative path)
IOS_RESULTS = "results.json"  # in Documents: deleted at launch, written atomically at the end of a run
IOS_ERROR = "error.txt"  # in Documents: written instead when a launch cannot run
IOS_ARGUMENTS = ("--bundle", "--artifact", "--compute-units", "--iterations", "--warmup")
# --compute-units of mobiledr bench -> the app's names (Runners.computeUnits, Core ML's MLComputeUnits).
IOS_COMPUTE_UNITS: dict[str, str] = {"cpu": "cpuOnly", "gpu": "cpuAndGPU", "ane": "cpuAndNeuralEngine", "all": "all"}
