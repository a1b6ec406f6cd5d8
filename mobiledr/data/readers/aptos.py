"""APTOS 2019: ``train.csv`` (``id_code, diagnosis``) with ``train_images/{id_code}.png``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mobiledr.data.readers._common import (
    Collector,
    FileIndex,
    cell,
    open_root,
    parse_eye,
    parse_grade,
    read_table,
    table_rows,
)
from mobiledr.data.records import ReadResult

if TYPE_CHECKING:
    import pandas as pd

KEY = "aptos"
# (labels file, image folder next to it, official split); test.csv counts only with a diagnosis column.
_FILES = (("train.csv", "train_images", "train"), ("test.csv", "test_images", "test"))


def read_aptos(root: Path) -> ReadResult:
    """Grades 0-4; ``patient_id``/``eye`` come from optional columns of those names (synthetic data)."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    tables: list[tuple[Path, pd.DataFrame, str, str]] = []
    for name, folder, split in _FILES:
        labels = index.find_file(name)
        if labels is not None:
            table = read_table(labels, ("id_code", "diagnosis") if split == "train" else ("id_code",))
            if "diagnosis" in table.columns:
                tables.append((labels, table, folder, split))
    if not tables:
        raise index.expected("train.csv", "test.csv with a diagnosis column")
    for labels, table, folder, split in tables:
        for number, cells in table_rows(table):
            with collector.row(labels, number) as row:
                grade = parse_grade(cells["diagnosis"], 4)
                path = index.image(f"{cell(cells, 'id_code')}.png", labels.parent / folder)
                row.add(
                    path,
                    grade,
                    patient_id=cells.get("patient_id"),
                    eye=parse_eye(cells.get("eye", "")),
                    source_split=split,
                )
    return collector.result
