"""Label schemes: grades to training classes, ungradable images excluded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobiledr.data.labels import OCT_CLASSES, get_scheme, positive_class
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
    classes = ("cataract", "healthy")  # sorted as a reader gives them; "healthy" is recognised as negative
    scheme = get_scheme("classes", [rec(1, "folder", classes)])
    assert scheme.classes == ("healthy", "cataract") and scheme.positive == "cataract"
    assert scheme.label(rec(1, "folder", classes)) == 0 and scheme.label(rec(0, "folder", classes)) == 1
    with pytest.raises(MobiledrError, match="needs a class-folder data set"):
        get_scheme("classes", [rec(1)])
    with pytest.raises(MobiledrError, match="unknown label scheme 'dr'"):
        get_scheme("dr")


@pytest.mark.parametrize(
    ("names", "positive"),
    [
        (("DR", "No_DR"), "DR"),  # alphabetically No_DR sorts second: it used to be the positive class
        (("abnormal", "normal"), "abnormal"),
        (("non-referable", "referable"), "referable"),
        (("Referable", "Non Referable"), "Referable"),
        (("healthy", "glaucoma"), "glaucoma"),
        (("negative", "positive"), "positive"),
    ],
)
def test_positive_class_is_recognised_by_name_not_alphabet(names: tuple[str, str], positive: str) -> None:
    classes = tuple(sorted(names))
    scheme = get_scheme("classes", [rec(0, "folder", classes)])
    assert scheme.positive == positive and scheme.classes[1] == positive
    assert [scheme.label(rec(i, "folder", classes)) for i in range(2)] == [int(c == positive) for c in classes]


def test_positive_class_refuses_to_guess_and_takes_an_explicit_name() -> None:
    for names in (("cats", "dogs"), ("healthy", "normal"), ("DR", "referable")):
        with pytest.raises(MobiledrError, match=r"cannot tell which .* pass --positive NAME"):
            get_scheme("classes", [rec(0, "folder", names)])
    scheme = get_scheme("classes", [rec(0, "folder", ("cats", "dogs"))], positive="cats")
    assert scheme.classes == ("dogs", "cats") and scheme.label(rec(0, "folder", ("cats", "dogs"))) == 1
    assert positive_class(("No_DR", "DR"), "No_DR") == "No_DR"  # explicit beats the names
    with pytest.raises(MobiledrError, match="--positive 'x' is not one of the classes"):
        get_scheme("classes", [rec(0, "folder", ("cats", "dogs"))], positive="x")
    with pytest.raises(MobiledrError, match="--positive needs a two-class data set"):
        get_scheme("classes", [rec(0, "folder", ("a", "b", "c"))], positive="a")
    assert get_scheme("any-dr", positive="DR").positive == "DR"
    with pytest.raises(MobiledrError, match="does not apply to scheme any-dr"):
        get_scheme("any-dr", positive="no DR")
