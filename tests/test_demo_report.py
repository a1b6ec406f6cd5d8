"""The demo's HTML report over a fake demo folder: its sections, the artifact table, embedded images,
missing stage outputs, and (slow) the page in headless Chromium with every image decoded."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mobiledr.bench.report import validation_error as bench_error
from mobiledr.demo_report import browser_check, find_chromium, render_screenshot, write_report
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import validation_error as manifest_error

FIXTURES = Path(__file__).parent / "fixtures" / "demo_report"
HEADINGS = ["Data", "Training", "Clinical evaluation", "Explanations", "Artifacts", "Latency", "Stage timings", "What next"]
PNGS = ["contact_sheet.png", "run/curves.png", "run/eval-test/roc.png", "run/eval-test/confusion.png", "run/eval-test/reliability.png",
        "run/explain/aaa_explain.png", "run/explain/bbb_explain.png", "bundle/android/bench/bench.png"]  # fmt: skip
THRESHOLD = 0.2244


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = np.full((60, 90, 3), 255, np.uint8)
    image[10:50, 10:80] = rng.integers(0, 256, 3, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _rate(value: float, successes: int, trials: int) -> dict:
    return {"value": value, "successes": successes, "trials": trials, "ci_bootstrap": [value - 0.1, value + 0.05], "ci_wilson": [value - 0.12, value + 0.06]}


def _evaluation() -> dict:
    """The keys of mobiledr.train.report's report.json that the report reads."""
    point = {"threshold": THRESHOLD, "tp": 68, "fp": 52, "tn": 17, "fn": 7, "sensitivity": _rate(0.9067, 68, 75), "specificity": _rate(0.2464, 17, 69),
             "ppv": _rate(0.5667, 68, 120), "npv": _rate(0.7083, 17, 24), "roc_auc_ci_bootstrap": [0.788, 0.922]}  # fmt: skip
    return {
        "split": "test", "images": 144, "scheme": "any-dr", "classes": ["no DR", "DR"], "epoch": 19,
        "threshold": {"value": THRESHOLD, "locked": True, "method": "sensitivity", "target_sensitivity": 0.9,
                      "chosen": "the highest threshold reaching sensitivity >= 0.9 on the validation split"},
        "operating_point": point, "roc_auc": 0.8566, "pr_auc": 0.9107, "accuracy": 0.5903, "qwk": None,
        "calibration": {"bins": 15, "ece_uncalibrated": 0.077, "ece_calibrated": 0.080},
    }  # fmt: skip


def _bench(manifest: dict) -> dict:
    """Desktop results for the android bundle: the eager reference, each artifact on its runtime at 1
    and 2 threads, the XNNPACK programs on the native runner; the fp32 .ort skipped."""
    rows = []

    def row(artifact: str, runtime: str, threads: int, p50: float, status: str = "ok", **facts: object) -> None:
        base = {"device": "desktop", "artifact": artifact, "format": facts.get("format", "pytorch-eager"), "precision": facts.get("precision", "fp32"),
                "runtime": runtime, "backend": "cpu", "threads": threads, "status": status}  # fmt: skip
        if status == "ok":
            latency = {"mean": p50, "std": 0.1, "min": p50 - 0.5, "p50": p50, "p90": p50 + 0.44, "p99": p50 + 1, "max": p50 + 2, "cv": 0.01}
            base |= {"load_ms": 20.0, "first_ms": p50 * 2, "latency_ms": latency, "iterations": 30, "throughput_ips": 1000 / p50}
        else:
            base["error"] = "onnxruntime-mobile is not installed"
        rows.append(base)

    row("pytorch", "pytorch", 1, 39.23)
    for index, a in enumerate(manifest["artifacts"]):
        facts = {"format": a["format"], "precision": a["precision"]}
        if a["file"] == "model.fp32.ort":
            row(a["file"], a["runtime"], 1, 0, status="skipped", **facts)
            continue
        row(a["file"], a["runtime"], 2, 5.0 + index, **facts)  # listed first: the report must still pick the 1-thread row
        row(a["file"], a["runtime"], 1, 10.0 + index, **facts)
        if a["backend"] == "xnnpack":
            row(a["file"], "native", 1, 20.0 + index, **facts)
    return {"schema": "mobiledr-bench/1", "created": "2026-11-22T12:00:00+00:00", "mobiledr_version": "0.1.0", "bundle": "out/demo/bundle/android",
            "manifest_sha256": "0" * 64, "model": {"name": "demo", "input_size": 128}, "devices": [{"device": "desktop", "kind": "desktop", "cpu": "Test CPU"}],
            "settings": {"warmup": 2, "iters": 30, "threads": [1, 2]}, "rows": rows}  # fmt: skip


