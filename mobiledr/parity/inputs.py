"""The images parity feeds every artifact: geometric-stage outputs (N, 3, S, S) float32 0-255, from a
prepared cache's split, a folder of photographs, or freshly generated synthetic photographs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import CachedDataset
from mobiledr.data.geometry import geometric, load_folder, resize_square
from mobiledr.data.labels import get_scheme
from mobiledr.data.records import Record
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SPLITS, SplitFile
from mobiledr.data.synth import DEFAULT_GRADE_WEIGHTS, generate_fundus
from mobiledr.errors import MobiledrError
from mobiledr.progress import progress_bar


@dataclass
class ParityInputs:
    images: np.ndarray  # (N, 3, S, S) float32 RGB 0-255: what an app feeds the model
    names: list[str]  # one per image (cache key, file name, synthetic index)
    labels: np.ndarray | None  # class index per image, None when unlabelled
    source: str  # where the images came from, for the report
    skipped: list[str] = field(default_factory=list)  # 'name: reason' for images that could not be used
    groups: list[str] | None = None  # patient id per image (cluster bootstrap); None: images are independent

    def __post_init__(self) -> None:
        if not len(self.images):
            raise MobiledrError(f"{self.source}: no usable images for parity" + (f" (first skipped: {self.skipped[0]})" if self.skipped else ""))


def _chw(images: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32)


def from_cache(cache_path: Path, split_path: Path, split: str, spec: PreprocessSpec, split_sha256: str | None = None) -> ParityInputs:
    """The labelled images of ``split`` in a prepared cache (resized when the cache size differs);
    ``split_sha256``, the hash the checkpoint recorded, must match the split file's."""
    if split not in SPLITS:
        raise MobiledrError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    cache, split_file = Cache.open(cache_path), SplitFile.read(split_path, split_sha256)
    if cache.spec.mode != spec.mode:
        raise MobiledrError(f"{cache_path}: a {cache.spec.mode} cache cannot feed a {spec.mode} model")
    dataset = CachedDataset(cache, split_file, split)  # checks the split against the cache
    images = []
    with progress_bar(f"reading the {split} split", len(dataset)) as bar:
        for entry, _ in dataset.items:
            image = cache.image(entry)
            images.append(image if image.shape[0] == spec.size else resize_square(image, spec.size))
            bar.advance()
    names = [entry.key for entry, _ in dataset.items]
    patients = {r.key: r.patient_id for r in split_file.rows}
    groups = [f"patient:{patients[key]}" if patients.get(key) else f"image:{key}" for key in names]
    return ParityInputs(_chw(images), names, np.array(dataset.labels, dtype=np.int64), f"{cache_path} ({split} split of {split_path.name})",
                        groups=groups if any(patients.get(key) for key in names) else None)  # fmt: skip


def from_folder(folder: Path, spec: PreprocessSpec) -> ParityInputs:
    """Unlabelled photographs, decoded and put through the geometric stage; unusable files are skipped
    and listed."""
    if not folder.is_dir():
        raise MobiledrError(f"{folder}: --images folder not found")
    with progress_bar("geometric stage") as bar:
        accepted, rejected = load_folder(folder, spec, bar.set)
    skipped = [f"{name}: {reason}" for name, reason in rejected.items()]
    images = _chw([image for _, image in accepted]) if accepted else np.zeros((0, 3, spec.size, spec.size), np.float32)
    return ParityInputs(images, [name for name, _ in accepted], None, str(folder), skipped)


def synthetic(n: int, spec: PreprocessSpec, scheme: str, seed: int) -> ParityInputs:
    """``n`` new synthetic fundus photographs (grades drawn like ``mobiledr data synth``'s, from a seed of
    their own, so they are held out from any generated training set) labelled with ``scheme``."""
    if spec.mode != "fundus":
        raise MobiledrError(f"--synthetic generates fundus photographs; this bundle's model takes {spec.mode} images (use --data or --images)")
    label_scheme = get_scheme(scheme)
    rng = np.random.default_rng(seed)
    weights = np.asarray(DEFAULT_GRADE_WEIGHTS) / np.sum(DEFAULT_GRADE_WEIGHTS)
    images, labels = [], []
    source_size = max(256, 2 * spec.size)
    with progress_bar("generating synthetic photographs", n) as bar:
        for i, image_rng in enumerate(rng.spawn(n)):
            grade = int(image_rng.choice(5, p=weights))
            photo, _ = generate_fundus(grade, source_size, image_rng, eye="left" if i % 2 == 0 else "right")
            images.append(geometric(photo, spec).image)
            labels.append(label_scheme.label(Record(Path(f"synthetic-{i:05d}"), grade, "synthetic")))
            bar.advance()
    return ParityInputs(_chw(images), [f"synthetic-{i:05d}" for i in range(n)], np.array(labels, dtype=np.int64),
                        f"{n} synthetic photographs (seed {seed}, {scheme} labels)")


def from_training_data(checkpoint: Path, spec: PreprocessSpec, scheme: str, data: Path | None, splits: Path | None, split: str,
                       fallback: int, seed: int) -> ParityInputs:  # fmt: skip
    """``split`` of ``data`` (default: the cache and split file the checkpoint was trained on); when those
    are gone and none was given, ``fallback`` synthetic photographs (fundus models only)."""
    from mobiledr.train.checkpoint import Checkpoint

    trained = Checkpoint.load(checkpoint).provenance
    cache = data or (Path(trained["cache"]) if trained.get("cache") else None)
    split_file = splits or (Path(trained["split_file"]) if trained.get("split_file") else None)
    if data is None and (cache is None or not cache.exists() or split_file is None or not split_file.exists()):
        if spec.mode != "fundus":
            raise MobiledrError("the checkpoint's cache or split file is gone: pass --data CACHE --splits FILE or --images DIR")
        return synthetic(fallback, spec, scheme, seed)
    if split_file is None:
        raise MobiledrError(f"{cache}: pass --splits FILE (the checkpoint names no split file)")
    return from_cache(cache, split_file, split, spec, trained.get("split_sha256"))
