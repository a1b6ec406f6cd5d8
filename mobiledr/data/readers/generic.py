"""Layouts of a user's own data: a ``path,label[,patient_id]`` CSV, or one image folder per class."""

from __future__ import annotations

import os
from pathlib import Path

from mobiledr.data.readers._common import (
    IMAGE_EXTENSIONS,
    Collector,
    RowError,
    cell,
    is_image,
    list_dir,
    open_root,
    parse_int,
    read_table,
    table_rows,
)
from mobiledr.data.records import ReadResult
from mobiledr.errors import MobiledrError


def _csv_file(root: Path) -> Path:
    """The CSV itself, or the single ``.csv`` inside a folder."""
    if root.is_file():
        return root
    found = [p for p in list_dir(root)[1] if p.suffix.lower() == ".csv"]
    if len(found) != 1:
        raise MobiledrError(f"csv: expected exactly one .csv in {root} (found {len(found)}); give the CSV file itself")
    return found[0]


def read_csv_list(root: Path) -> ReadResult:
    """Rows ``path,label[,patient_id]``, paths relative to the CSV's folder or absolute.

    Labels that are all non-negative integers are grades as they are; otherwise the sorted distinct
    label texts become ``classes`` and the grade is the index into them.
    """
    labels = _csv_file(open_root(root, "csv", allow_file=True))
    collector = Collector("csv")
    rows = list(table_rows(read_table(labels, ("path", "label"))))
    texts = {cells["label"] for _, cells in rows if cells["label"]}
    numbers = {parse_int(text) for text in texts}
    classes = None if all(n is not None and n >= 0 for n in numbers) else tuple(sorted(texts))
    for number, cells in rows:
        with collector.row(labels, number) as row:
            label = cell(cells, "label")
            image = Path(os.path.normpath(labels.parent / cell(cells, "path")))
            if not image.is_file():
                raise RowError(f"image {cells['path']} not found")
            grade = parse_int(label) if classes is None else classes.index(label)
            row.add(image, grade, patient_id=cells.get("patient_id"), classes=classes)
    return collector.result


def read_folder(root: Path) -> ReadResult:
    """``root/<class>/<image>``: classes are the sorted sub-folder names, grade the class index."""
    root = open_root(root, "folder")
    folders = list_dir(root)[0]
    if not folders:
        raise MobiledrError(f"folder: expected one sub-folder per class under {root} (none found)")
    classes = tuple(folder.name for folder in folders)
    collector = Collector("folder")
    for grade, folder in enumerate(folders):
        for file in list_dir(folder)[1]:
            with collector.row(file, None) as row:
                if not is_image(file):
                    raise RowError(f"not an image ({' '.join(sorted(IMAGE_EXTENSIONS))})")
                row.add(file, grade, classes=classes)
    return collector.result
