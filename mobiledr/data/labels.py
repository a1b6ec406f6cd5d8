"""Label schemes: how a data set's grades become training classes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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

    @property
    def positive(self) -> str | None:
        """The referred (positive) class of a binary scheme, always ``classes[1]``; None otherwise."""
        return self.classes[1] if self.binary else None

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


def _referable(record: Record) -> int:
    """Moderate NPDR or worse (ICDR >= 2; Messidor >= 2) and/or macular oedema where the data set grades it."""
    return int(record.grade >= 2 or record.dme is True)  # type: ignore[operator]


def case_definition(scheme: LabelScheme, records: list[Record]) -> str | None:
    """What ``referable-dr`` means on these records: with DME where the data set grades it, and a
    plain statement when it does not (None for other schemes)."""
    if scheme.name != "referable-dr":
        return None
    graded = sum(r.dme is not None for r in records if r.gradable)
    gradable = sum(r.gradable for r in records)
    if graded == 0:
        return "referable = moderate NPDR or worse (grade >= 2) only: this data set does not grade macular oedema (DME)"
    if graded < gradable:
        return f"referable = moderate NPDR or worse and/or DME; DME is graded for {graded} of {gradable} gradable images, the rest by grade only"
    return "referable = moderate NPDR or worse (grade >= 2) and/or macular oedema (DME), as the data set grades it"


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


def _folder(classes: tuple[str, ...]) -> Callable[[Record], int]:
    """The index in ``classes`` (the scheme's order) of the record's own class name."""

    def label(record: Record) -> int:
        if record.classes is None:
            raise MobiledrError(f"{record.path}: the 'classes' scheme needs a class-folder data set")
        name = record.classes[record.grade]  # type: ignore[index]
        if name not in classes:
            raise MobiledrError(f"{record.path}: class {name!r} is not one of the scheme's classes {', '.join(classes)}")
        return classes.index(name)

    return label


# Class names that say which side of a two-class data set is referred, compared with case, spaces,
# hyphens and underscores ignored ("No_DR" = "no dr" = "nodr").
NEGATIVE_NAMES = frozenset({
    "nodr", "normal", "healthy", "negative", "nonreferable", "notreferable", "nonrdr", "norefer", "nodisease",
    "control", "controls", "benign", "absent", "no", "0", "false", "nonrefer",
})  # fmt: skip
POSITIVE_NAMES = frozenset({
    "dr", "abnormal", "referable", "refer", "rdr", "referabledr", "disease", "diseased", "positive", "pathological",
    "present", "yes", "1", "true", "anydr",
})  # fmt: skip


def _normal_form(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def positive_class(names: Sequence[str], given: str | None = None) -> str:
    """The referred class of a two-class data set: ``given`` (must be one of ``names``), else the one
    the common names identify (DR/No_DR, abnormal/normal, referable/non-referable, ...). Refuses to
    guess (a one-line error asking for ``--positive``) when the names do not say."""
    if given is not None:
        if given not in names:
            raise MobiledrError(f"--positive {given!r} is not one of the classes {', '.join(names)}")
        return given
    forms = [_normal_form(n) for n in names]
    negative = [n for n, f in zip(names, forms) if f in NEGATIVE_NAMES]
    positive = [n for n, f in zip(names, forms) if f in POSITIVE_NAMES]
    if len(negative) == 1 and len(positive) <= 1:
        return next(n for n in names if n != negative[0])
    if len(positive) == 1 and not negative:
        return positive[0]
    raise MobiledrError(
        f"cannot tell which of the classes {', '.join(names)} is the positive (referred) one; pass --positive NAME"
    )


SCHEMES: dict[str, LabelScheme] = {
    "any-dr": LabelScheme("any-dr", ("no DR", "DR"), "grade 0 vs >= 1 (the thesis)", _threshold(1)),
    "referable-dr": LabelScheme(
        "referable-dr", ("non-referable", "referable"), "moderate NPDR or worse (grade >= 2) and/or DME where graded (clinical standard)", _referable
    ),
    "icdr-5": LabelScheme("icdr-5", ("none", "mild", "moderate", "severe", "proliferative"), "ICDR grades 0-4", _icdr),
    "oct-4": LabelScheme("oct-4", OCT_CLASSES, "Kermany OCT classes", _oct),
}


def get_scheme(name: str, records: list[Record] | None = None, positive: str | None = None) -> LabelScheme:
    """A scheme by name; ``classes`` takes the class names of a class-folder data set.

    Binary schemes put the positive (referred) class second: the decision is ``p(classes[1]) >=
    threshold``. For a two-class ``classes`` data set that class is ``positive`` or, when not given,
    the one :func:`positive_class` recognises by name (never the alphabet); a multi-class data set keeps
    its sorted names and takes no ``positive``."""
    if name == "classes":
        names = next((r.classes for r in records or [] if r.classes), None)
        if names is None:
            raise MobiledrError("the 'classes' scheme needs a class-folder data set (image folder or generic CSV)")
        if len(names) == 2:
            chosen = positive_class(names, positive)
            names = (next(n for n in names if n != chosen), chosen)
            return LabelScheme("classes", names, f"the data set's own classes, positive: {chosen}", _folder(names))
        if positive is not None:
            raise MobiledrError(f"--positive needs a two-class data set; this one has {len(names)} classes ({', '.join(names)})")
        return LabelScheme("classes", names, "the data set's own classes", _folder(names))
    try:
        scheme = SCHEMES[name]
    except KeyError:
        raise MobiledrError(f"unknown label scheme {name!r}; known: {', '.join([*SCHEMES, 'classes'])}") from None
    if positive is not None and positive != scheme.positive:
        what = f"its positive class is {scheme.positive!r}" if scheme.positive else "it has no positive class"
        raise MobiledrError(f"--positive {positive!r} does not apply to scheme {name}: {what}")
    return scheme
