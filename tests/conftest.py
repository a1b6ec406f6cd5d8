"""Shared fixtures: a small synthetic data set and its prepared cache, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobiledr.data.cache import Cache, prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import make_dataset

SYNTH_N = 40
SYNTH_SIZE = 192
CACHE_SIZE = 96


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, n=SYNTH_N, size=SYNTH_SIZE, seed=7)
    return root


@pytest.fixture(scope="session")
def synth_cache(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Cache:
    out = tmp_path_factory.mktemp("cache")
    return prepare(synth_dataset, "aptos", PreprocessSpec(size=CACHE_SIZE), out, workers=2).cache


TINY_SIZE = 64


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained MobileNetV3-Small + CBAM checkpoint at 64 px that behaves like a trained one
    numerically: BatchNorm statistics measured on the synthetic cache (a fresh initialisation's unit
    statistics make every activation vanish), a head whose logits spread over about +-2, OOD
    statistics fitted on the cache's pooled features, a temperature, a threshold, and the cache as
    its training data."""
    import numpy as np
    import torch

    from mobiledr.data.geometry import geometric, resize_square
    from mobiledr.export import golden
    from mobiledr.data.labels import get_scheme
    from mobiledr.data.photometric import Photometric
    from mobiledr.data.splits import make_splits
    from mobiledr.models import ModelConfig, build_model
    from mobiledr.train.checkpoint import Checkpoint, provenance
    from mobiledr.train.ood import fit_ood

    root = tmp_path_factory.mktemp("tiny-checkpoint")
    splits, _ = make_splits(synth_cache, get_scheme("any-dr"), val=0.25, test=0.25)
    splits.write(root / "splits.csv")
    torch.manual_seed(0)
    config = ModelConfig(name="tiny", arch="small", input_size=TINY_SIZE, head_hidden=0)
    spec = PreprocessSpec(size=TINY_SIZE)
    model = build_model(config)
    images = np.stack([resize_square(synth_cache.image(e), TINY_SIZE) for e in synth_cache.entries])
    # the golden photographs the bundle's self-checks run on are in the BatchNorm batch too: an untrained
    # network's activations on inputs its statistics never saw reach logits in the hundreds, far beyond any
    # trained model and beyond the absolute float32 limits the self-checks apply to logits
    goldens = np.stack([geometric(rgb, spec).image for _, rgb in golden.originals()])
    x = Photometric(spec)(torch.from_numpy(np.concatenate([images, goldens])).permute(0, 3, 1, 2).float())
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batch
    with torch.no_grad():
        model.train()(x)
        model.eval()
        _, pooled = model.forward_with_features(x)
        pooled = pooled[: len(images)]  # the head and the OOD statistics are fitted on the cache alone
        fc = model.head.fc[0]
        fc.weight.mul_(2.0 / (pooled @ fc.weight.T).std())  # logits spread over about +-2 on the cache
    labels = torch.arange(len(pooled)) % 2
    ood = fit_ood(pooled, labels, 2, pooled, 0.95)
    checkpoint = Checkpoint(
        config, spec, ["no-dr", "dr"], "any-dr", model.state_dict(), threshold=0.45, temperature=1.5,
        ood=ood, provenance=provenance(root / "splits.csv", synth_cache.root),
    )
    checkpoint.save(root / "best.pt")
    return root / "best.pt"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every format (android, ios and desktop targets) exported once, in two worker processes."""
    from mobiledr.export.bundle import ExportOptions, export_bundle
    from mobiledr.export.formats import select_formats

    out = tmp_path_factory.mktemp("bundles") / "all"
    export_bundle(ExportOptions(tiny_checkpoint, out, select_formats("all", None), "all", calibration_samples=8, jobs=2))
    return out


@pytest.fixture(scope="session")
def native_runner() -> Path:
    """The native runner (android_harness/native/) built for this machine once per session (CMake;
    incremental when already built)."""
    from mobiledr.bench.native import build_native

    return build_native()
