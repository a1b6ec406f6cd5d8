"""The native runner (android_harness/native/, C++ over the ExecuTorch Module API), built here with
CMake against the executorch wheel: same outputs as the Python runtime, its BundledProgram self-check,
its errors, and the parser of its output (also on recorded outputs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mobiledr.bench.native import EXIT_SELF_CHECK_FAILED, elf_abi, parse_runner_output, runner_args
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest
from mobiledr.runners import artifact_runner

RECORDED = Path(__file__).parent / "fixtures" / "native"
pytestmark = pytest.mark.slow


def _xnnpack(manifest: Manifest) -> list[dict]:
    return [a for a in manifest.artifacts if a["kind"] == "pte" and a["backend"] == "xnnpack"]


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, check=False)


def test_outputs_equal_the_python_runtime_on_the_golden_vectors(tiny_bundle: Path, native_runner: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    with np.load(tiny_bundle / manifest.golden["vectors"]) as vectors:
        images = vectors["image"]
    assert _xnnpack(manifest)
    for entry in _xnnpack(manifest):  # fp32 and int8
        with artifact_runner(tiny_bundle, manifest, entry, threads=1, native=True) as native:
            got = native.run(images)
        with artifact_runner(tiny_bundle, manifest, entry, threads=1) as python:
            want = python.run(images)
        for name in manifest.output_names:
            assert got[name].shape == want[name].shape
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{entry['file']}: {name}")


def test_self_check_and_timing_line(tiny_bundle: Path, native_runner: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    entry = next(a for a in _xnnpack(manifest) if "bundled_program" in a["extras"])
    bpte = tiny_bundle / entry["extras"]["bundled_program"]
    args = runner_args(str(tiny_bundle / entry["file"]), bundled=str(bpte), threads=1, warmup=1, iters=4, rtol=1e-4, atol=1e-4)
    done = _run(native_runner, *args)
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    assert done.returncode == 0 and row["status"] == "ok", done.stderr
    check = row["checks"]["bundled_program"]
    assert check["status"] == "passed" and check["cases"] == manifest.golden["count"] and check["max_abs_error"] >= 0
    latency = row["latency_ms"]
    assert row["iterations"] == 4 and latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]

    # expected outputs changed inside the .bpte (a valid flatbuffer, wrong numbers): the self-check fails, exit 3
    with np.load(tiny_bundle / manifest.golden["vectors"]) as vectors:
        expected = np.ascontiguousarray(vectors["heatmap"][0], dtype=np.float32).tobytes()
    data = bpte.read_bytes()
    assert data.count(expected) == 1
    tampered = tmp_path / "tampered.bpte"
    tampered.write_bytes(data.replace(expected, (np.frombuffer(expected, dtype=np.float32) + 10).tobytes()))  # case 0's heatmap + 10
    done = _run(native_runner, *runner_args(str(tiny_bundle / entry["file"]), bundled=str(tampered), iters=1, warmup=0))
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    assert done.returncode == EXIT_SELF_CHECK_FAILED and row["status"] == "failed"
    assert row["error"].startswith("BundledProgram self-check failed: case 0 of forward is outside the tolerance")
    assert row["checks"]["bundled_program"]["status"] == "failed"


def test_bad_inputs_are_one_line_errors(tiny_bundle: Path, native_runner: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    model = str(tiny_bundle / _xnnpack(manifest)[0]["file"])
    np.save(tmp_path / "f64.npy", np.zeros((1, 3, 4, 4)))
    np.save(tmp_path / "small.npy", np.zeros((1, 3, 4, 4), dtype=np.float32))
    (tmp_path / "junk.bpte").write_bytes(b"\0" * 64)
    cases = {
        "missing.pte: cannot open": ["--model", str(tmp_path / "missing.pte")],
        "dtype is not '<f4' (float32)": ["--model", model, "--inputs", str(tmp_path / "f64.npy")],
        "values per image) for the model's input": ["--model", model, "--inputs", str(tmp_path / "small.npy")],
        "junk.bpte: not an ExecuTorch BundledProgram (.bpte)": ["--model", model, "--bundled", str(tmp_path / "junk.bpte")],
    }
    for message, args in cases.items():
        done = _run(native_runner, *args)
        row = parse_runner_output(done.returncode, done.stdout, done.stderr)
        assert done.returncode == 1 and row["status"] == "failed" and message in row["error"], done.stderr
        assert row["error"].startswith("runner exited with code 1: mobiledr_runner: ")
    done = _run(native_runner, "--model", model, "--iters", "many")
    assert done.returncode == 2 and done.stderr.strip() == "mobiledr_runner: --iters takes a number, got many"
    assert _run(native_runner, "--model", model, "--bogus", "1").stderr.strip() == "mobiledr_runner: unknown option --bogus"


def test_build_is_incremental_and_abi_is_read(native_runner: Path, tmp_path: Path) -> None:
    from mobiledr.bench.native import build_native

    assert build_native() == native_runner  # already built: nothing to do but check
    assert elf_abi(native_runner) == "x86_64"
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(MobiledrError, match="not an ELF executable"):
        elf_abi(tmp_path / "script")


def test_parser_on_recorded_outputs() -> None:
    """Recorded from the runner on the test bundle (tests/conftest.py's tiny model, fp32 XNNPACK): a
    passing run with the manifest's per-output limits, a failing self-check (every limit 0), and a
    missing model. The runner prints raw latencies; the statistics are computed here."""
    read = lambda name: (RECORDED / name).read_text()  # noqa: E731
    row = parse_runner_output(0, read("ok.stdout"), read("ok.stderr"))
    assert row["status"] == "ok" and row["iterations"] == 10 and row["checks"]["bundled_program"]["cases"] == 3
    assert row["checks"]["bundled_program"]["detail"] == "probs max_abs 0.0001; logits max_abs 0.001; heatmap max_abs 0.001; ood_score max_rel 0.001"
    assert set(row) == {"status", "load_ms", "first_ms", "latency_ms", "iterations", "throughput_ips", "baseline_rss_mb", "rss_mb", "peak_rss_mb", "checks"}
    raw = json.loads(read("ok.stdout"))["latencies_ms"]
    assert len(raw) == 10 and row["latency_ms"]["p90"] == pytest.approx(float(np.percentile(raw, 90)))
    assert row["latency_ms"]["std"] == pytest.approx(float(np.std(raw))) and row["throughput_ips"] == pytest.approx(1e3 / np.mean(raw))
    row = parse_runner_output(EXIT_SELF_CHECK_FAILED, read("self_check_failed.stdout"), read("self_check_failed.stderr"))
    assert row["status"] == "failed" and "outside the tolerance: logits max abs error 0.000457764 > 0 (probs max_abs 0, max_rel 0;" in row["error"]
    assert row["error"].endswith("(max abs error 1)")
    row = parse_runner_output(1, "", read("missing_model.stderr"))
    assert row == {"status": "failed", "error": "runner exited with code 1: mobiledr_runner: missing.pte: cannot open"}
    row = parse_runner_output(139, "", "I 00:00:00.1 executorch: loading\nSegmentation fault")
    assert row["error"] == "runner exited with code 139: I 00:00:00.1 executorch: loading | Segmentation fault"
    assert parse_runner_output(0, "not json", "")["error"].startswith("runner printed no result")
    old = '{"status": "ok", "load_ms": 1, "first_ms": 1, "latency_ms": {"mean": 1}, "baseline_rss_mb": 1, "rss_mb": 1, "peak_rss_mb": 1}'
    assert parse_runner_output(0, old, "")["error"].startswith("runner printed no per-iteration latencies (latencies_ms): rebuild it")
