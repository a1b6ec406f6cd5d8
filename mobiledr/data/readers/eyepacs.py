"""EyePACS (Kaggle 2015): ``trainLabels.csv`` and the test solution ``retinopathy_solution.csv``."""

from __future__ import annotations

import re
from pathlib import Path

from mobiledr.data.readers._common import Collector, FileIndex, cell, open_root, parse_grade, read_table, table_rows
from mobiledr.data.records import ReadResult

KEY = "eyepacs"
_FILES = {"trainLabels.csv": ("train", "train"), "retinopathy_solution.csv": ("test", "test")}
_NAME = re.compile(r"(.+)_(left|right)", re.IGNORECASE)


def read_eyepacs(root: Path) -> ReadResult:
    """Grades 0-4 for ``train/{image}.jpeg`` and ``test/{image}.jpeg``; ``10_left`` is patient 10, left eye."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    for name, labels in index.require_any(*_FILES).items():
        folder, split = _FILES[name]
        for number, cells in table_rows(read_table(labels, ("image", "level"))):
            with collector.row(labels, number) as row:
                image = cell(cells, "image")
                grade = parse_grade(cells["level"], 4)
                path = index.image(f"{image}.jpeg", labels.parent / folder)
                match = _NAME.fullmatch(image)
                row.add(
                    path,
                    grade,
                    patient_id=match[1] if match else None,
                    eye=match[2].lower() if match else None,
                    source_split=split,
                )
    return collector.result
