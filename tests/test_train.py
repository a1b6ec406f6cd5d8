"""Training: loss goes down, resume is exact, DDP on gloo, calibration on validation, bad input."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import CachedDataset
from mobiledr.data.labels import get_scheme
from mobiledr.data.photometric import Photometric
from mobiledr.data.splits import SplitFile, make_splits
from mobiledr.io import file_sha256
from mobiledr.errors import MobiledrError
from mobiledr.train import loop
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.config import TrainConfig, load_train_config
from mobiledr.train.inference import Classifier, predict
from mobiledr.train.threshold import choose_threshold

from .conftest import CACHE_SIZE

TINY = [f"model.input_size={CACHE_SIZE}", f"preprocess.size={CACHE_SIZE}", "workers=0", "batch_size=8"]


def tiny_config(*overrides: str) -> TrainConfig:
    return load_train_config("demo", overrides=[*TINY, *overrides])


@pytest.fixture(scope="module")
def splits_file(synth_cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("splits") / "splits.csv"
    make_splits(synth_cache, get_scheme("any-dr"), val=0.25, test=0.2, seed=2)[0].write(path)
    return path


@pytest.fixture(scope="module")
def trained(synth_cache: Cache, splits_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    loop.train(tiny_config("epochs=4", "freeze_epochs=1", "lr=3e-3"), synth_cache.root, splits_file, out)
    return out


def read_history(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_training_lowers_the_loss_and_writes_the_run(trained: Path) -> None:
    history = read_history(trained)
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4]
    assert [int(r["stage"]) for r in history] == [1, 2, 2, 2]
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    for name in ("config.yaml", "metrics.jsonl", "curves.png", "last.pt", "best.pt", "summary.json"):
        assert (trained / name).is_file(), name


def test_best_checkpoint_carries_what_later_stages_need(trained: Path, synth_cache: Cache, splits_file: Path) -> None:
    best = Checkpoint.load(trained / "best.pt")
    assert best.labels == ["no DR", "DR"] and best.scheme == "any-dr" and best.metric == "auc"
    assert best.preprocess.size == CACHE_SIZE and best.model_config.input_size == CACHE_SIZE
    assert 0.0 <= best.threshold <= 1.0 and best.temperature > 0
    assert best.ood is not None and best.ood.means.shape == (2, 576)
    rank = best.ood.info["rank"]  # whitened: rank leading directions of the shared covariance, chosen on validation
    assert best.ood.components.shape == (rank, 576) and best.ood.scales.shape == (rank,) and best.ood.info["val_gate_agreement_with_full_rank"] >= 0.995
    assert best.provenance["split_sha256"] == file_sha256(splits_file)
    assert best.provenance["libraries"]["torch"].startswith("2.13")
    assert best.resume is None and Checkpoint.load(trained / "last.pt").resume is not None
    # The operating threshold is the one chosen on the validation split (calibrated probabilities).
    splits = SplitFile.read(splits_file)
    classifier = Classifier(best.build_model(), Photometric(best.preprocess))
    val = predict(classifier, CachedDataset(synth_cache, splits, "val"))
    probs = val.probabilities(best.temperature)[:, 1].numpy()
    assert best.threshold == pytest.approx(choose_threshold(val.labels.numpy(), probs, "sensitivity", 0.9))
    assert (probs[val.labels.numpy() == 1] >= best.threshold).mean() >= 0.9


def test_resume_after_a_crash_matches_an_uninterrupted_run(synth_cache: Cache, splits_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config("epochs=3", "freeze_epochs=1")
    loop.train(config, synth_cache.root, splits_file, tmp_path / "straight")
    real_epoch = loop.Trainer._train_epoch

    def crash_in_third_epoch(self: loop.Trainer, epoch: int) -> tuple[float, float]:
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        return real_epoch(self, epoch)

    monkeypatch.setattr(loop.Trainer, "_train_epoch", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config, synth_cache.root, splits_file, tmp_path / "crashed")
    assert Checkpoint.load(tmp_path / "crashed" / "last.pt").epoch == 2
    monkeypatch.setattr(loop.Trainer, "_train_epoch", real_epoch)
    loop.train(None, None, None, tmp_path / "crashed", resume=True)
    straight, resumed = Checkpoint.load(tmp_path / "straight" / "last.pt"), Checkpoint.load(tmp_path / "crashed" / "last.pt")
    assert resumed.epoch == straight.epoch == 3
    for key, tensor in straight.state_dict.items():
        assert torch.equal(tensor, resumed.state_dict[key]), key
    drop = ("images_per_s", "seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_history(tmp_path / "straight")] == [
        {k: v for k, v in r.items() if k not in drop} for r in read_history(tmp_path / "crashed")
    ]
    with pytest.raises(MobiledrError, match="already there; use --resume"):
        loop.train(config, synth_cache.root, splits_file, tmp_path / "straight")


def test_two_process_gloo_ddp(synth_cache: Cache, splits_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "mobiledr", "train",
        "--data", str(synth_cache.root), "--splits", str(splits_file), "--out", str(out), "--preset", "demo",
        *[arg for item in [*TINY, "epochs=2", "freeze_epochs=0"] for arg in ("--set", item)],
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = Checkpoint.load(out / "best.pt")
    assert best.ood is not None and best.threshold is not None
    assert [int(r["epoch"]) for r in read_history(out)] == [1, 2]
    assert proc.stdout.count("best.pt: epoch") == 1  # only rank 0 reports


def test_bad_inputs(synth_cache: Cache, splits_file: Path, tmp_path: Path) -> None:
    config = tiny_config("epochs=1", "freeze_epochs=0")
    with pytest.raises(MobiledrError, match="not a mobiledr cache"):
        loop.train(config, tmp_path / "nowhere", splits_file, tmp_path / "a")
    with pytest.raises(MobiledrError, match="split file not found"):
        loop.train(config, synth_cache.root, tmp_path / "none.csv", tmp_path / "a")
    rows = SplitFile.read(splits_file).rows
    foreign = SplitFile([type(r)(f"x/{r.key}", r.split, r.label, r.class_name, r.scheme, r.patient_id, r.source) for r in rows])
    foreign.write(tmp_path / "foreign.csv")
    with pytest.raises(MobiledrError, match="does not match the cache"):
        loop.train(config, synth_cache.root, tmp_path / "foreign.csv", tmp_path / "b")
    one_class = SplitFile([type(r)(r.key, r.split, 0 if r.split == "train" else r.label, r.class_name, r.scheme, r.patient_id, r.source) for r in rows])
    one_class.write(tmp_path / "one_class.csv")
    with pytest.raises(MobiledrError, match="class 'DR' has no training images"):
        loop.train(config, synth_cache.root, tmp_path / "one_class.csv", tmp_path / "c")
    with pytest.raises(MobiledrError, match="made for scheme any-dr"):
        loop.train(tiny_config("scheme=referable-dr"), synth_cache.root, splits_file, tmp_path / "d")
    with pytest.raises(MobiledrError, match="prepared at 96px"):
        loop.train(load_train_config("demo"), synth_cache.root, splits_file, tmp_path / "e")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synth_cache: Cache, splits_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_epoch = loop.Trainer._train_epoch

    def poison_second_epoch(self: loop.Trainer, epoch: int) -> tuple[float, float]:
        if epoch == 1:
            with torch.no_grad():
                self.model.head.fc[-1].weight.fill_(float("nan"))
        return real_epoch(self, epoch)

    monkeypatch.setattr(loop.Trainer, "_train_epoch", poison_second_epoch)
    out = tmp_path / "nan"
    with pytest.raises(MobiledrError, match=r"epoch 2, step 1: loss is nan; training stopped \(last good checkpoint: .*last.pt\)"):
        loop.train(tiny_config("epochs=3", "freeze_epochs=0"), synth_cache.root, splits_file, out)
    last = Checkpoint.load(out / "last.pt")
    assert last.epoch == 1 and all(torch.isfinite(t).all() for t in last.state_dict.values() if t.is_floating_point())


def test_corrupt_checkpoint_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"\x80\x02 truncated pickle")
    with pytest.raises(MobiledrError, match="last.pt: cannot read checkpoint"):
        loop.train(None, None, None, run, resume=True)
    shutil.rmtree(run)
    with pytest.raises(MobiledrError, match="last.pt: checkpoint not found"):
        loop.train(None, None, None, run, resume=True)


def test_config_layers_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("lr: 0.0005\nmodel:\n  dropout: 0.3\n")
    config = load_train_config("thesis-dr-small", path, ["epochs=7", "model.head_hidden=0", "amp=off"])
    assert (config.lr, config.epochs, config.model.arch, config.model.dropout, config.model.head_hidden) == (0.0005, 7, "small", 0.3, 0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    oct_config = load_train_config("oct-kermany")
    assert (oct_config.scheme, oct_config.preprocess.mode, oct_config.freeze_epochs, oct_config.lr) == ("oct-4", "oct", 10, 1e-5)
    for overrides, message in [
        (["nope=1"], "unknown key 'nope'"),
        (["model.colour=red"], "unknown key 'colour'"),
        (["epochs"], "expected key=value"),
        (["optimizer=sgd"], "optimizer='sgd'"),
        (["epochs=two"], "epochs must be int"),
        (["preprocess.size=256"], "differs from preprocess.size"),
    ]:
        with pytest.raises(MobiledrError, match=message):
            load_train_config("thesis-dr", overrides=overrides)
    with pytest.raises(MobiledrError, match="unknown preset"):
        load_train_config("gpt")


def test_amp_choice() -> None:
    cpu = torch.device("cpu")
    assert loop.amp_dtype("auto", cpu) is None and loop.amp_dtype("off", cpu) is None
    assert loop.amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(MobiledrError, match="fp16 needs a CUDA GPU"):
        loop.amp_dtype("fp16", cpu)
    assert np.isnan(loop.validation_score("auc", np.zeros(4, int), np.full((4, 2), 0.5)))
