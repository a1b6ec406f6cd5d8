"""ODIR-5K: one workbook row per patient, two eyes each; per-eye DR grades from the diagnostic keywords."""

from __future__ import annotations

import re
from pathlib import Path

from mobiledr.data.readers._common import (
    Collector,
    FileIndex,
    RowError,
    cell,
    open_root,
    parse_grade,
    read_table,
    table_rows,
)
from mobiledr.data.records import ReadResult
from mobiledr.errors import MobiledrError

KEY = "odir"
_REQUIRED = ("ID", "Left-Fundus", "Right-Fundus", "Left-Diagnostic Keywords", "Right-Diagnostic Keywords", "D")
_SEPARATOR = re.compile(r"[,，;；]")
_STAGES = {"mild": 1, "moderate": 2, "severe": 3}
_QUALITY = (
    "lens dust",
    "image quality",
    "image offset",
    "optic disk photographically invisible",
    "anterior segment image",
    "no fundus image",
)


def _workbook(index: FileIndex) -> Path:
    """``data.xlsx``, else the one ``.xlsx`` under the root."""
    data = index.find_file("data.xlsx")
    if data is not None:
        return data
    books = [p for p in index.matching(re.compile(r".+\.xlsx")) if not p.name.startswith("~$")]
    if len(books) > 1:
        raise MobiledrError(f"{KEY}: several .xlsx under {index.root} and no data.xlsx; point the root at one")
    if not books:
        raise index.expected("data.xlsx (or another .xlsx with the ODIR columns)")
    return books[0]


def _dr_stage(keyword: str) -> int | None:
    """1-4 for a staged DR keyword; ``None`` for anything else. Raises on DR without a stage."""
    text = re.sub(r"non[\s-]*proliferative", "nonproliferative", keyword.lower())
    words = text.split()
    if "retinopathy" not in words or not ("diabetic" in words or "proliferative" in text):
        return None  # hypertensive / myopic retinopathy, other findings
    if "nonproliferative" in words:
        stage = next((grade for word, grade in _STAGES.items() if word in words), None)
    else:
        stage = 4 if "proliferative" in words else None
    if stage is None:
        raise RowError(f"DR keyword without a stage: {keyword!r}")
    return stage


def eye_grade(keywords: str) -> int | None:
    """An eye's DR grade: the highest DR stage named, ``None`` (ungradable) for an image-quality
    keyword without a stage, else 0 (normal fundus or other findings only)."""
    terms = [t.strip() for t in _SEPARATOR.split(keywords) if t.strip()]
    if not terms:
        raise RowError("missing diagnostic keywords")
    stages = [stage for term in terms if (stage := _dr_stage(term)) is not None]
    if stages:
        return max(stages)
    if any(quality in term.lower() for term in terms for quality in _QUALITY):
        return None
    return 0


def read_odir(root: Path) -> ReadResult:
    """Two records per patient row (left, right); a DR stage on a patient whose ``D`` is 0 is skipped."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    labels = _workbook(index)
    for number, cells in table_rows(read_table(labels, _REQUIRED)):
        for eye in ("left", "right"):
            side = eye.capitalize()
            with collector.row(labels, number, f"{eye} eye") as row:
                grade = eye_grade(cells[f"{side}-Diagnostic Keywords"])
                if grade and parse_grade(cells["D"], 1, "D") == 0:
                    raise RowError(f"DR stage {grade} in the keywords but the patient's D is 0")
                path = index.image(cell(cells, f"{side}-Fundus"), labels.parent / "Training Images")
                row.add(path, grade, patient_id=cell(cells, "ID"), eye=eye)
    return collector.result
