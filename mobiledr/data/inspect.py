"""What a data set holds: counts per class, official split and patient, and a contact sheet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mobiledr.data.geometry import ImageRejected, load_geometric
from mobiledr.data.records import ReadResult, Record
from mobiledr.data.spec import PreprocessSpec
from mobiledr.plots import save_figure


def class_name(record: Record) -> str:
    """A record's label as a person reads it."""
    if not record.gradable or record.grade is None:
        return "ungradable"
    if record.classes:
        return record.classes[record.grade]
    return f"grade {record.grade}"


@dataclass
class DatasetStats:
    images: int
    per_class: Counter = field(default_factory=Counter)
    per_source_split: Counter = field(default_factory=Counter)
    patients: int = 0
    images_per_patient: Counter = field(default_factory=Counter)  # n images -> n patients
    without_patient: int = 0
    skipped: int = 0


def dataset_stats(result: ReadResult) -> DatasetStats:
    stats = DatasetStats(images=len(result.records), skipped=len(result.skipped))
    per_patient: Counter = Counter()
    for record in result.records:
        stats.per_class[class_name(record)] += 1
        stats.per_source_split[record.source_split or "-"] += 1
        if record.patient_id:
            per_patient[record.patient_id] += 1
        else:
            stats.without_patient += 1
    stats.patients = len(per_patient)
    stats.images_per_patient = Counter(per_patient.values())
    return stats


def contact_sheet(records: list[Record], path: str | Path, per_class: int = 6, size: int = 160, seed: int = 0) -> int:
    """A PNG grid, one row per class, of circle-cropped sample images. Returns the images shown."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Record]] = {}
    for record in records:
        by_class.setdefault(class_name(record), []).append(record)
    names = sorted(by_class)
    spec = PreprocessSpec(size=size, mode="oct" if any(r.dataset == "kermany" for r in records) else "fundus")
    fig = Figure(figsize=(per_class * 1.6, len(names) * 1.7))
    axes = fig.subplots(len(names), per_class, squeeze=False)
    shown = 0
    for row, name in enumerate(names):
        candidates = by_class[name]
        order = rng.permutation(len(candidates))
        col = 0
        for i in order:
            if col == per_class:
                break
            try:
                image = load_geometric(candidates[i].path, spec).image
            except ImageRejected:
                continue
            axes[row, col].imshow(image)
            col += 1
            shown += 1
        axes[row, 0].set_ylabel(f"{name}\n(n={len(candidates)})", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    save_figure(fig, path, dpi=100)
    return shown
