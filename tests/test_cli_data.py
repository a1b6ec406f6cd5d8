"""``mobiledr data ...`` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.splits import SplitFile

from .test_preprocess import disc_frame

runner = CliRunner()
WIDE = {"COLUMNS": "160"}


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_synth_inspect_prepare_split(tmp_path: Path) -> None:
    data, cache, splits = tmp_path / "data", tmp_path / "cache", tmp_path / "splits.csv"
    assert "wrote 16 images" in invoke("data", "synth", "--out", str(data), "--n", "16", "--size", "128", "--seed", "2")
    out = invoke("data", "inspect", str(data), "--dataset", "aptos", "--sheet", str(tmp_path / "sheet.png"), "--per-class", "2")
    assert "grade 0" in out and "patients: 8 (8 with 2 images)" in out
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100
    out = invoke("data", "prepare", str(data), "--dataset", "aptos", "--out", str(cache), "--size", "64", "--workers", "2")
    assert "16 images (16 processed, 0 unchanged)" in out
    out = invoke("data", "prepare", str(data), "--dataset", "aptos", "--out", str(cache), "--size", "64", "--workers", "1")
    assert "(0 processed, 16 unchanged)" in out
    out = invoke("data", "split", str(cache), "--scheme", "any-dr", "--out", str(splits), "--val", "0.25", "--test", "0.25")
    assert "any-dr" in out and "train" in out
    rows = SplitFile.read(splits).rows
    assert len(rows) == 16 and {r.split for r in rows} == {"train", "val", "test"}
    out = invoke("data", "inspect", str(data), "--dataset", "aptos", "--sheet", str(tmp_path / "s2.png"), "--splits", str(splits))
    assert "split test:" in out


def test_preview_json_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "camera.jpg"
    cv2.imwrite(str(good), cv2.cvtColor(disc_frame(cx=400, cy=330, r=280), cv2.COLOR_RGB2BGR))
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    result = runner.invoke(app, ["data", "preview", str(good), str(bad), "--out", str(tmp_path / "pv"), "--size", "128", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    box = data["previews"][0]["box"]
    assert all(abs(a - b) <= 9 for a, b in zip(box, [120, 50, 680, 610]))
    panel = cv2.imread(data["previews"][0]["output"])
    assert panel.shape[0] == 128 and panel.shape[1] > 3 * 128
    assert data["failures"] == [{"source": str(bad), "error": "not an image (format not recognised)"}]


def test_data_errors_are_one_line(tmp_path: Path) -> None:
    cases = [
        ["data", "prepare", str(tmp_path / "absent"), "--dataset", "aptos", "--out", str(tmp_path / "c")],
        ["data", "prepare", str(tmp_path), "--dataset", "kaggle", "--out", str(tmp_path / "c")],
        ["data", "split", str(tmp_path), "--scheme", "any-dr", "--out", str(tmp_path / "s.csv")],
        ["data", "inspect", str(tmp_path), "--dataset", "messidor"],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "mobiledr", *args], capture_output=True, text=True)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
