"""``mobiledr demo --fast`` end to end: every stage runs, the bundles verify, parity gives a verdict
per artifact, the benchmark results are valid, and the HTML report holds it all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobiledr.bench.report import load_results
from mobiledr.cli import app
from mobiledr.demo_report import browser_check, find_chromium
from mobiledr.export.bundle import verify_bundle
from mobiledr.export.manifest import Manifest

STAGES = ["data", "train", "evaluate", "explain", "export", "parity", "bench"]


@pytest.mark.slow
def test_fast_demo_end_to_end(tmp_path: Path, native_runner: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--fast", "--out", str(out)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, f"{result.output[-3000:]}\n{result.exception}"
    assert "mobiledr bench" in result.output and "--device android" in result.output  # what to run next

    timings = json.loads((out / "timings.json").read_text())
    assert [s["name"] for s in timings["stages"]] == STAGES and not any("error" in s for s in timings["stages"])
    # verdicts of the 3-minute model (export's int8 gate, parity FAIL, a native self-check) are recorded, never a stage error
    assert all(re.match(r"parity FAILED|\d+ measurement\(s\) failed|.*: written, but .*no int8 recipe passed the gate", v) for s in timings["stages"] for v in s.get("verdicts", []))
    assert timings["fast"] is True and timings["total_seconds"] > 0

    for target in ("android", "ios"):
        bundle = out / "bundle" / target
        assert verify_bundle(bundle) == []
        manifest = Manifest.load(bundle)
        parity = json.loads((bundle / "parity" / "report.json").read_text())
        verdicts = {a["file"]: a["verdict"] for a in parity["artifacts"]}
        assert set(verdicts) == {a["file"] for a in manifest.artifacts}
        by_file = {a["file"]: a for a in parity["artifacts"]}
        for entry in manifest.artifacts:
            if "coreml" in (entry["runtime"], entry["backend"]):
                assert verdicts[entry["file"]] == "SKIPPED"  # Core ML runs only on macOS
            else:
                assert verdicts[entry["file"]] in ("PASS", "FAIL") and (verdicts[entry["file"]] == "FAIL") == bool(by_file[entry["file"]]["reasons"])
            if entry["precision"] == "fp32" and entry["runtime"] != "coreml":  # float artifacts compute what PyTorch computes
                assert by_file[entry["file"]]["errors"]["probs"]["max_abs"] < 1e-4, entry["file"]

    bench = load_results(out / "bundle" / "android" / "bench" / "bench.json")  # valid against the schema
    assert any(r["runtime"] == "pytorch" and r["status"] == "ok" for r in bench["rows"])
    native = [r for r in bench["rows"] if r["runtime"] == "native"]  # measured, unless its self-check failed (a barely trained model's OOD score)
    assert native and all(r["status"] == "ok" or r["error"].startswith("BundledProgram self-check failed") for r in native)

    html = (out / "report.html").read_text()
    assert 'src="http' not in html and 'href="http' not in html and html.count("<img") >= 6  # self-contained
    assert all(src.startswith("data:image/png;base64,") for src in (part.split('"', 1)[0] for part in html.split('<img src="')[1:]))
    for file in verdicts:  # the artifact table lists the ios bundle's artifacts too
        assert file in html
    if find_chromium():  # the real report renders in a real browser (the report module's own tests need Chromium)
        rendered = browser_check(out / "report.html")
        assert rendered["images"] == html.count("<img") and rendered["loaded"] == rendered["images"] and not rendered["broken"]
