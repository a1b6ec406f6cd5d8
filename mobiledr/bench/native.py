"""The native runner (``android_harness/native/``): building it with CMake against the executorch
wheel, the arguments it takes, and reading its one JSON line back into a bench row."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mobiledr.bench.contract import NATIVE_RUNNER
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest

SOURCE = Path(__file__).resolve().parents[2] / "android_harness" / "native"
BUILD_ROOT = SOURCE.parents[1] / "build" / "native"
EXIT_SELF_CHECK_FAILED = 3  # the runner's exit code when the BundledProgram self-check fails
# ELF e_machine -> Android ABI name
ELF_ABIS = {0x3E: "x86_64", 0xB7: "arm64-v8a", 0x28: "armeabi-v7a", 0x03: "x86"}
FLATBUFFERS_HINT = "install flatbuffers (Debian: apt-get install flatbuffers-compiler libflatbuffers-dev; macOS: brew install flatbuffers)"


def built_runner(abi: str = "host") -> Path | None:
    """The runner built for ``abi`` (``host``: this machine) under build/native/<abi>/, or None."""
    path = BUILD_ROOT / abi / NATIVE_RUNNER
    return path if path.is_file() else None


def _cmake() -> str:
    beside = Path(sys.executable).with_name("cmake")  # pip's cmake in the project's environment
    found = str(beside) if beside.is_file() else shutil.which("cmake")
    if found is None:
        raise MobiledrError("cmake not found: pip install 'cmake>=3.28' (the dev extra has it)")
    return found


def _step(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()] or lines
        hint = f"; {FLATBUFFERS_HINT}" if any("flatc" in line.lower() or "flatbuffers" in line.lower() for line in errors) else ""
        raise MobiledrError(f"native runner {what} failed: {' | '.join(errors[-3:])}{hint}")


def build_native() -> Path:
    """Configure (once) and build the runner for this machine against the installed executorch wheel;
    returns the binary. Re-running only rebuilds what changed. (Android: see android_harness/native/README.md.)"""
    if not (SOURCE / "CMakeLists.txt").is_file():
        raise MobiledrError(f"{SOURCE}: the native runner's sources are missing (a source checkout of mobiledr is needed)")
    import executorch

    build = BUILD_ROOT / "host"
    cmake = _cmake()
    if not (build / "CMakeCache.txt").is_file():
        _step([cmake, "-S", str(SOURCE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={executorch.__path__[0]}", "-DCMAKE_BUILD_TYPE=Release"], "configure")
    _step([cmake, "--build", str(build), "-j", "2"], "build")
    binary = built_runner()
    if binary is None:
        raise MobiledrError(f"the native runner build finished but {BUILD_ROOT / 'host' / NATIVE_RUNNER} is missing")
    return binary


def elf_abi(path: Path) -> str:
    """The Android ABI name of an ELF executable (x86_64, arm64-v8a, armeabi-v7a, x86)."""
    header = Path(path).read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise MobiledrError(f"{path}: not an ELF executable")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    if machine not in ELF_ABIS:
        raise MobiledrError(f"{path}: unknown ELF machine {machine:#x}")
    return ELF_ABIS[machine]


def runner_args(model: str, *, inputs: str | None = None, outputs: str | None = None, bundled: str | None = None, threads: int = 1,
                warmup: int = 10, iters: int = 50, min_time: float = 0.0, rtol: float | None = None, atol: float | None = None) -> list[str]:  # fmt: skip
    """The runner's arguments after its path (paths as strings, so they may be paths on a phone)."""
    args = ["--model", model, "--threads", str(threads), "--warmup", str(warmup), "--iters", str(iters), "--min-time", str(min_time)]
    optional = {"--inputs": inputs, "--outputs": outputs, "--bundled": bundled, "--rtol": rtol, "--atol": atol}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    return args


def artifact_files(entry: dict[str, Any]) -> list[str]:
    """The bundle files the runner reads for an artifact: the program and its BundledProgram, if any."""
    bundled = entry["extras"].get("bundled_program")
    return [entry["file"], *([bundled] if bundled else [])]


def artifact_args(entry: dict[str, Any], folder: str, inputs: str, *, threads: int, warmup: int, iters: int, min_time: float) -> list[str]:
    """``runner_args`` for one bundle artifact whose files lie under ``folder`` (the bundle here, or its
    copy on a phone): the BundledProgram self-check with the parity policy's tolerances for its precision."""
    from mobiledr.parity.policy import Policy

    model, *bundled = [f"{folder}/{file}" for file in artifact_files(entry)]
    rtol, atol = Policy.load().bundled_tolerances(entry["precision"])
    return runner_args(model, inputs=inputs, bundled=bundled[0] if bundled else None, threads=threads, warmup=warmup, iters=iters,
                       min_time=min_time, rtol=rtol, atol=atol)  # fmt: skip


def inputs_npy(bundle: Path, manifest: Manifest, dest: Path, count: int = 1) -> Path:
    """Write the first ``count`` golden-vector images as the .npy the runner reads; returns ``dest``."""
    with np.load(Path(bundle) / manifest.golden["vectors"]) as vectors:
        np.save(dest, np.ascontiguousarray(vectors["image"][:count], dtype=np.float32))
    return dest


def _tail(stderr: str) -> str:
    """The runner's own error line if it printed one, else the last stderr lines (the runtime logs there too)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(f"{NATIVE_RUNNER}:")]
    return " | ".join(own[-1:] or lines[-3:])


def parse_runner_output(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """A bench row's measured fields from one run of the runner: ``status`` ok with the timings, memory
    and ``checks``, or failed with the exit code and the runner's last words."""
    result = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                break
            break
    if returncode not in (0, EXIT_SELF_CHECK_FAILED) or result is None:
        what = f"runner exited with code {returncode}" if returncode != 0 else "runner printed no result"
        return {"status": "failed", "error": f"{what}: {_tail(stderr) or 'no output'}"}
    row = {key: result[key] for key in ("load_ms", "first_ms", "latency_ms", "iterations", "throughput_ips", "baseline_rss_mb", "rss_mb", "peak_rss_mb")}
    row = {"status": "ok", **row}
    if "checks" in result:
        row["checks"] = result["checks"]
    if returncode == EXIT_SELF_CHECK_FAILED:
        check = result.get("checks", {}).get("bundled_program", {})
        row = {"status": "failed", "error": f"BundledProgram self-check failed: {check.get('detail', 'outside the tolerance')} (max abs error {check.get('max_abs_error', float('nan')):.3g})",
               "checks": result.get("checks", {})}  # fmt: skip
    return row
