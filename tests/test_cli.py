"""The ``mobiledr`` command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mobiledr.cli import app

from .test_weights import torchvision_checkpoint

runner = CliRunner()


def test_summary_table_for_thesis_preset() -> None:
    result = runner.invoke(app, ["summary", "--preset", "thesis-dr"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "MobileNetV3-Large + CBAM, input 3x512x512" in result.output
    assert "Trainable params:    3,495,685" in result.output
    assert "BN running stats:    24,400" in result.output
    assert "960x16x16" in result.output
    assert "attention.spatial" in result.output


def test_summary_json_with_input_size() -> None:
    result = runner.invoke(app, ["summary", "--preset", "oct-kermany", "--input-size", "224", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config"]["num_classes"] == 4
    assert data["input_size"] == 224
    assert data["rows"][16]["output_shape"] == [1, 960, 7, 7]
    assert sum(row["macs"] for row in data["rows"] if row["name"].startswith("features.")) == 214_080_960


def test_summary_from_config_file(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text("arch: small\nnum_classes: 3\ninput_size: 128\nhead_hidden: 0\n")
    result = runner.invoke(app, ["summary", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"][-1]["output_shape"] == [1, 3]
    assert data["rows"][-1]["params"] == 576 * 3 + 3


def test_errors_are_one_line_with_exit_code_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch: medium\n")
    for args in (["summary", "--preset", "nope"], ["summary", "--config", str(bad)], ["summary", "-p", "thesis-dr", "-c", str(bad)]):
        proc = subprocess.run([sys.executable, "-m", "mobiledr", *args], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ")
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_weights_command_verifies_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["weights", "--dir", str(tmp_path)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert result.output.count("missing") == 3
    torchvision_checkpoint("small", tmp_path / "mobilenet_v3_small-047dcff4.pth")
    proc = subprocess.run(
        [sys.executable, "-m", "mobiledr", "weights", "--dir", str(tmp_path)], capture_output=True, text=True,
        env={"COLUMNS": "120", "PATH": ""},
    )
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stdout
    assert "mobilenet_v3_small-047dcff4.pth: sha256" in proc.stderr


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).output.startswith("mobiledr ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "summary" in result.output and "weights" in result.output
