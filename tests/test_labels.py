"""Label schemes: grades to training classes, ungradable images excluded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobiledr.data.labels import OCT_CLASSES, get_scheme
from mobiledr.data.records import Record
from mobiledr.errors import MobiledrError


def rec(grade: int | None, dataset: str = "aptos", classes: tuple[str, ...] | None = None) -> Record:
    return Record(Path("x.png"), grade, dataset, gradable=grade is not None, classes=classes)


def test_binary_schemes() -> None:
    any_dr, referable = get_scheme("any-dr"), get_scheme("referable-dr")
    assert [any_dr.label(rec(g)) for g in range(5)] == [0, 1, 1, 1, 1]
    assert [referable.label(rec(g)) for g in range(5)] == [0, 0, 1, 1, 1]
    assert any_dr.binary and any_dr.classes == ("no DR", "DR")
    assert any_dr.label(rec(None)) is None and referable.label(rec(None)) is None
    assert [referable.label(rec(g, "messidor")) for g in range(4)] == [0, 0, 1, 1]


def test_icdr_and_oct() -> None:
    icdr = get_scheme("icdr-5")
    assert [icdr.label(rec(g)) for g in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(MobiledrError, match="messidor grades are not ICDR grades"):
        icdr.label(rec(2, "messidor"))
    oct4 = get_scheme("oct-4")
    assert oct4.label(rec(2, "kermany", OCT_CLASSES)) == 2
    with pytest.raises(MobiledrError, match="oct-4 needs the classes"):
        oct4.label(rec(1))


def test_class_folder_scheme_and_unknown() -> None:
    classes = ("cataract", "healthy")
    scheme = get_scheme("classes", [rec(1, "folder", classes)])
    assert scheme.classes == classes and scheme.label(rec(1, "folder", classes)) == 1
    with pytest.raises(MobiledrError, match="needs a class-folder data set"):
        get_scheme("classes", [rec(1)])
    with pytest.raises(MobiledrError, match="unknown label scheme 'dr'"):
        get_scheme("dr")
