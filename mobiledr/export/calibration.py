"""Calibration images for static int8 quantization: real geometric-stage images from a prepared cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mobiledr.data.cache import Cache
from mobiledr.data.geometry import resize_square
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile
from mobiledr.errors import MobiledrError

log = logging.getLogger(__name__)


def calibration_images(
    cache_path: Path, spec: PreprocessSpec, samples: int, split_file: Path | None = None, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """``samples`` images (N, S, S, 3) uint8 RGB at ``spec.size`` and a description for the manifest.

    Draws from the training split of ``split_file`` when it exists and covers the cache (the images
    the model was fitted on), else from every gradable cached image; a seeded random choice. Cached
    images of another size are resized with the geometric stage's :func:`resize_square`.
    """
    if samples < 1:
        raise MobiledrError(f"--calibration-samples must be >= 1, got {samples}")
    cache = Cache.open(cache_path)
    if cache.spec.mode != spec.mode:
        raise MobiledrError(f"{cache_path}: calibration cache holds {cache.spec.mode} images, the model expects {spec.mode}")
    entries = {e.key: e for e in cache.entries}
    source = "all gradable images"
    candidates = [e for e in cache.entries if e.record.gradable]
    if split_file is not None and split_file.is_file():
        train = [entries[r.key] for r in SplitFile.read(split_file).rows_of("train") if r.key in entries]
        if train:
            candidates, source = train, f"train split of {split_file}"
    if not candidates:
        raise MobiledrError(f"{cache_path}: no gradable images to calibrate on")
    if len(candidates) < samples:
        log.warning("calibrating on %d images (%d asked for): that is all %s holds", len(candidates), samples, cache_path)
    order = np.random.default_rng(seed).permutation(len(candidates))[:samples]
    images = []
    for index in order:
        image = cache.image(candidates[index])
        images.append(image if image.shape[0] == spec.size else resize_square(image, spec.size))
    info = {"cache": str(Path(cache_path).resolve()), "source": source, "samples": len(images), "seed": seed, "cache_size": cache.spec.size}
    return np.stack(images), info


def split_images(cache_path: Path, spec: PreprocessSpec, split_file: Path, split: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """The labelled images of one split (N, S, S, 3) uint8, their labels, their patient groups (for the
    cluster bootstrap) and a description: what ``mobiledr export`` judges int8 recipes on (the
    validation split; never test). ``limit`` > 0 keeps an evenly spaced subset."""
    cache = Cache.open(cache_path)
    entries = {e.key: e for e in cache.entries}
    rows = [r for r in SplitFile.read(split_file).rows_of(split) if r.label is not None and r.key in entries]
    if not rows:
        raise MobiledrError(f"{split_file}: the {split} split has no labelled images in {cache_path}")
    if 0 < limit < len(rows):
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    images = []
    for row in rows:
        image = cache.image(entries[row.key])
        images.append(image if image.shape[0] == spec.size else resize_square(image, spec.size))
    groups = [f"patient:{r.patient_id}" if r.patient_id else f"image:{r.key}" for r in rows]
    info = {"split_file": str(Path(split_file).resolve()), "split": split, "images": len(rows), "cache": str(Path(cache_path).resolve())}
    return np.stack(images), np.array([int(r.label) for r in rows]), groups, info
