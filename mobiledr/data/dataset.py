"""A torch ``Dataset`` over a prepared cache and a split file, with seedable online augmentation.

Items are geometric-stage images as float32 CHW tensors in 0-255 plus the label; the photometric
stage (``mobiledr.data.photometric.Photometric``) runs on whole batches, on the GPU when present.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mobiledr.data.cache import Cache, CacheEntry
from mobiledr.data.splits import SplitFile
from mobiledr.errors import MobiledrError


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of the geometric-stage image (the disc is centred)."""

    rotation: float = 180.0  # degrees: uniform in [-rotation, rotation]; 180 = any angle
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: float = 0.2  # multiply by 1 +- this
    contrast: float = 0.2  # scale around the mean by 1 +- this
    saturation: float = 0.1  # blend with grey by 1 +- this

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = rgb.shape[0]
        image = rgb
        if self.rotation:
            angle = rng.uniform(-self.rotation, self.rotation)
            matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, 1.0)
            image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        if rng.random() < self.hflip:
            image = image[:, ::-1]
        if rng.random() < self.vflip:
            image = image[::-1]
        out = image.astype(np.float32)
        disc = out.max(axis=2, keepdims=True) > 0  # keep the black border black
        if self.brightness:
            out *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            mean = out[disc[..., 0]].mean() if disc.any() else 0.0
            out = (out - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation:
            grey = out.mean(axis=2, keepdims=True)
            out = grey + (out - grey) * rng.uniform(1 - self.saturation, 1 + self.saturation)
        return np.clip(out * disc, 0, 255)


class CachedDataset(Dataset):
    """The labelled images of one split. ``set_epoch`` reseeds augmentation reproducibly."""

    def __init__(self, cache: Cache, splits: SplitFile, split: str, augment: Augment | None = None, seed: int = 0) -> None:
        by_key = {e.key: e for e in cache.entries}
        rows = [r for r in splits.rows_of(split) if r.label is not None]
        missing = [r.key for r in rows if r.key not in by_key]
        if missing:
            raise MobiledrError(f"the split file does not match the cache {cache.root}: {len(missing)} images missing (first: {missing[0]})")
        if not rows:
            raise MobiledrError(f"the {split} split has no labelled images")
        self.cache = cache
        self.items: list[tuple[CacheEntry, int]] = [(by_key[r.key], int(r.label)) for r in rows]  # type: ignore[arg-type]
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        entry, label = self.items[index]
        image = self.cache.image(entry)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image = self.augment(image, rng)
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1), label
