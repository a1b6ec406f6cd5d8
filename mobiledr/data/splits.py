"""Stratified, patient-grouped train/val/test splits, written to a CSV that later commands read."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mobiledr.data.cache import Cache, CacheEntry
from mobiledr.data.duplicates import Candidate, PairRow, find_near_duplicates
from mobiledr.data.labels import LabelScheme
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_csv, file_sha256

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
COLUMNS = ["key", "split", "label", "class_name", "scheme", "patient_id", "source"]
POSITIVE_COLUMN = "positive"  # the referred class of binary schemes (label 1); optional for older files


@dataclass(frozen=True)
class SplitRow:
    key: str
    split: str
    label: int | None  # None: ungradable, never trained on but counted
    class_name: str
    scheme: str
    patient_id: str
    source: str


@dataclass
class SplitFile:
    rows: list[SplitRow]
    positive: str | None = None  # the positive (referred) class of a binary scheme: label 1
    sha256: str | None = None  # of the file it was read from

    @property
    def scheme(self) -> str:
        return self.rows[0].scheme

    def rows_of(self, split: str) -> list[SplitRow]:
        return [r for r in self.rows if r.split == split]

    def write(self, path: str | Path) -> None:
        positive = self.positive or ""
        atomic_write_csv(
            path,
            [*COLUMNS, POSITIVE_COLUMN],
            ([r.key, r.split, "" if r.label is None else r.label, r.class_name, r.scheme, r.patient_id, r.source, positive] for r in self.rows),
        )

    @classmethod
    def read(cls, path: str | Path, expected_sha256: str | None = None) -> SplitFile:
        """Read a split file; with ``expected_sha256`` (the hash a checkpoint recorded when it was
        trained) a file that has changed since is a one-line error, never silently scored."""
        path = Path(path)
        if not path.is_file():
            raise MobiledrError(f"{path}: split file not found; create it with 'mobiledr data split'")
        sha256 = file_sha256(path)
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise MobiledrError(
                f"{path}: split file changed since the model was trained (sha256 {sha256[:12]}, the checkpoint recorded "
                f"{expected_sha256[:12]}): its splits may put training images in the evaluated split; use the original file"
            )
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise MobiledrError(f"{path}: not a mobiledr split file (missing column {missing[0]})")
            rows, positives = [], set()
            for number, row in enumerate(reader, start=1):
                positives.add(row.get(POSITIVE_COLUMN) or "")
                if row["split"] not in SPLITS:
                    raise MobiledrError(f"{path}, row {number}: unknown split {row['split']!r}")
                label = int(row["label"]) if row["label"] else None
                rows.append(SplitRow(row["key"], row["split"], label, row["class_name"], row["scheme"], row["patient_id"], row["source"]))
        if not rows:
            raise MobiledrError(f"{path}: the split file is empty")
        if len(positives) > 1:
            raise MobiledrError(f"{path}: rows name different positive classes ({', '.join(sorted(positives))})")
        return cls(rows, positives.pop() or None, sha256)


def _group_ids(entries: list[CacheEntry], merge_pairs: list[tuple[int, int]]) -> list[str]:
    """One group per patient (per image when unknown), unioned over ``merge_pairs``."""
    groups = [f"patient:{e.record.patient_id}" if e.record.patient_id else f"image:{e.key}" for e in entries]
    parent = {g: g for g in groups}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for i, j in merge_pairs:
        parent[find(groups[i])] = find(groups[j])
    return [find(g) for g in groups]


FRACTION_TOLERANCE = 0.025  # one fold is used while it holds within 2.5 points of the fraction asked


def _folds_for(fraction: float, patients: int) -> tuple[int, int]:
    """(folds taken, of n_splits): one fold of round(1 / fraction) while that is within
    FRACTION_TOLERANCE of ``fraction``, else the several folds of at most 10 closest to it.
    0.4 -> 2 of 5 (one fold of round(2.5) = 2 would hold 50%), 0.15 -> 1 of 7, 0.3 -> 3 of 10."""
    single = max(2, round(1 / fraction))
    if patients < single:
        raise MobiledrError(f"only {patients} patients: too few for a {fraction:.0%} split")
    if abs(1 / single - fraction) <= FRACTION_TOLERANCE:
        return 1, single
    candidates = [(abs(m / n - fraction), m, n) for n in range(2, min(10, patients) + 1) for m in range(1, n)]
    _, m, n = min(candidates, key=lambda c: (round(c[0], 9), c[1], c[2]))
    return m, n


def _one_fold(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of stratified, group-disjoint folds holding about ``fraction`` of the samples."""
    taken, n_splits = _folds_for(fraction, len(set(groups)))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    mask = np.zeros(len(labels), dtype=bool)
    for _, (_, held) in zip(range(taken), splitter.split(np.zeros(len(labels)), labels, groups)):
        mask[held] = True
    return mask


