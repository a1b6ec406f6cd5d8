"""Messidor: ``Annotation_Base{11..34}.xls`` (sheet ``Feuil1``) next to the ``.tif`` images."""

from __future__ import annotations

import re
from pathlib import Path

from mobiledr.data.readers._common import Collector, FileIndex, cell, open_root, parse_dme, parse_grade, read_table, table_rows
from mobiledr.data.records import ReadResult

KEY = "messidor"
DME_COLUMN = "Risk of macular edema"  # 0 none, 1 exudates > 1 disc diameter from the macula, 2 within: DME when >= 1
_ANNOTATION = re.compile(r"annotation_base\d+\.xls", re.IGNORECASE)


def read_messidor(root: Path) -> ReadResult:
    """Messidor's own grades 0-3 from every annotation file found, and macular oedema (risk >= 1);
    images resolved by file name."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    annotations = index.matching(_ANNOTATION)
    if not annotations:
        raise index.expected("Annotation_Base11.xls ... Annotation_Base34.xls")
    for labels in annotations:
        table = read_table(labels, ("Image name", "Retinopathy grade"), sheet="Feuil1")
        for number, cells in table_rows(table):
            with collector.row(labels, number) as row:
                grade = parse_grade(cells["Retinopathy grade"], 3)
                dme = parse_dme(cells.get(DME_COLUMN, ""), 2, "risk of macular edema")
                row.add(index.image(cell(cells, "Image name"), labels.parent), grade, dme=dme)
    return collector.result
