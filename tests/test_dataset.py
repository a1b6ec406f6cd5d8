"""The torch Dataset over a cache: labels from the split file, reproducible augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import Augment, CachedDataset
from mobiledr.data.labels import get_scheme
from mobiledr.data.splits import SplitFile, SplitRow, make_splits
from mobiledr.errors import MobiledrError

from .conftest import CACHE_SIZE


@pytest.fixture(scope="module")
def splits(synth_cache: Cache) -> SplitFile:
    return make_splits(synth_cache, get_scheme("any-dr"), val=0.2, test=0.2, seed=1)[0]


def test_items_and_labels(synth_cache: Cache, splits: SplitFile) -> None:
    train = CachedDataset(synth_cache, splits, "train")
    assert len(train) == len([r for r in splits.rows_of("train") if r.label is not None])
    image, label = train[0]
    assert image.shape == (3, CACHE_SIZE, CACHE_SIZE) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 255
    assert label == splits.rows_of("train")[0].label
    reference = torch.from_numpy(synth_cache.image(train.items[0][0]).astype(np.float32)).permute(2, 0, 1)
    assert torch.equal(image, reference)  # no augmentation: the cached image itself
    batch, labels = next(iter(DataLoader(train, batch_size=4)))
    assert batch.shape == (4, 3, CACHE_SIZE, CACHE_SIZE) and labels.tolist() == train.labels[:4]


def test_augmentation_is_seeded_per_epoch(synth_cache: Cache, splits: SplitFile) -> None:
    train = CachedDataset(synth_cache, splits, "train", augment=Augment(), seed=5)
    first, _ = train[2]
    again, _ = train[2]
    assert torch.equal(first, again)
    train.set_epoch(1)
    other, _ = train[2]
    assert not torch.equal(first, other)
    plain, _ = CachedDataset(synth_cache, splits, "train")[2]
    assert not torch.equal(first, plain)
    # The black border stays black: the corners of a centred disc are outside it.
    assert float(first[:, 0, 0].max()) == 0.0 and float(first[:, -1, -1].max()) == 0.0


def test_rotation_keeps_the_disc(synth_cache: Cache) -> None:
    image = synth_cache.image(synth_cache.entries[0])
    rotated = Augment(rotation=180, hflip=0, vflip=0, brightness=0, contrast=0, saturation=0)(image, np.random.default_rng(0))
    disc = image.max(axis=2) > 20
    assert abs(int((rotated.max(axis=2) > 20).sum()) - int(disc.sum())) < 0.03 * disc.sum()


def test_split_file_must_match_cache(synth_cache: Cache, splits: SplitFile) -> None:
    stranger = SplitRow("train_images/not-there.png", "train", 1, "DR", "any-dr", "p", "x")
    with pytest.raises(MobiledrError, match="does not match the cache"):
        CachedDataset(synth_cache, SplitFile([*splits.rows, stranger]), "train")
