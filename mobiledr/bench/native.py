"""The native runner (``android_harness/native/``): building it with CMake against the executorch
wheel, the arguments it takes, and reading its one JSON line back into a bench row."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
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
# --abi arm64: linux-aarch64 (glibc), cross-built with Debian's g++-aarch64-linux-gnu against the aarch64
# executorch wheel, run here under qemu-aarch64-static: ARM's NEON (and SVE) kernels on an x86 machine.
# Not an Android binary (a phone needs the NDK build, android_harness/native/README.md).
ARM64 = "linux-aarch64"
ABIS = {"host": "host", "arm64": ARM64, ARM64: ARM64}
ARM64_TRIPLE = "aarch64-linux-gnu"
ARM64_SYSROOT = Path("/usr") / ARM64_TRIPLE  # Debian's libc6-arm64-cross, which g++-aarch64-linux-gnu pulls in
ARM64_WHEEL_PLATFORM = "manylinux_2_28_aarch64"
ARM64_TOOLCHAIN = SOURCE / "cmake" / "aarch64-linux-gnu.toolchain.cmake"
ARM64_HINT = "Debian: apt-get install g++-aarch64-linux-gnu qemu-user-static (make native-arm64 does it)"
# The CPU qemu emulates (QEMU_CPU overrides): an Armv9-A core with SVE2, dot product and i8mm, as in
# current phones, but without SME: with it, Debian 12's qemu 7.2 moves the int8 XNNPACK results much
# further from x86's than any other CPU model (benchmarks/results/arm64_parity.md).
QEMU_CPU = "max,sme=off"
WHEEL_CACHE = BUILD_ROOT.parent / "wheels"


def built_runner(abi: str = "host") -> Path | None:
    """The runner built for ``abi`` (``host``: this machine; ``arm64``: linux-aarch64) under
    build/native/<abi>/, or None."""
    path = BUILD_ROOT / ABIS.get(abi, abi) / NATIVE_RUNNER
    return path if path.is_file() else None


def _native_abi(abi: str) -> str:
    if abi not in ABIS:
        raise MobiledrError(f"unknown --abi {abi!r}: host (this machine) or arm64 (linux-aarch64, run under qemu)")
    return ABIS[abi]


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


def build_native(abi: str = "host") -> Path:
    """Configure (once) and build the runner against an executorch wheel's CMake package: for this
    machine against the installed wheel, or for ``arm64`` (linux-aarch64) with the cross compiler
    against the aarch64 wheel of the same version (downloaded once into build/wheels/); returns the
    binary. Re-running only rebuilds what changed. (Android: see android_harness/native/README.md.)"""
    abi = _native_abi(abi)
    if not (SOURCE / "CMakeLists.txt").is_file():
        raise MobiledrError(f"{SOURCE}: the native runner's sources are missing (a source checkout of mobiledr is needed)")
    build = BUILD_ROOT / abi
    cmake = _cmake()
    if abi == ARM64:
        if shutil.which(f"{ARM64_TRIPLE}-g++") is None:
            raise MobiledrError(f"{ARM64_TRIPLE}-g++ not found: {ARM64_HINT}")
        configure = [f"-DCMAKE_PREFIX_PATH={aarch64_package()}", f"-DCMAKE_TOOLCHAIN_FILE={ARM64_TOOLCHAIN}"]
    else:
        import executorch

        configure = [f"-DCMAKE_PREFIX_PATH={executorch.__path__[0]}"]
    if not (build / "CMakeCache.txt").is_file():
        _step([cmake, "-S", str(SOURCE), "-B", str(build), *configure, "-DCMAKE_BUILD_TYPE=Release"], "configure")
    _step([cmake, "--build", str(build), "-j", "2"], "build")
    binary = built_runner(abi)
    if binary is None:
        raise MobiledrError(f"the native runner build finished but {build / NATIVE_RUNNER} is missing")
    return binary


def aarch64_package(cache: Path = WHEEL_CACHE) -> Path:
    """The aarch64 executorch wheel of the installed version, unzipped once under build/
    (``.../executorch``, the folder holding ``lib/cmake/executorch``): ``pip download`` fetches it
    into ``cache`` on first use (the only network access, at build time)."""
    from importlib.metadata import version

    wanted = version("executorch")
    target = BUILD_ROOT.parent / f"executorch-{wanted}-{ARM64_WHEEL_PLATFORM}"
    if (target / "executorch" / "lib" / "cmake" / "executorch" / "executorch-config.cmake").is_file():
        return target / "executorch"
    python = f"{sys.version_info.major}{sys.version_info.minor}"
    pattern = f"executorch-{wanted}-cp{python}-cp{python}-{ARM64_WHEEL_PLATFORM}.whl"
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        _step([sys.executable, "-m", "pip", "download", "--quiet", "--platform", ARM64_WHEEL_PLATFORM, "--only-binary=:all:", "--no-deps",
               "--python-version", python, "--dest", str(cache), f"executorch=={wanted}"], f"download of the aarch64 executorch {wanted} wheel")  # fmt: skip
        wheels = sorted(cache.glob(pattern))
        if not wheels:
            raise MobiledrError(f"pip downloaded no {pattern} into {cache}")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(("executorch/lib/", "executorch/include/", "executorch/share/", "executorch/devtools/bundled_program/schema/"))]
            wheel.extractall(staging, members)
    except zipfile.BadZipFile:
        shutil.rmtree(staging, ignore_errors=True)
        raise MobiledrError(f"{wheels[-1]}: not a wheel (delete it and build again)") from None
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target / "executorch"


def runner_command(binary: Path) -> list[str]:
    """How to start ``binary`` here: itself, or for an aarch64 binary on another machine
    ``qemu-aarch64-static -L <aarch64 sysroot> -cpu QEMU_CPU`` in front (QEMU_CPU from the environment wins)."""
    binary = Path(binary)
    if elf_abi(binary) != "arm64-v8a" or platform.machine().lower() in ("aarch64", "arm64"):
        return [str(binary)]
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        raise MobiledrError(f"{binary}: an aarch64 program; running it here needs qemu-aarch64-static ({ARM64_HINT})")
    return [qemu, "-L", str(ARM64_SYSROOT), "-cpu", os.environ.get("QEMU_CPU", QEMU_CPU), str(binary)]


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
                warmup: int = 10, iters: int = 50, min_time: float = 0.0, rtol: float | None = None, atol: float | None = None,
                tolerances: dict[str, dict[str, float]] | None = None, output_names: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """The runner's arguments after its path (paths as strings, so they may be paths on a phone).
    ``tolerances`` (``{output: {max_abs, max_rel}}``, a manifest artifact's ``self_check``) become one
    ``--tolerance NAME=MAX_ABS,MAX_REL`` per output of ``output_names``, in order (``-``: no limit)."""
    args = ["--model", model, "--threads", str(threads), "--warmup", str(warmup), "--iters", str(iters), "--min-time", str(min_time)]
    optional = {"--inputs": inputs, "--outputs": outputs, "--bundled": bundled, "--rtol": rtol, "--atol": atol}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    if tolerances is not None:
        unknown = sorted(set(tolerances) - set(output_names))
        if unknown or not output_names:
            raise MobiledrError(f"self-check limits for {', '.join(unknown) or 'outputs'} but the outputs are {', '.join(output_names) or 'not given'}")
        for name in output_names:
            limit = tolerances.get(name, {})
            args += ["--tolerance", f"{name}={limit.get('max_abs', '-')!s},{limit.get('max_rel', '-')!s}"]
    return args


def artifact_files(entry: dict[str, Any]) -> list[str]:
    """The bundle files the runner reads for an artifact: the program and its BundledProgram, if any."""
    bundled = entry["extras"].get("bundled_program")
    return [entry["file"], *([bundled] if bundled else [])]


def self_check_limits(entry: dict[str, Any], output_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """The per-output limits of an artifact's self-check: the manifest's ``self_check`` (what the apps
    read), or for a bundle exported before it existed the parity policy's, computed the same way."""
    if "self_check" in entry:
        return entry["self_check"]
    from mobiledr.parity.policy import Policy

    return Policy.load().self_check(entry["precision"], output_names)


def artifact_args(entry: dict[str, Any], folder: str, inputs: str, *, output_names: Sequence[str], threads: int, warmup: int, iters: int,
                  min_time: float) -> list[str]:  # fmt: skip
    """``runner_args`` for one bundle artifact whose files lie under ``folder`` (the bundle here, or its
    copy on a phone): the BundledProgram self-check with the parity policy's per-output limits for its
    precision (the manifest's ``self_check``), the ones ``mobiledr parity`` applies to the golden vectors."""
    model, *bundled = [f"{folder}/{file}" for file in artifact_files(entry)]
    limits = self_check_limits(entry, output_names) if bundled else None
    return runner_args(model, inputs=inputs, bundled=bundled[0] if bundled else None, threads=threads, warmup=warmup, iters=iters,
                       min_time=min_time, tolerances=limits, output_names=output_names)  # fmt: skip


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
    from mobiledr.bench.worker import latency_fields

    latencies = result.get("latencies_ms")
    if not isinstance(latencies, list) or not latencies or not all(isinstance(v, int | float) for v in latencies):
        return {"status": "failed", "error": "runner printed no per-iteration latencies (latencies_ms): rebuild it (mobiledr bench --build-native)"}
    # the statistics every runtime's rows get, computed here once
    row = {"status": "ok", "load_ms": result["load_ms"], "first_ms": result["first_ms"], **latency_fields(latencies)}
    row |= {key: result[key] for key in ("baseline_rss_mb", "rss_mb", "peak_rss_mb")}
    if "checks" in result:
        row["checks"] = result["checks"]
    if returncode == EXIT_SELF_CHECK_FAILED:
        check = result.get("checks", {}).get("bundled_program", {})
        row = {"status": "failed", "error": f"BundledProgram self-check failed: {check.get('detail', 'outside the tolerance')} (max abs error {check.get('max_abs_error', float('nan')):.3g})",
               "checks": result.get("checks", {})}  # fmt: skip
    return row
