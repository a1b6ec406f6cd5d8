"""Messidor-2: adjudicated grades ``messidor_data.csv``; exam pairs from ``messidor-2.csv`` when present."""

from __future__ import annotations

from pathlib import Path

from mobiledr.data.readers._common import (
    Collector,
    FileIndex,
    cell,
    open_root,
    parse_dme,
    parse_grade,
    read_table,
    table_rows,
)
from mobiledr.data.records import ReadResult

KEY = "messidor2"


def _exams(pairs: Path | None) -> dict[str, tuple[str, str]]:
    """Image stem (lower case) -> (exam id, eye) from the ``left;right`` rows of ``messidor-2.csv``.

    The exam id is the exam's left image name as listed (the right one's when the left is empty).
    """
    exams: dict[str, tuple[str, str]] = {}
    if pairs is None:
        return exams
    for _, cells in table_rows(read_table(pairs, ("left", "right"))):
        exam = cells["left"] or cells["right"]
        for eye in ("left", "right"):
            if cells[eye]:
                exams.setdefault(Path(cells[eye]).stem.lower(), (exam, eye))
    return exams


def read_messidor2(root: Path) -> ReadResult:
    """ICDR grades 0-4 and ``adjudicated_dme`` (0/1); ``adjudicated_gradable == 0`` or an empty grade is
    an ungradable record."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    labels = index.require_file("messidor_data.csv")
    table = read_table(labels, ("image_id", "adjudicated_dr_grade", "adjudicated_gradable"))
    exams = _exams(index.find_file("messidor-2.csv"))
    for number, cells in table_rows(table):
        with collector.row(labels, number) as row:
            name = cell(cells, "image_id")
            flag = cells["adjudicated_gradable"]
            gradable = not flag or parse_grade(flag, 1, "adjudicated_gradable") == 1
            text = cells["adjudicated_dr_grade"]
            grade = parse_grade(text, 4) if gradable and text else None
            path = index.image(name, labels.parent / "IMAGES")
            exam, eye = exams.get(Path(name).stem.lower(), (None, None))
            row.add(path, grade, patient_id=exam, eye=eye, dme=parse_dme(cells.get("adjudicated_dme", ""), 1, "adjudicated_dme"))
    return collector.result
