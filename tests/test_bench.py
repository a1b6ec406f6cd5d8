"""``mobiledr bench`` on the desktop: every runtime measured in its own process, results in the shared
schema, failures kept as rows, and the comparison of two runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobiledr.bench.desktop import BenchOptions, run_desktop, targets
from mobiledr.bench.report import compare, load_results, validation_error
from mobiledr.bench.worker import latency_stats
from mobiledr.cli import app
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest

runner = CliRunner()
QUICK = ["--warmup", "1", "--iters", "3"]


@pytest.fixture(scope="session")
def bench_run(tiny_bundle: Path, native_runner: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--threads", "1,2", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    return out


def test_every_runtime_gives_valid_results(bench_run: Path, tiny_bundle: Path) -> None:
    report = load_results(bench_run / "bench.json")  # validates against the shared schema
    assert validation_error(report) is None and report["schema"] == "mobiledr-bench/1"
    manifest = Manifest.load(tiny_bundle)
    xnnpack = [a for a in manifest.artifacts if a["kind"] == "pte" and a["backend"] == "xnnpack"]
    # every artifact, the eager baseline and the XNNPACK programs on the native runner, at 1 and 2 threads
    assert len(report["rows"]) == 2 * (len(manifest.artifacts) + 1 + len(xnnpack))
    measured = {r["runtime"] for r in report["rows"] if r["status"] == "ok"}
    assert measured == {"pytorch", "executorch", "native", "onnxruntime", "onnxruntime-mobile"}
    native = [r for r in report["rows"] if r["runtime"] == "native"]
    assert {r["artifact"] for r in native} == {a["file"] for a in xnnpack}
    bundled = [r for r in native if "bundled_program" in r.get("checks", {})]  # the program with a .bpte runs its self-check first
    assert bundled and all(r["checks"]["bundled_program"]["status"] == "passed" and r["checks"]["bundled_program"]["cases"] >= 1 for r in bundled)
    for row in report["rows"]:
        if row["status"] == "ok":
            latency = row["latency_ms"]
            assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
            assert row["iterations"] >= 3 and row["load_ms"] > 0 and row["peak_rss_mb"] >= row["rss_mb"] > 0 and row["baseline_rss_mb"] > 0
            assert row["throughput_ips"] == pytest.approx(1e3 / latency["mean"])
        else:  # Core ML and the Core ML delegate cannot run off macOS
            assert row["status"] == "skipped" and row["error"] == "Core ML runs only on macOS"
    assert report["devices"][0]["cores"] >= 1 and "cpu" in report["devices"][0]
    header = (bench_run / "bench.csv").read_text().splitlines()[0]
    assert header.startswith("device,artifact,format,precision,runtime,backend,threads,status")
    assert (bench_run / "bench.png").stat().st_size > 0 and "![latency" in (bench_run / "bench.md").read_text()


def test_runtime_filter_and_failures_are_rows(tiny_bundle: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    assert {t["runtime"] for t in targets(manifest, ["onnxruntime"])} == {"onnxruntime", "onnxruntime-mobile"}
    with pytest.raises(MobiledrError, match="unknown runtime 'tflite'"):
        targets(manifest, ["tflite"])
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "model.xnnpack-fp32.pte").write_bytes(b"not a program")  # the runner crashes in its process
    report = run_desktop(BenchOptions(bundle, ["executorch"], [1], warmup=0, iters=2))
    rows = {r["artifact"]: r for r in report["rows"]}
    assert rows["model.xnnpack-fp32.pte"]["status"] == "failed" and rows["model.xnnpack-fp32.pte"]["error"].startswith("worker exited with code 1")
    assert rows["model.xnnpack-int8.pte"]["status"] == "ok"  # the others are still measured
    result = runner.invoke(app, ["bench", str(bundle), "--runtimes", "executorch", *QUICK, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "1 measurement(s) failed; first: model.xnnpack-fp32.pte" in str(result.exception)
    assert load_results(tmp_path / "out" / "bench.json")["rows"]  # what completed is written


def test_compare_two_runs(bench_run: Path, tmp_path: Path) -> None:
    before = json.loads((bench_run / "bench.json").read_text())
    after = json.loads(json.dumps(before))
    for row in after["rows"]:
        if row["status"] == "ok":
            row["latency_ms"] = {k: (v * 2 if k != "cv" else v) for k, v in row["latency_ms"].items()}
    rows = compare(before, after)
    assert rows and all(r["p50_ratio"] == pytest.approx(2.0) and r["load_ratio"] == pytest.approx(1.0) for r in rows)
    (tmp_path / "after.json").write_text(json.dumps(after))
    result = runner.invoke(app, ["bench", "--compare", str(bench_run / "bench.json"), str(tmp_path / "after.json")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.exception
    assert "2.00x" in result.output
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "other"}))
    result = runner.invoke(app, ["bench", "--compare", str(bench_run / "bench.json"), str(tmp_path / "bad.json")])
    assert "not mobiledr benchmark results" in str(result.exception)
    assert "--compare takes two results files" in str(runner.invoke(app, ["bench", "--compare", str(tmp_path / "after.json")]).exception)


def test_latency_statistics() -> None:
    stats = latency_stats([0.001, 0.002, 0.003, 0.004])
    assert stats["mean"] == pytest.approx(2.5) and stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(4.0)
    assert stats["p50"] == pytest.approx(2.5) and stats["cv"] == pytest.approx(stats["std"] / 2.5)
