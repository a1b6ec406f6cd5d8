"""The native runner cross-built for linux-aarch64 (Debian's g++-aarch64-linux-gnu against the aarch64
executorch wheel) and run under qemu-aarch64-static: both XNNPACK programs of the test bundle on ARM's
NEON kernels, their BundledProgram self-checks and their outputs against the x86 runs. `make test`
installs the cross compiler and qemu (make arm64-deps); nothing here is skipped without them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mobiledr.bench.native import QEMU_CPU, artifact_args, build_native, elf_abi, parse_runner_output, runner_args, runner_command
from mobiledr.export.manifest import Manifest
from mobiledr.parity.policy import Policy
from mobiledr.runners import artifact_runner
from mobiledr.runners.native import NativeRunner

pytestmark = pytest.mark.slow
# fp32 on another instruction set: only the accumulation order (FMA, vector widths) may differ, a few
# float32 roundings per layer relative to the output's magnitude.
FP32_RELATIVE = 1e-4


@pytest.fixture(scope="session")
def arm64_runner() -> Path:
    return build_native("arm64")


def _xnnpack(manifest: Manifest, precision: str) -> dict:
    return next(a for a in manifest.artifacts if a["kind"] == "pte" and a["backend"] == "xnnpack" and a["precision"] == precision)


def _run(command: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, check=False)


def _golden(bundle: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    with np.load(bundle / manifest.golden["vectors"]) as vectors:
        return {name: vectors[name] for name in vectors.files}


def _outputs(bundle: Path, manifest: Manifest, entry: dict, images: np.ndarray, abi: str) -> dict[str, np.ndarray]:
    runner = NativeRunner(bundle / entry["file"], tuple(manifest.output_names), threads=1, abi=abi)
    runner.load()
    return runner.run(images)


def test_the_runner_is_an_aarch64_program_run_under_qemu(arm64_runner: Path) -> None:
    assert elf_abi(arm64_runner) == "arm64-v8a"
    command = runner_command(arm64_runner)
    assert Path(command[0]).name.startswith("qemu-aarch64") and command[-1] == str(arm64_runner)
    assert command[command.index("-cpu") + 1] == QEMU_CPU and command[command.index("-L") + 1] == "/usr/aarch64-linux-gnu"
    assert build_native("arm64") == arm64_runner  # built: nothing to do but check


def test_fp32_self_check_and_outputs_on_arm64(tiny_bundle: Path, arm64_runner: Path, native_runner: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    entry = _xnnpack(manifest, "fp32")
    golden = _golden(tiny_bundle, manifest)
    arm = _outputs(tiny_bundle, manifest, entry, golden["image"], "arm64")
    x86 = _outputs(tiny_bundle, manifest, entry, golden["image"], "host")
    for name in manifest.output_names:
        scale = float(np.abs(golden[name]).max())
        difference = float(np.abs(arm[name] - x86[name]).max())
        assert arm[name].shape == golden[name].shape and difference <= FP32_RELATIVE * scale, f"{name}: ARM64 - x86 = {difference:.3g} (scale {scale:.3g})"

    # the BundledProgram self-check with the one (rtol, atol) pair `mobiledr parity` applies to it
    bpte = str(tiny_bundle / entry["extras"]["bundled_program"])
    rtol, atol = Policy.load().bundled_tolerances("fp32")
    done = _run(runner_command(arm64_runner), *runner_args(str(tiny_bundle / entry["file"]), bundled=bpte, iters=2, warmup=0, rtol=rtol, atol=atol))
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    assert done.returncode == 0 and row["checks"]["bundled_program"]["status"] == "passed", done.stderr[-500:]
    assert row["checks"]["bundled_program"]["cases"] == manifest.golden["count"] and row["iterations"] == 2

    # ... and with the per-output limits the phone applies (the manifest's self_check, as bench passes
    # them): its verdict is the parity policy's on the same ARM outputs against the PyTorch reference
    args = artifact_args(entry, str(tiny_bundle), str(tmp_path / "unused.npy"), output_names=manifest.output_names, threads=1, warmup=0, iters=1, min_time=0)
    args = [a for a in args if a not in ("--inputs", str(tmp_path / "unused.npy"))]
    assert args.count("--tolerance") == len(manifest.output_names)
    done = _run(runner_command(arm64_runner), *args)
    check = parse_runner_output(done.returncode, done.stdout, done.stderr)["checks"]["bundled_program"]
    errors = {name: {"max_abs": float(np.abs(arm[name] - golden[name]).max()),
                     "max_rel": float((np.abs(arm[name] - golden[name]) / np.maximum(np.abs(golden[name]), 1e-6)).max())}
              for name in manifest.output_names}  # fmt: skip
    verdicts = Policy.load().elementwise("fp32", {name: {**e, "cosine": 1.0, "sqnr_db": 99.0} for name, e in errors.items()})
    failing = [c.rule for c in verdicts if not c.ok]
    assert check["status"] == ("failed" if failing else "passed"), (check, failing)
    assert done.returncode == (3 if failing else 0)
    if failing:
        assert f"{failing[0].split('.', 1)[1]} max " in check["detail"]


def test_int8_self_check_and_outputs_on_arm64(tiny_bundle: Path, arm64_runner: Path, tmp_path: Path) -> None:
    """The int8 program's integer kernels on ARM against the same program on x86 (the Python
    runtime): a BundledProgram carrying the x86 outputs as its expected values, checked on ARM."""
    import torch
    from executorch.devtools import BundledProgram
    from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
    from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    manifest = Manifest.load(tiny_bundle)
    entry = _xnnpack(manifest, "int8")
    golden = _golden(tiny_bundle, manifest)
    with artifact_runner(tiny_bundle, manifest, entry, threads=1) as python:
        x86 = python.run(golden["image"])
    arm = _outputs(tiny_bundle, manifest, entry, golden["image"], "arm64")
    for name in manifest.output_names:
        scale = float(np.abs(x86[name]).max())
        np.testing.assert_allclose(arm[name], x86[name], rtol=0, atol=FP32_RELATIVE * scale + 1e-6, err_msg=name)
    positive = manifest.decision["positive_index"]
    threshold = manifest.decision["threshold"]
    assert np.array_equal(arm["probs"][:, positive] >= threshold, x86["probs"][:, positive] >= threshold)

    cases = [MethodTestCase(inputs=[torch.from_numpy(golden["image"][i : i + 1].copy())],
                            expected_outputs=[torch.from_numpy(x86[name][i : i + 1].copy()) for name in manifest.output_names])
             for i in range(len(golden["image"]))]  # fmt: skip
    program = BundledProgram(None, [MethodTestSuite(method_name="forward", test_cases=cases)], pte_file_path=str(tiny_bundle / entry["file"]))
    bpte = tmp_path / "int8.bpte"
    bpte.write_bytes(serialize_from_bundled_program_to_flatbuffer(program))
    limits = {name: {"max_abs": FP32_RELATIVE * float(np.abs(x86[name]).max()) + 1e-6} for name in manifest.output_names}
    args = runner_args(str(tiny_bundle / entry["file"]), bundled=str(bpte), iters=1, warmup=0, tolerances=limits, output_names=manifest.output_names)
    done = _run(runner_command(arm64_runner), *args)
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    assert done.returncode == 0 and row["checks"]["bundled_program"]["status"] == "passed", (row, done.stderr[-500:])
    assert row["checks"]["bundled_program"]["cases"] == len(cases)

    # expected heatmaps moved by 0.5 in the first case: the same check fails there, naming the output
    cases[0].expected_outputs[manifest.output_names.index("heatmap")] += 0.5
    program = BundledProgram(None, [MethodTestSuite(method_name="forward", test_cases=cases)], pte_file_path=str(tiny_bundle / entry["file"]))
    bpte.write_bytes(serialize_from_bundled_program_to_flatbuffer(program))
    done = _run(runner_command(arm64_runner), *args)
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    assert done.returncode == 3 and row["status"] == "failed"
    assert row["error"].startswith("BundledProgram self-check failed: case 0 of forward is outside the tolerance: heatmap max abs error 0.5")
