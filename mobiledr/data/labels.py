"""Label schemes: how a data set's grades become training classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mobiledr.data.records import Record
from mobiledr.errors import MobiledrError

OCT_CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
# Messidor grades 0-3 follow its own microaneurysm/haemorrhage counts, not the ICDR scale.
NON_ICDR_DATASETS = {"messidor"}


@dataclass(frozen=True)
class LabelScheme:
    """A named mapping from a record's grade to a class index (``None``: excluded from training)."""

    name: str
    classes: tuple[str, ...]
    description: str
    _map: Callable[[Record], int | None]

    def label(self, record: Record) -> int | None:
        """The class index, or ``None`` for ungradable images (counted, never trained on)."""
        if not record.gradable or record.grade is None:
            return None
        return self._map(record)

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2


def _threshold(cut: int) -> Callable[[Record], int]:
    return lambda r: int(r.grade >= cut)  # type: ignore[operator]


def _icdr(record: Record) -> int:
    if record.dataset in NON_ICDR_DATASETS:
        raise MobiledrError(f"{record.path}: {record.dataset} grades are not ICDR grades; use any-dr or referable-dr")
    if record.classes is not None or not 0 <= record.grade <= 4:  # type: ignore[operator]
        raise MobiledrError(f"{record.path}: grade {record.grade} is not an ICDR grade 0-4")
    return record.grade  # type: ignore[return-value]


def _oct(record: Record) -> int:
    if record.classes != OCT_CLASSES:
        raise MobiledrError(f"{record.path}: oct-4 needs the classes {', '.join(OCT_CLASSES)}, got {record.classes}")
    return record.grade  # type: ignore[return-value]


def _folder(record: Record) -> int:
    if record.classes is None:
        raise MobiledrError(f"{record.path}: the 'classes' scheme needs a class-folder data set")
    return record.grade  # type: ignore[return-value]


SCHEMES: dict[str, LabelScheme] = {
    "any-dr": LabelScheme("any-dr", ("no DR", "DR"), "grade 0 vs >= 1 (the thesis)", _threshold(1)),
    "referable-dr": LabelScheme("referable-dr", ("non-referable", "referable"), "grade <= 1 vs >= 2 (clinical standard)", _threshold(2)),
    "icdr-5": LabelScheme("icdr-5", ("none", "mild", "moderate", "severe", "proliferative"), "ICDR grades 0-4", _icdr),
    "oct-4": LabelScheme("oct-4", OCT_CLASSES, "Kermany OCT classes", _oct),
}


def get_scheme(name: str, records: list[Record] | None = None) -> LabelScheme:
    """A scheme by name; ``classes`` takes the class names of a class-folder data set."""
    if name == "classes":
        names = next((r.classes for r in records or [] if r.classes), None)
        if names is None:
            raise MobiledrError("the 'classes' scheme needs a class-folder data set (image folder or generic CSV)")
        return LabelScheme("classes", names, "the data set's own classes", _folder)
    try:
        return SCHEMES[name]
    except KeyError:
        raise MobiledrError(f"unknown label scheme {name!r}; known: {', '.join([*SCHEMES, 'classes'])}") from None