def flag_duplicates(cache: Cache) -> list[Candidate]:
    """Near-duplicate pairs of the cache's images (indices into ``cache.entries``), each verified on
    the cached images' keypoints (``mobiledr.data.duplicates``)."""
    entries = cache.entries
    search = find_near_duplicates([e.processed.fingerprint for e in entries], lambda i: cache.image(entries[i]))
    log.info("near-duplicates: %d candidate pairs verified, %d flagged", len(search.candidates), len(search.pairs))
    return search.pairs


def pair_rows(cache: Cache, flagged: list[Candidate], split_file: SplitFile) -> list[PairRow]:
    """The flagged pairs with their keys, splits and patients (for the evidence CSV and the sheet)."""
    split_of = {r.key: r.split for r in split_file.rows}
    entries = cache.entries
    return [
        PairRow(a.key, b.key, split_of[a.key], split_of[b.key], a.record.patient_id or "", b.record.patient_id or "", c)
        for c in flagged
        for a, b in [(entries[c.i], entries[c.j])]
    ]


def make_splits(
    cache: Cache,
    scheme: LabelScheme,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    merge_duplicates: bool = False,
    flagged: list[Candidate] | None = None,
) -> tuple[SplitFile, list[tuple[CacheEntry, CacheEntry]]]:
    """Assign every cached image to train/val/test; returns the splits and the cross-split duplicates.

    Patients (both eyes, every scan) never cross splits. With ``merge_duplicates`` near-duplicate
    photographs are grouped like one patient first, so none can end up on both sides. ``flagged``:
    the pairs from :func:`flag_duplicates` when the caller already has them.
    """
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise MobiledrError(f"--val and --test must be fractions with val + test < 1, got {val} and {test}")
    entries = cache.entries
    labels = [scheme.label(e.record) for e in entries]

    def flagged_pairs() -> list[tuple[int, int]]:
        return [(c.i, c.j) for c in (flag_duplicates(cache) if flagged is None else flagged)]

    pairs = flagged_pairs() if merge_duplicates else None  # else looked for once the splits stand
    if merge_duplicates and pairs:
        log.info("%d near-duplicate pairs kept in one split each (--merge-duplicates)", len(pairs))
    groups = np.array(_group_ids(entries, pairs or []))
    gradable = np.array([label is not None for label in labels])
    if not gradable.any():
        raise MobiledrError(f"{cache.root}: no gradable images to split")
    y = np.array([label if label is not None else -1 for label in labels])
    split = np.full(len(entries), "train", dtype=object)
    idx = np.flatnonzero(gradable)
    test_mask = _one_fold(y[idx], groups[idx], test, seed)
    split[idx[test_mask]] = "test"
    rest = idx[~test_mask]
    val_mask = _one_fold(y[rest], groups[rest], val / (1 - test), seed + 1)
    split[rest[val_mask]] = "val"
    # Ungradable images follow their patient; patients with none gradable are drawn at random.
    group_split = {groups[i]: split[i] for i in idx}
    rng = np.random.default_rng(seed)
    for i in np.flatnonzero(~gradable):
        if groups[i] not in group_split:
            group_split[groups[i]] = rng.choice(SPLITS, p=[1 - val - test, val, test])
        split[i] = group_split[groups[i]]
    for name in SPLITS:
        if not (split[gradable] == name).any():
            raise MobiledrError(f"the {name} split is empty: too few patients for --val {val} --test {test}")
    rows = [
        SplitRow(e.key, str(s), label, scheme.classes[label] if label is not None else "ungradable", scheme.name, e.record.patient_id or "", str(e.record.path))
        for e, s, label in zip(entries, split, labels)
    ]
    duplicates = [(entries[i], entries[j]) for i, j in (flagged_pairs() if pairs is None else pairs) if split[i] != split[j]]
    return SplitFile(rows, scheme.positive), duplicates