def _parity(manifest: dict, verdicts: dict[str, str]) -> dict:
    artifacts = []
    for a in manifest["artifacts"]:
        verdict = verdicts.get(a["file"], "PASS")
        reasons = {"PASS": [], "FAIL": ["max_abs_delta_auc = 0.00905 (limit <= 0.005)", "min_decision_agreement = 0.77 (limit >= 0.995)"],
                   "SKIPPED": ["Core ML prediction needs macOS"]}[verdict]  # fmt: skip
        artifacts.append({k: a[k] for k in ("file", "format", "precision", "runtime", "backend", "kind", "size_bytes")} | {"verdict": verdict, "reasons": reasons})
    failed = [a["file"] for a in artifacts if a["verdict"] == "FAIL"]
    return {"schema": "mobiledr-parity/1", "verdict": "FAIL" if failed else "PASS", "failed": failed, "artifacts": artifacts,
            "inputs": {"source": "40 synthetic photographs (seed 2026, any-dr labels)", "images": 40}}  # fmt: skip


#: The parity verdicts the fake demo folder holds, per artifact.
VERDICTS = {"model.xnnpack-int8.pte": "FAIL", "model.int8.ort": "FAIL", "model.fp16.mlpackage": "SKIPPED", "model.int8w.mlpackage": "SKIPPED",
            "model.pal6.mlpackage": "SKIPPED", "model.coreml-fp16.pte": "SKIPPED"}  # fmt: skip


@pytest.fixture
def demo_out(tmp_path: Path) -> Path:
    """A demo folder as ``mobiledr demo`` leaves it, with small images and schema-valid JSON."""
    out = tmp_path / "demo"
    for seed, rel in enumerate(PNGS):
        _png(out / rel, seed)
    (out / "splits.csv").write_text(
        "key,split,label,class_name,scheme,patient_id,source\n"
        + "".join(f"k{i}.png,{split},{i % 2},{['no DR', 'DR'][i % 2]},any-dr,p{i // 2},x\n" for i, split in enumerate(["train"] * 6 + ["val"] * 2 + ["test"] * 2))
    )
    _write(out / "run" / "summary.json", {"best_epoch": 3, "val_auc": 0.83, "threshold": THRESHOLD})
    _write(out / "run" / "eval-test" / "report.json", _evaluation())
    images = [{"source": f"data/train_images/{stem}.png", "output": f"run/explain/{stem}_explain.png", "predicted_class": "no DR", "decision": decision,
               "probabilities": {"DR": p, "no DR": 1 - p}, "explained_class": "DR", "heatmap_correlation": 0.98}
              for stem, decision, p in (("aaa", "DR", 0.7), ("bbb", "no DR", 0.1))]  # fmt: skip
    images.append({"source": "data/train_images/broken.png", "error": "no fundus disc found"})
    _write(out / "run" / "explain" / "explanations.json", {"labels": ["no DR", "DR"], "threshold": THRESHOLD, "temperature": 1.12, "heatmap": "cam", "images": images})
    full = json.loads((FIXTURES / "manifest.json").read_text())
    for name, coreml in (("android", False), ("ios", True)):
        manifest = copy.deepcopy(full) | {"target": name}
        manifest["artifacts"] = [a for a in full["artifacts"] if (a["backend"] == "coreml") == coreml]
        if coreml:
            manifest["failures"] = [{"format": "coreml-int4", "error": "needs coremltools <9 & iOS18"}]
        assert manifest_error(manifest) is None
        _write(out / "bundle" / name / "manifest.json", manifest)
        _write(out / "bundle" / name / "parity" / "report.json", _parity(manifest, VERDICTS))
        if name == "android":
            bench = _bench(manifest)
            assert bench_error(bench) is None
            _write(out / "bundle" / name / "bench" / "bench.json", bench)
    stages = [{"name": n, "seconds": s} for n, s in (("data", 12.3), ("train", 61.0), ("evaluate", 4.2), ("explain", 3.1), ("export", 80.5), ("parity", 30.0), ("bench", 20.4))]
    _write(out / "timings.json", {"stages": stages, "total_seconds": 211.5, "fast": True, "preset": "demo"})
    return out


