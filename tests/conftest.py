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
