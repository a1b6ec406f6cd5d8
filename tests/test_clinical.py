"""Issue 16, clinical validity: the positive class by name, the split file verified wherever it is read,
and (below) the evaluation's unit of analysis, flow and gates."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.cache import Cache, prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile
from mobiledr.data.synth import make_dataset
from mobiledr.errors import MobiledrError

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
runner = CliRunner()
SIZE = 64


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _folders(source: Path, root: Path, names: tuple[str, str]) -> Path:
    """The synthetic APTOS set re-laid as ``root/<class>/`` folders: grade 0 -> names[0], else names[1]."""
    table = pd.read_csv(source / "train.csv", dtype=str)
    for _, row in table.iterrows():
        folder = root / (names[0] if row["diagnosis"] == "0" else names[1])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "train_images" / f"{row['id_code']}.png", folder / f"{row['id_code']}.png")
    return root


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """DR / No_DR class folders (No_DR sorts second: the alphabet would make it positive), prepared."""
    root = tmp_path_factory.mktemp("folders")
    make_dataset(root / "aptos", n=24, size=128, seed=4)
    _folders(root / "aptos", root / "folders", ("No_DR", "DR"))
    return prepare(root / "folders", "folder", PreprocessSpec(size=SIZE), root / "cache", workers=1).cache


def _grade_of(cache: Cache) -> dict[str, str]:
    return {e.key: Path(e.key).parent.name for e in cache.entries}


def test_split_records_the_positive_class_by_name_or_given(folder_cache: Cache, tmp_path: Path) -> None:
    path = tmp_path / "splits.csv"
    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(path), "--val", "0.25", "--test", "0.25",
           "--merge-duplicates")  # fmt: skip
    split_file = SplitFile.read(path)
    assert split_file.positive == "DR" and "positive" in path.read_text().splitlines()[0]
    folder = _grade_of(folder_cache)
    assert all(r.label == int(folder[r.key] == "DR") and r.class_name == folder[r.key] for r in split_file.rows)

    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(path), "--val", "0.25", "--test", "0.25",
           "--merge-duplicates", "--positive", "No_DR")  # fmt: skip
    split_file = SplitFile.read(path)
    assert split_file.positive == "No_DR"
    assert all(r.label == int(folder[r.key] == "No_DR") for r in split_file.rows)


def test_split_refuses_to_guess_an_ambiguous_positive_class(tmp_path: Path) -> None:
    make_dataset(tmp_path / "aptos", n=16, size=128, seed=5)
    _folders(tmp_path / "aptos", tmp_path / "folders", ("cats", "dogs"))
    cache = prepare(tmp_path / "folders", "folder", PreprocessSpec(size=SIZE), tmp_path / "cache", workers=1).cache
    result = runner.invoke(app, ["data", "split", str(cache.root), "--scheme", "classes", "--out", str(tmp_path / "s.csv")])
    assert isinstance(result.exception, MobiledrError)
    assert "cannot tell which of the classes cats, dogs is the positive (referred) one; pass --positive NAME" == str(result.exception)
    assert not (tmp_path / "s.csv").exists()


@pytest.fixture(scope="module")
def folder_run(folder_cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training epoch on the class folders (their split file made by ``data split``)."""
    from mobiledr.train import loop
    from mobiledr.train.config import load_train_config

    root = tmp_path_factory.mktemp("folder-run")
    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(root / "splits.csv"), "--val", "0.25",
           "--test", "0.25", "--merge-duplicates")  # fmt: skip
    overrides = [f"model.input_size={SIZE}", f"preprocess.size={SIZE}", "workers=0", "batch_size=8", "epochs=1", "freeze_epochs=0",
                 "scheme=classes"]  # fmt: skip
    return loop.train(load_train_config("demo", overrides=overrides), folder_cache.root, root / "splits.csv", root / "run")


def test_checkpoint_and_manifest_record_the_positive_class(folder_run: Path) -> None:
    from mobiledr.export.bundle import _decision
    from mobiledr.train.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(folder_run)
    assert checkpoint.positive == "DR" and checkpoint.labels == ["No_DR", "DR"]
    decision = _decision(checkpoint)
    assert decision["positive_class"] == "DR" and decision["positive_index"] == 1 and "refer (DR)" in decision["rule"]


def _rewritten(split_path: Path, out: Path) -> Path:
    """The split file with one training image moved into test: what the recorded sha256 must catch."""
    split_file = SplitFile.read(split_path)
    index = next(i for i, r in enumerate(split_file.rows) if r.split == "train" and r.label is not None)
    split_file.rows[index] = dataclasses.replace(split_file.rows[index], split="test")
    split_file.write(out)
    return out


def test_a_rewritten_split_file_is_refused_everywhere_it_is_read(folder_run: Path, tmp_path: Path) -> None:
    from mobiledr.export.bundle import _calibration
    from mobiledr.parity.inputs import from_training_data
    from mobiledr.train.checkpoint import Checkpoint
    from mobiledr.train.report import evaluate_checkpoint

    checkpoint = Checkpoint.load(folder_run)
    original = Path(checkpoint.provenance["split_file"])
    assert SplitFile.read(original, checkpoint.provenance["split_sha256"]).sha256 == checkpoint.provenance["split_sha256"]
    moved = _rewritten(original, tmp_path / "moved.csv")
    cache = Path(checkpoint.provenance["cache"])
    spec = checkpoint.preprocess

    def refused(call) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(MobiledrError, match="split file changed since the model was trained") as caught:
            call()
        assert "\n" not in str(caught.value)

    refused(lambda: evaluate_checkpoint(folder_run, "test", cache, moved, out=tmp_path / "eval", resamples=0))
    refused(lambda: from_training_data(folder_run, spec, "classes", cache, moved, "test", 10, 0))
    refused(lambda: runner.invoke(app, ["evaluate", str(folder_run), "--splits", str(moved)], catch_exceptions=False))

    # In place (the path the checkpoint names): evaluate, parity's inputs and export calibration all refuse it.
    backup = original.read_bytes()
    try:
        shutil.copy(moved, original)
        refused(lambda: evaluate_checkpoint(folder_run, "test", out=tmp_path / "eval", resamples=0))
        refused(lambda: from_training_data(folder_run, spec, "classes", None, None, "test", 10, 0))
        options = SimpleNamespace(formats=[SimpleNamespace(calibrated=True, id="xnnpack-int8")], calibration_data=None, calibration_samples=4)
        refused(lambda: _calibration(options, checkpoint, spec))  # type: ignore[arg-type]
    finally:
        original.write_bytes(backup)
    images, info = _calibration(options, checkpoint, spec)  # type: ignore[arg-type]
    assert len(images) == 4 and info["source"].startswith("train split")
