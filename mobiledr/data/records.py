"""The one record every data-set reader yields, and what a reader reports about skipped rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Record:
    """One image with its label as distributed.

    ``grade`` is the data set's own label: the ICDR grade 0-4 (Messidor 0-3), or the class index of
    ``classes`` for class-folder layouts (Kermany OCT, image folders). ``None`` when the image is
    ungradable.
    """

    path: Path
    grade: int | None
    dataset: str
    patient_id: str | None = None
    eye: str | None = None  # "left" / "right" where derivable
    gradable: bool = True
    classes: tuple[str, ...] | None = None  # class names when ``grade`` indexes named classes
    source_split: str | None = None  # the data set's official split ("train", "test", ...) if any
    dme: bool | None = None  # diabetic macular oedema graded present/absent; None: the data set does not grade it

    @property
    def key(self) -> str:
        """Stable identifier of the image inside its data set (its path as given)."""
        return str(self.path)


@dataclass(frozen=True)
class Skipped:
    """A labels-file row (or image) that could not be used, and why."""

    source: str  # the labels file or folder
    row: int | None  # 1-based data row (header excluded) or None for folder layouts
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}, row {self.row}" if self.row is not None else self.source
        return f"{where}: {self.reason}"


@dataclass
class ReadResult:
    """What a reader found: usable records and the rows it skipped."""

    dataset: str
    records: list[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ungradable(self) -> int:
        return sum(not r.gradable for r in self.records)

    def summary(self) -> str:
        return (
            f"{self.dataset}: {len(self.records)} images ({self.ungradable} ungradable), "
            f"{len(self.skipped)} rows skipped"
        )
