"""Messidor: ``Annotation_Base{11..34}.xls`` (sheet ``Feuil1``) next to the ``.tif`` images."""

from __future__ import annotations

import re
from pathlib import Path

from mobiledr.data.readers._common import Collector, FileIndex, cell, open_root, parse_grade, read_table, table_rows
from mobiledr.data.records import ReadResult

KEY = "messidor"
_ANNOTATION = re.compile(r"annotation_base\d+\.xls", re.IGNORECASE)


def read_messidor(root: Path) -> ReadResult:
    """Messidor's own grades 0-3 from every annotation file found; images resolved by file name."""
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
                row.add(index.image(cell(cells, "Image name"), labels.parent), grade)
    return collector.result
