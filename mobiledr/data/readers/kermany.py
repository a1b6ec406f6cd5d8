"""Kermany OCT2017: ``{train,test,val}/{CNV,DME,DRUSEN,NORMAL}/CLASS-patient-image.jpeg``."""

from __future__ import annotations

import re
from pathlib import Path

from mobiledr.data.labels import OCT_CLASSES
from mobiledr.data.readers._common import Collector, RowError, is_image, list_dir, open_root
from mobiledr.data.records import ReadResult
from mobiledr.errors import MobiledrError

KEY = "kermany"
_SPLITS = ("train", "test", "val")
_NAME = re.compile(r"([A-Za-z]+)-(\d+)-(\d+)")
_SEARCH_DEPTH = 3  # the root itself, OCT2017/, and one more wrapper folder (Kaggle's zip)


def _base(root: Path) -> Path:
    """The folder holding the split folders: the root or a folder up to two levels below it."""
    level = [root]
    for _ in range(_SEARCH_DEPTH):
        for folder in level:
            if any((folder / split / name).is_dir() for split in _SPLITS for name in OCT_CLASSES):
                return folder
        level = [sub for folder in level for sub in list_dir(folder)[0]]
    classes = ", ".join(OCT_CLASSES)
    raise MobiledrError(f"{KEY}: expected train/, test/ or val/ with {classes} folders under {root} (not found)")


def read_kermany(root: Path) -> ReadResult:
    """Class index in ``OCT_CLASSES``; patient id is the middle number of the file name."""
    root = open_root(root, KEY)
    base = _base(root)
    collector = Collector(KEY)
    for split in _SPLITS:
        if not (base / split).is_dir():
            continue
        for folder in list_dir(base / split)[0]:
            if folder.name not in OCT_CLASSES:
                collector.skip(folder, None, f"folder is not one of {', '.join(OCT_CLASSES)}")
                continue
            for file in list_dir(folder)[1]:
                with collector.row(file, None) as row:
                    match = _NAME.fullmatch(file.stem)
                    if match is None or not is_image(file):
                        raise RowError("name does not match CLASS-patient-image.jpeg")
                    if match[1] != folder.name:
                        raise RowError(f"name says {match[1]} but the folder is {folder.name}")
                    grade = OCT_CLASSES.index(folder.name)
                    row.add(file, grade, patient_id=match[2], classes=OCT_CLASSES, source_split=split)
    return collector.result
