"""DDR (DR_grading): ``train.txt``/``valid.txt``/``test.txt`` with ``filename label`` lines."""

from __future__ import annotations

from pathlib import Path

from mobiledr.data.readers._common import Collector, FileIndex, RowError, open_root, parse_grade
from mobiledr.data.records import ReadResult
from mobiledr.errors import MobiledrError

KEY = "ddr"
_SPLITS = {"train.txt": "train", "valid.txt": "valid", "test.txt": "test"}
UNGRADABLE = 5


def _lines(labels: Path) -> list[str]:
    try:
        return labels.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise MobiledrError(f"cannot read {labels}: {exc.strerror or exc}") from None


def read_ddr(root: Path) -> ReadResult:
    """Grades 0-4, 5 = ungradable; images in ``<split>/`` next to the list, else found by name."""
    root = open_root(root, KEY)
    index = FileIndex(root, KEY)
    collector = Collector(KEY)
    for name, labels in index.require_any(*_SPLITS).items():
        split = _SPLITS[name]
        for number, line in enumerate(_lines(labels), start=1):
            if not line.strip():
                continue
            with collector.row(labels, number) as row:
                fields = line.rsplit(maxsplit=1)
                if len(fields) != 2:
                    raise RowError(f"expected 'filename label', got {line.strip()!r}")
                grade = parse_grade(fields[1], UNGRADABLE)
                path = index.image(fields[0].strip(), labels.parent / split)
                row.add(path, None if grade == UNGRADABLE else grade, source_split=split)
    return collector.result
