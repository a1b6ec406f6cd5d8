"""``mobiledr evaluate`` on a real (tiny) data set and an untrained checkpoint: files, consistency, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from mobiledr.cli.evaluate import register
from mobiledr.data.cache import Cache, prepare
from mobiledr.data.dataset import CachedDataset
from mobiledr.data.labels import get_scheme
from mobiledr.data.photometric import Photometric
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile, make_splits
from mobiledr.data.synth import make_dataset
from mobiledr.errors import MobiledrError
from mobiledr.models import ModelConfig, build_model
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.inference import Classifier, predict
from mobiledr.train.ood import fit_ood
from mobiledr.train.report import evaluate_checkpoint

SPEC = PreprocessSpec(size=64)
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")  # 24 images, 3 folds
runner = CliRunner()
app = typer.Typer(pretty_exceptions_enable=False)
register(app)


@app.callback()
def _root() -> None:
    """A group, so the command is invoked by name as under the real ``mobiledr`` app."""


@dataclasses.dataclass
class World:
    root: Path
    cache: Cache
    splits: SplitFile
    split_path: Path
    checkpoint: Path
    ood: Path


def _untrained(config: ModelConfig) -> torch.nn.Module:
    """A model whose head gives varied probabilities (the initial head is zero)."""
    torch.manual_seed(0)
    model = build_model(config).eval()
    torch.nn.init.normal_(model.head.fc[0].weight, std=2.0)
    return model


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("evaluate")
    make_dataset(root / "data", n=24, size=128, seed=1)
    cache = prepare(root / "data", "aptos", SPEC, root / "cache", workers=1).cache
    splits, _ = make_splits(cache, get_scheme("any-dr"), val=0.25, test=0.25)
    # One test image becomes ungradable: counted in the gradable rate, never scored.
    first = next(i for i, r in enumerate(splits.rows) if r.split == "test" and r.label == 1)
    splits.rows[first] = dataclasses.replace(splits.rows[first], label=None, class_name="ungradable")
    split_path = root / "splits.csv"
    splits.write(split_path)

    config = ModelConfig(arch="small", input_size=64, head_hidden=0)
    model = _untrained(config)
    classifier = Classifier(model, Photometric(SPEC))
    train = predict(classifier, CachedDataset(cache, splits, "train"))
    val = predict(classifier, CachedDataset(cache, splits, "val"))
    ood = fit_ood(train.features, train.labels, 2, val.features, 0.95)
    checkpoint = Checkpoint(
        model_config=config,
        preprocess=SPEC,
        labels=["no DR", "DR"],
        scheme="any-dr",
        state_dict=model.state_dict(),
        threshold=0.5,
        temperature=1.0,
        ood=ood,
        train_config={"threshold_method": "sensitivity", "target_sensitivity": 0.9},
        provenance={"cache": str(root / "cache"), "split_file": str(split_path)},
    )
    checkpoint.save(root / "run" / "best.pt")

    ood = root / "not-fundus"
    ood.mkdir()
    cv2.imwrite(str(ood / "black.png"), np.zeros((120, 160, 3), np.uint8))
    cv2.imwrite(str(ood / "noise.png"), np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    (ood / "notes.txt").write_text("not an image\n")
    return World(root, cache, splits, split_path, root / "run" / "best.pt", ood)


def _evaluate(*args: str) -> dict:
    result = runner.invoke(app, ["evaluate", *args], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "sensitivity" in result.output.lower()
    return result


def test_report_is_complete_and_consistent(world: World) -> None:
    out = world.root / "report-a"
    _evaluate(str(world.checkpoint), "--ood", str(world.ood), "--out", str(out), "--bootstrap", "100", "--seed", "3")
    for name in ("roc.png", "confusion.png", "reliability.png"):
        assert cv2.imread(str(out / name)) is not None, name
    report = json.loads((out / "report.json").read_text())

    # The locked threshold, not one chosen on this split, and the counts behind every rate.
    checkpoint = Checkpoint.load(world.checkpoint)
    point = report["operating_point"]
    assert report["threshold"]["value"] == point["threshold"] == checkpoint.threshold
    assert report["threshold"]["method"] == "sensitivity"
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    assert (point["tp"], point["fp"], point["tn"], point["fn"]) == (tp, fp, tn, fn)
    assert point["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
    assert point["specificity"]["value"] == pytest.approx(tn / (tn + fp))
    assert report["accuracy"] == pytest.approx((tp + tn) / report["images"])
    for name in ("sensitivity", "specificity"):
        low, high = point[name]["ci_bootstrap"]
        assert low <= point[name]["value"] <= high
        assert point[name]["ci_wilson"][0] <= point[name]["value"] <= point[name]["ci_wilson"][1]

    # Recount independently from the model's probabilities.
    classifier = Classifier(checkpoint.build_model(), Photometric(checkpoint.preprocess))
    preds = predict(classifier, CachedDataset(world.cache, world.splits, "test"))
    positive = preds.probabilities(checkpoint.temperature)[:, 1].numpy() >= checkpoint.threshold
    labels = preds.labels.numpy()
    assert tp == int((positive & (labels == 1)).sum()) and fn == int((~positive & (labels == 1)).sum())

    tests = world.splits.rows_of("test")
    assert report["gradable"] == {"gradable": len(tests) - 1, "ungradable": 1, "total": len(tests), "rate": (len(tests) - 1) / len(tests)}
    assert report["images"] == len(tests) - 1 == sum(r["support"] for r in report["per_class"])
    assert report["qwk"] is None
    assert report["calibration"]["bins"] == 15 and report["calibration"]["ece_calibrated"] >= 0

    ood = report["ood"]
    assert ood["split"]["images"] == len(tests) - 1 and ood["ungradable"]["images"] == 1
    folder = ood["folder"]
    assert folder["files"] == 3 and folder["rejected"] == 3 and folder["accepted"] == 0
    assert folder["outcomes"]["black.png"] == {"stage": "quality", "rejected": True, "reason": "no fundus disc found (image is black)"}
    assert folder["outcomes"]["notes.txt"]["reason"].startswith("not an image")
    assert folder["outcomes"]["noise.png"]["rejected"] and folder["outcomes"]["noise.png"]["reason"]

    markdown = (out / "report.md").read_text()
    for text in ("87.2%", "90.7%", "sensitivity >= 0.9 on the validation split", "0.5000", "| Sensitivity |", "notes.txt"):
        assert text in markdown, text


def test_multiclass_report(world: World, tmp_path: Path) -> None:
    """icdr-5: argmax decisions, one-vs-rest AUCs, quadratic kappa, no threshold, no OOD statistics."""
    grades = {e.key: e.record.grade for e in world.cache.entries}
    rows = [dataclasses.replace(r, label=grades[r.key] if r.label is not None else None, scheme="icdr-5") for r in world.splits.rows]
    split_path = tmp_path / "icdr.csv"
    SplitFile(rows).write(split_path)
    config = ModelConfig(arch="small", input_size=64, head_hidden=0, num_classes=5)
    classes = list(get_scheme("icdr-5").classes)
    checkpoint = Checkpoint(config, SPEC, classes, "icdr-5", _untrained(config).state_dict(), metric="qwk")
    checkpoint.save(tmp_path / "best.pt")
    report, out = evaluate_checkpoint(tmp_path / "best.pt", "test", world.root / "cache", split_path, resamples=0)
    assert out == tmp_path / "eval-test"
    assert report["threshold"] is None and report["operating_point"] is None and report["ood"] is None
    assert report["qwk"] is not None and len(report["confusion_matrix"]) == 5
    assert len(report["per_class"]) == 5 and sum(r["support"] for r in report["per_class"]) == report["images"]
    assert all(cv2.imread(str(out / name)) is not None for name in ("roc.png", "confusion.png", "reliability.png"))


def test_errors_are_one_line(world: World, tmp_path: Path) -> None:
    checkpoint = Checkpoint.load(world.checkpoint)
    checkpoint.provenance = {"cache": str(tmp_path / "gone"), "split_file": str(world.split_path)}
    checkpoint.save(tmp_path / "moved.pt")
    cases = [
        ([str(tmp_path / "missing.pt")], "missing.pt: checkpoint not found"),
        ([str(tmp_path / "moved.pt")], "gone: cache not found"),
        ([str(world.checkpoint), "--data", str(tmp_path / "elsewhere")], "elsewhere: cache not found"),
        ([str(world.checkpoint), "--splits", str(tmp_path / "none.csv")], "none.csv: split file not found"),
        ([str(world.checkpoint), "--split", "holdout"], "unknown split 'holdout'"),
        ([str(world.checkpoint), "--ood", str(tmp_path / "nothing")], "nothing: --ood folder not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["evaluate", *args])
        assert isinstance(result.exception, MobiledrError), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception), str(result.exception)