def _manifests(out: Path) -> dict[str, dict]:
    return {name: json.loads((out / "bundle" / name / "manifest.json").read_text()) for name in ("android", "ios")}


def _row(page: str, file: str) -> str:
    rows = [r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if f"<code>{file}</code>" in r]
    assert len(rows) == 1, f"{file}: {len(rows)} table rows"
    return rows[0]


def test_report_has_every_section_and_embeds_every_image(demo_out: Path) -> None:
    path = write_report(demo_out)
    assert path == demo_out / "report.html"
    page = path.read_text()
    positions = [page.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions), "sections out of order"
    assert page.index('class="summary"') < positions[0]
    assert "missing" not in page.lower().replace('class="missing"', "").replace(".missing", ""), "nothing is missing from a complete demo folder"
    # self-contained: no script, no stylesheet link, no URL in any attribute or in the CSS
    assert "<script" not in page and "<link" not in page and "url(" not in page and "@import" not in page
    assert not re.search(r"""=\s*["']?\s*(https?:|//|file:)""", page, re.I)
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)
    assert len(sources) == len(re.findall(r"<img\b", page)) == len(PNGS)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    # summary and evaluation numbers
    assert "0.224" in page and "90.7%" in page and "24.6%" in page and "0.857" in page and "0.788 - 0.922" in page
    assert "MobileNetV3-Small + CBAM" in page and "10 synthetic fundus photographs of 5 fake patients" in page
    assert "2 FAIL (model.xnnpack-int8.pte, model.int8.ort)" in page and "4 SKIPPED" in page
    # explanation captions from explanations.json; the photograph that failed is listed
    assert "aaa.png: decision DR (p(DR) = 0.700, threshold 0.224)" in page
    assert "bbb.png: decision no DR (p(DR) = 0.100, threshold 0.224)" in page
    assert "broken.png" in page and "no fundus disc found" in page
    # stage timings and next steps
    assert "80.5" in page and "211.5" in page and "--device android" in page and "mobiledr parity" in page
    # text is escaped
    assert "needs coremltools &lt;9 &amp; iOS18" in page and "limit &lt;= 0.005" in page


