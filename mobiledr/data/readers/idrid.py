"""IDRiD part B (disease grading): training and testing label CSVs, ``{Image name}.jpg`` images."""

from __future__ import annotations

from pathlib import Path

from mobiledr.data.readers._common import Collector, FileIndex, cell, open_root, parse_dme, parse_grade, read_table, table_rows
from mobiledr.data.records import ReadResult

KEY = "idrid"
# Labels file -> (image folder in the original layout, official split). Training and testing images
# share names (IDRiD_001.jpg exists in both), so the folder next to the labels decides between them.
_FILES = {
    "a. IDRiD_Disease Grading_Training Labels.csv": ("a. Training Set", "train"),
    "b. IDRiD_Disease Grading_Testing Labels.csv": ("b. Testing Set", "test"),
}


def read_idrid(root: Path) -> ReadResult:
    """ICDR grades 0-4 from ``Retinopathy grade``, macular oedema from ``Risk of macular edema`` (0-2, DME
    when >= 1); ``B. Disease Grading/1. Original Images/<set>/`` first."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    for name, labels in index.require_any(*_FILES).items():
        folder, split = _FILES[name]
        images = labels.parent.parent / "1. Original Images" / folder
        for number, cells in table_rows(read_table(labels, ("Image name", "Retinopathy grade"))):
            with collector.row(labels, number) as row:
                grade = parse_grade(cells["Retinopathy grade"], 4)
                dme = parse_dme(cells.get("Risk of macular edema", ""), 2, "risk of macular edema")
                path = index.image(f"{cell(cells, 'Image name')}.jpg", images)
                row.add(path, grade, source_split=split, dme=dme)
    return collector.result