def test_artifact_table_has_a_row_per_artifact_with_verdict_and_latency(demo_out: Path) -> None:
    page = write_report(demo_out).read_text()
    manifests = _manifests(demo_out)
    bench = json.loads((demo_out / "bundle" / "android" / "bench" / "bench.json").read_text())
    for name, manifest in manifests.items():
        for a in manifest["artifacts"]:
            row = _row(page, a["file"])
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            assert cells[0] == name and a["format"] in cells[2] and a["precision"] in cells[3]
            assert cells[5] == f"{a['size_bytes'] / 1e6:.2f}" and cells[6] == f"{a['macs'] / 1e6:.1f}"
            verdict = VERDICTS.get(a["file"], "PASS")
            assert f'class="verdict {verdict}"' in cells[9] and f">{verdict}</span>" in cells[9]
            if name == "ios":
                assert cells[7] == cells[8] == "not measured"
                continue
            own = [r for r in bench["rows"] if r["artifact"] == a["file"] and r["runtime"] == a["runtime"] and r["threads"] == 1][0]
            if own["status"] == "ok":
                assert cells[7] == f"{own['latency_ms']['p50']:.2f} / {own['latency_ms']['p90']:.2f}"
            else:
                assert ">skipped</span>" in cells[7] and "onnxruntime-mobile is not installed" in cells[7]
            native = [r for r in bench["rows"] if r["artifact"] == a["file"] and r["runtime"] == "native"]
            assert cells[8] == (f"{native[0]['latency_ms']['p50']:.2f} / {native[0]['latency_ms']['p90']:.2f}" if native else "-")
    assert "PyTorch eager reference: 39.23 / 39.67 ms" in page


def test_a_missing_stage_output_gives_a_note_and_still_a_report(demo_out: Path) -> None:
    shutil.rmtree(demo_out / "run" / "eval-test")
    (demo_out / "bundle" / "ios" / "parity" / "report.json").write_text("{not json")
    timings = json.loads((demo_out / "timings.json").read_text())
    timings["stages"][2]["error"] = "mobiledr evaluate exited with code 1"
    _write(demo_out / "timings.json", timings)
    page = write_report(demo_out).read_text()
    evaluation = page[page.index("<h2>Clinical evaluation</h2>") : page.index("<h2>Explanations</h2>")]
    assert 'class="missing"' in evaluation and "Missing: <code>run/eval-test/report.json</code>" in evaluation
    assert "the evaluate stage failed: mobiledr evaluate exited with code 1" in evaluation
    assert "<img" not in evaluation
    assert "Unreadable (JSONDecodeError" in page and "bundle/ios/parity/report.json" in page
    for a in _manifests(demo_out)["ios"]["artifacts"]:
        assert ">missing</td>" in _row(page, a["file"])  # its parity verdict
    assert all(f"<h2>{heading}</h2>" in page for heading in HEADINGS)
    assert len(re.findall(r"<img\b", page)) == len(PNGS) - 3


def test_an_empty_folder_still_gives_a_report(tmp_path: Path) -> None:
    page = write_report(tmp_path).read_text()
    assert all(f"<h2>{heading}</h2>" in page for heading in HEADINGS)
    for rel in ("contact_sheet.png", "run/curves.png", "run/eval-test/report.json", "bundle/android/manifest.json", "timings.json"):
        assert f"<code>{rel}</code>" in page, rel
    assert "the evaluate stage" in page and "<img" not in page


def test_screenshot_without_chromium_is_a_one_line_error(demo_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", "no-such-chromium-binary")
    with pytest.raises(MobiledrError, match="no Chromium found"):
        render_screenshot(write_report(demo_out), demo_out / "shot.png", height=600)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(demo_out: Path, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH (Debian/Ubuntu: apt-get install -y chromium)")
    report = write_report(demo_out)
    check = browser_check(report)
    assert check["images"] == len(PNGS) and check["loaded"] == len(PNGS) and check["broken"] == []
    assert check["height"] > 2000 and check["width"] <= 1200  # a long page, no horizontal scrolling

    # the check is not vacuous: an image that does not decode is reported by its alt text
    broken = tmp_path / "broken.html"
    page = report.read_text()
    start = page.index('src="data:image/png;base64,')  # the first image: the contact sheet
    broken.write_text(page[:start] + 'src="data:image/png;base64,AAAA' + page[page.index('"', start + 5) :])
    assert browser_check(broken)["broken"] == ["data contact sheet"]

    shot = tmp_path / "report.png"
    render_screenshot(report, shot)
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[1] == 1200 and pixels.shape[0] == min(check["height"], 16000)
    assert pixels.std() > 5, "blank screenshot"
