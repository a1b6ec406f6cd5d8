"""Data-set readers against small fixtures written in each data set's real file format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mobiledr.data.labels import OCT_CLASSES
from mobiledr.data.readers import READERS, read_dataset
from mobiledr.data.readers.odir import eye_grade
from mobiledr.data.records import ReadResult, Record
from mobiledr.errors import MobiledrError

xlwt = pytest.importorskip("xlwt")


def image(path: Path) -> Path:
    """A tiny 8x8 image in the format of the file's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8, 3), 90, np.uint8))
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def xls(path: Path, rows: Sequence[Sequence[object]], sheet: str = "Feuil1") -> Path:
    """A genuine BIFF8 .xls workbook (as Messidor ships), written with xlwt."""
    book = xlwt.Workbook()
    page = book.add_sheet(sheet)
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is not None:
                page.write(r, c, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


def by_name(result: ReadResult) -> dict[str, Record]:
    return {r.path.name: r for r in result.records}


def reasons(result: ReadResult) -> dict[int | None, str]:
    return {s.row: s.reason for s in result.skipped}


# --- APTOS -----------------------------------------------------------------------------------------


def test_aptos_grades_missing_image_unknown_label_duplicate_and_empty_row(tmp_path: Path) -> None:
    for name in ("a1", "a2", "a3", "a4"):
        image(tmp_path / "train_images" / f"{name}.png")
    labels = text(tmp_path / "train.csv", "id_code,diagnosis\na1,0\na2,4\nnope,1\na3,x\n\na4,7\na1,2\n,3\n")
    text(tmp_path / "test.csv", "id_code\nt1\n")  # Kaggle's unlabelled test list: ignored

    result = read_dataset(tmp_path, "aptos")

    records = by_name(result)
    assert sorted(records) == ["a1.png", "a2.png"]
    assert records["a1.png"].grade == 0 and records["a2.png"].grade == 4
    assert records["a2.png"].path == tmp_path / "train_images" / "a2.png"
    assert records["a2.png"].path.is_absolute()
    assert {r.dataset for r in result.records} == {"aptos"}
    assert {r.source_split for r in result.records} == {"train"}
    assert records["a1.png"].patient_id is None and records["a1.png"].eye is None
    assert {s.source for s in result.skipped} == {str(labels)}
    why = reasons(result)
    assert list(why) == [3, 4, 6, 7, 8]  # row 5 is an empty line: passed over, numbering kept
    assert why[3] == "image train_images/nope.png not found"
    assert why[4].startswith("unknown grade 'x'")
    assert why[6].startswith("unknown grade '7'")
    assert why[7] == "duplicate of train.csv row 1 (a1.png)"
    assert why[8] == "missing id_code"
    assert str(result.skipped[0]) == f"{labels}, row 3: image train_images/nope.png not found"


def test_aptos_patient_and_eye_columns_and_labelled_test_csv(tmp_path: Path) -> None:
    for name in ("p1l", "p1r"):
        image(tmp_path / "train_images" / f"{name}.png")
    image(tmp_path / "test_images" / "t1.png")
    text(tmp_path / "train.csv", "id_code,diagnosis,patient_id,eye\np1l,1,P1,left\np1r,2,P1,right\n")
    text(tmp_path / "test.csv", "id_code,diagnosis\nt1,3\n")

    records = by_name(READERS["aptos"](tmp_path))

    assert (records["p1l.png"].patient_id, records["p1l.png"].eye) == ("P1", "left")
    assert (records["p1r.png"].patient_id, records["p1r.png"].eye) == ("P1", "right")
    assert (records["t1.png"].grade, records["t1.png"].source_split) == (3, "test")


# --- EyePACS ---------------------------------------------------------------------------------------


def test_eyepacs_train_and_test_solution_patient_and_eye_from_name(tmp_path: Path) -> None:
    for name in ("10_left", "10_right"):
        image(tmp_path / "train" / f"{name}.jpeg")
    image(tmp_path / "test" / "1_left.jpeg")
    text(tmp_path / "trainLabels.csv", "image,level\n10_left,0\n10_right,3\n13_left,1\n")
    text(tmp_path / "retinopathy_solution.csv", "image,level,Usage\n1_left,2,Public\n")

    result = read_dataset(tmp_path, "eyepacs")

    records = by_name(result)
    assert (records["10_right.jpeg"].patient_id, records["10_right.jpeg"].eye) == ("10", "right")
    assert (records["10_left.jpeg"].grade, records["10_left.jpeg"].source_split) == (0, "train")
    assert (records["1_left.jpeg"].grade, records["1_left.jpeg"].source_split) == (2, "test")
    assert [(s.row, s.reason) for s in result.skipped] == [(3, "image train/13_left.jpeg not found")]


def test_eyepacs_without_either_labels_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="expected trainLabels.csv or retinopathy_solution.csv") as err:
        read_dataset(tmp_path, "eyepacs")
    assert "\n" not in str(err.value)


# --- Messidor --------------------------------------------------------------------------------------

MESSIDOR_HEADER = ["Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema "]


def test_messidor_reads_every_annotation_workbook_and_finds_images_by_name(tmp_path: Path) -> None:
    image(tmp_path / "Base11" / "20051019_38557_0100_PP.tif")
    image(tmp_path / "Base12" / "20051020_43808_0100_PP.tif")
    image(tmp_path / "elsewhere" / "20051020_43832_0100_PP.tif")
    xls(tmp_path / "Base11" / "Annotation_Base11.xls", [
        MESSIDOR_HEADER,
        ["20051019_38557_0100_PP.tif", "Service Ophtalmologie Lariboisière", 3, 1],
        ["20051020_43832_0100_PP.tif", "Service Ophtalmologie Lariboisière", 0, 0],
    ])
    second = xls(tmp_path / "Base12" / "Annotation_Base12.xls", [
        MESSIDOR_HEADER,
        ["20051020_43808_0100_PP.tif", "CHU de St Etienne", 2, 0],
        ["20051020_99999_0100_PP.tif", "CHU de St Etienne", 4, 0],
        ["20051019_38557_0100_PP.tif", "CHU de St Etienne", 3, 1],
    ])

    result = read_dataset(tmp_path, "messidor")

    records = by_name(result)
    assert {name: r.grade for name, r in records.items()} == {
        "20051019_38557_0100_PP.tif": 3,
        "20051020_43832_0100_PP.tif": 0,
        "20051020_43808_0100_PP.tif": 2,
    }
    assert records["20051020_43832_0100_PP.tif"].path == tmp_path / "elsewhere" / "20051020_43832_0100_PP.tif"
    assert {s.source for s in result.skipped} == {str(second)}
    assert reasons(result)[2].startswith("unknown grade '4' (expected 0-3)")
    assert reasons(result)[3] == "duplicate of Annotation_Base11.xls row 1 (20051019_38557_0100_PP.tif)"


def test_messidor_without_annotation_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match=r"expected Annotation_Base11\.xls \.\.\. Annotation_Base34\.xls"):
        read_dataset(tmp_path, "messidor")


# --- Messidor-2 ------------------------------------------------------------------------------------


M2_HEADER = "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n"


def test_messidor2_ungradable_rows_and_exam_pairs(tmp_path: Path) -> None:
    names = ("20051020_43808_0100_PP.png", "20051020_43832_0100_PP.png", "IM000012.JPG", "IM000013.JPG", "IM000020.JPG")
    for name in names:
        image(tmp_path / "IMAGES" / name)
    text(tmp_path / "messidor_data.csv", (
        M2_HEADER +
        "20051020_43808_0100_PP.png,0,0,1\n"
        "20051020_43832_0100_PP.png,2,1,1\n"
        "IM000013.jpg,,,0\n"          # ungradable: no grade, gradable 0 (and .jpg vs the file's .JPG)
        "IM000012.jpg,,,1\n"          # an empty grade is ungradable too
        "IM000020.jpg,9,0,1\n"
    ))
    text(tmp_path / "messidor-2.csv", (
        "left;right \n"
        "20051020_43808_0100_PP.png;20051020_43832_0100_PP.png\n"
        "IM000013.JPG;IM000012.JPG\n"
    ))

    result = read_dataset(tmp_path, "messidor2")

    records = by_name(result)
    assert len(result.records) == 4 and result.ungradable == 2
    assert records["IM000013.JPG"].grade is None and not records["IM000013.JPG"].gradable
    assert records["IM000012.JPG"].grade is None and not records["IM000012.JPG"].gradable
    assert records["20051020_43832_0100_PP.png"].grade == 2
    assert records["20051020_43832_0100_PP.png"].gradable
    left, right = records["20051020_43808_0100_PP.png"], records["20051020_43832_0100_PP.png"]
    assert left.patient_id == right.patient_id == "20051020_43808_0100_PP.png"
    assert (left.eye, right.eye) == ("left", "right")
    assert records["IM000012.JPG"].patient_id == "IM000013.JPG"
    assert reasons(result) == {5: "unknown grade '9' (expected 0-4)"}


def test_messidor2_without_pairs_file_has_no_patient(tmp_path: Path) -> None:
    image(tmp_path / "IMAGES" / "IM000012.JPG")
    text(tmp_path / "messidor_data.csv", M2_HEADER + "IM000012.JPG,1,0,1\n")

    (record,) = read_dataset(tmp_path, "messidor2").records

    assert (record.grade, record.patient_id, record.eye) == (1, None, None)


# --- IDRiD -----------------------------------------------------------------------------------------

IDRID_HEADER = "Image name,Retinopathy grade,Risk of macular edema ,,,,,,,,,\n"


def test_idrid_trailing_space_and_empty_columns_and_same_names_in_both_sets(tmp_path: Path) -> None:
    grading = tmp_path / "B. Disease Grading"
    for folder in ("a. Training Set", "b. Testing Set"):
        image(grading / "1. Original Images" / folder / "IDRiD_001.jpg")
    image(grading / "1. Original Images" / "a. Training Set" / "IDRiD_002.jpg")
    truth = grading / "2. Groundtruths"
    train = "IDRiD_001,3,2,,,,,,,,,\nIDRiD_002,5,0,,,,,,,,,\n,,,,,,,,,,,\n"
    text(truth / "a. IDRiD_Disease Grading_Training Labels.csv", IDRID_HEADER + train)
    test = "IDRiD_001,1,0,,,,,,,,,\nIDRiD_404,2,0,,,,,,,,,\n"
    text(truth / "b. IDRiD_Disease Grading_Testing Labels.csv", IDRID_HEADER + test)

    result = read_dataset(tmp_path, "idrid")

    got = {(r.source_split, r.path.parent.name, r.grade) for r in result.records}
    assert got == {("train", "a. Training Set", 3), ("test", "b. Testing Set", 1)}
    assert [(Path(s.source).name[:2], s.row) for s in result.skipped] == [("a.", 2), ("b.", 2)]
    missing = "B. Disease Grading/1. Original Images/b. Testing Set/IDRiD_404.jpg"
    assert result.skipped[1].reason == f"image {missing} not found"


def test_idrid_missing_labels_names_expected_files(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="expected a. IDRiD_Disease Grading_Training Labels.csv or b."):
        read_dataset(tmp_path, "idrid")


def test_image_with_one_name_in_two_unrelated_folders_is_ambiguous(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        image(tmp_path / folder / "IDRiD_001.jpg")
    text(tmp_path / "a. IDRiD_Disease Grading_Training Labels.csv", IDRID_HEADER + "IDRiD_001,3,2,,,,,,,,,\n")

    result = read_dataset(tmp_path, "idrid")

    assert not result.records
    assert result.skipped[0].reason == "image IDRiD_001.jpg is ambiguous: x/IDRiD_001.jpg and y/IDRiD_001.jpg"


# --- DDR -------------------------------------------------------------------------------------------


def test_ddr_grade_5_is_ungradable_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "DDR-dataset" / "DR_grading"
    image(root / "train" / "007-0004-000.jpg")
    image(root / "train" / "007-0005-000.jpg")
    image(root / "moved" / "20170323093238307.jpg")
    image(root / "valid" / "007-0007-000.jpg")
    text(root / "train.txt", (
        "007-0004-000.jpg 2\n007-0005-000.jpg 5\n20170323093238307.jpg 0\nonlyname\n007-0009-000.jpg 6\n"
    ))
    text(root / "valid.txt", "007-0007-000.jpg 4\n")

    result = read_dataset(tmp_path, "ddr")

    records = by_name(result)
    assert records["007-0004-000.jpg"].grade == 2
    assert records["007-0005-000.jpg"].grade is None and not records["007-0005-000.jpg"].gradable
    assert records["20170323093238307.jpg"].path == root / "moved" / "20170323093238307.jpg"
    assert (records["007-0007-000.jpg"].source_split, records["007-0004-000.jpg"].source_split) == ("valid", "train")
    assert result.ungradable == 1
    why = reasons(result)
    assert why[4] == "expected 'filename label', got 'onlyname'"
    assert why[5].startswith("unknown grade '6'")


# --- ODIR-5K ---------------------------------------------------------------------------------------

ODIR_COLUMNS = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus", "Left-Diagnostic Keywords",
                "Right-Diagnostic Keywords", "N", "D", "G", "C", "A", "H", "M", "O"]


def odir_row(pid: int, left: str, right: str, d: int) -> list[object]:
    return [pid, 60, "Female", f"{pid}_left.jpg", f"{pid}_right.jpg", left, right, 0, d, 0, 0, 0, 0, 0, 0]


def test_odir_per_eye_grades_from_keywords(tmp_path: Path) -> None:
    rows = [
        odir_row(0, "normal fundus", "normal fundus", 0),
        odir_row(1, "mild nonproliferative retinopathy，drusen", "moderate non proliferative retinopathy", 1),
        odir_row(2, "proliferative diabetic retinopathy", "hypertensive retinopathy", 1),
        odir_row(3, "lens dust，normal fundus", "low image quality,severe nonproliferative retinopathy", 1),
        odir_row(4, "diabetic retinopathy", "cataract", 1),
        odir_row(5, "moderate non proliferative retinopathy", "normal fundus", 0),
    ]
    for pid in range(6):
        for eye in ("left", "right"):
            image(tmp_path / "ODIR-5K" / "Training Images" / f"{pid}_{eye}.jpg")
    workbook = tmp_path / "ODIR-5K" / "data.xlsx"
    pd.DataFrame(rows, columns=ODIR_COLUMNS).to_excel(workbook, index=False, sheet_name="Sheet1")

    result = read_dataset(tmp_path, "odir")

    grades = {name.removesuffix(".jpg"): r.grade for name, r in by_name(result).items()}
    assert grades == {
        "0_left": 0, "0_right": 0,
        "1_left": 1, "1_right": 2,
        "2_left": 4, "2_right": 0,
        "3_left": None, "3_right": 3,
        "4_right": 0,
        "5_right": 0,
    }
    records = by_name(result)
    assert (records["1_right.jpg"].patient_id, records["1_right.jpg"].eye) == ("1", "right")
    assert not records["3_left.jpg"].gradable
    assert [(s.row, s.source) for s in result.skipped] == [(5, str(workbook)), (6, str(workbook))]
    assert result.skipped[0].reason == "left eye: DR keyword without a stage: 'diabetic retinopathy'"
    assert result.skipped[1].reason == "left eye: DR stage 2 in the keywords but the patient's D is 0"


@pytest.mark.parametrize(("keywords", "grade"), [
    ("Moderate Non-Proliferative Retinopathy", 2),
    ("severe non proliferative retinopathy", 3),
    ("severe proliferative diabetic retinopathy", 4),
    ("myopia retinopathy；laser spot", 0),
    ("optic disk photographically invisible", None),
    ("no fundus image", None),
])
def test_odir_keyword_spellings(keywords: str, grade: int | None) -> None:
    assert eye_grade(keywords) == grade


# --- Kermany OCT -----------------------------------------------------------------------------------


def test_kermany_patient_ids_splits_and_mismatched_names(tmp_path: Path) -> None:
    base = tmp_path / "OCT2017"  # the root given is one level above the split folders
    good = image(base / "train" / "CNV" / "CNV-1016042-1.jpeg")
    image(base / "train" / "NORMAL" / "NORMAL-1016042-2.jpeg")
    image(base / "test" / "DRUSEN" / "DRUSEN-228939-1.jpeg")
    wrong = image(base / "train" / "DME" / "CNV-53018-3.jpeg")
    odd = image(base / "train" / "DME" / "scan_17.jpeg")
    (base / "train" / "DME" / ".DS_Store").write_bytes(b"\0")

    result = read_dataset(tmp_path, "kermany")

    records = by_name(result)
    assert records["CNV-1016042-1.jpeg"].path == good
    assert {n: (r.grade, r.patient_id, r.source_split) for n, r in records.items()} == {
        "CNV-1016042-1.jpeg": (0, "1016042", "train"),
        "NORMAL-1016042-2.jpeg": (3, "1016042", "train"),
        "DRUSEN-228939-1.jpeg": (2, "228939", "test"),
    }
    assert all(r.classes == OCT_CLASSES for r in result.records)
    assert {(s.source, s.row, s.reason) for s in result.skipped} == {
        (str(wrong), None, "name says CNV but the folder is DME"),
        (str(odd), None, "name does not match CLASS-patient-image.jpeg"),
    }


def test_kermany_without_class_folders_is_one_line_error(tmp_path: Path) -> None:
    image(tmp_path / "train" / "x.jpeg")
    with pytest.raises(MobiledrError, match="expected train/, test/ or val/ with CNV, DME, DRUSEN, NORMAL"):
        read_dataset(tmp_path, "kermany")


# --- generic CSV and image folders -----------------------------------------------------------------


def test_csv_integer_labels_relative_and_absolute_paths(tmp_path: Path) -> None:
    image(tmp_path / "imgs" / "a.png")
    outside = image(tmp_path.parent / f"{tmp_path.name}_outside.jpg")
    rows = f"imgs/a.png,1,p7\n{outside},0,\nimgs/none.png,2,p8\nimgs/a.png,,\n"
    labels = text(tmp_path / "list.csv", "path,label,patient_id\n" + rows)

    result = read_dataset(tmp_path, "csv")  # a folder holding exactly one CSV

    records = by_name(result)
    assert (records["a.png"].grade, records["a.png"].patient_id, records["a.png"].classes) == (1, "p7", None)
    assert records["a.png"].path == tmp_path / "imgs" / "a.png"
    assert (records[outside.name].grade, records[outside.name].patient_id) == (0, None)
    assert {s.row: s.reason for s in result.skipped} == {3: "image imgs/none.png not found", 4: "missing label"}
    assert read_dataset(labels, "csv").records == result.records  # or the CSV file itself


def test_csv_text_labels_become_sorted_classes(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        image(tmp_path / f"{name}.png")
    labels = text(tmp_path / "labels.csv", "path,label\na.png,refer\nb.png,healthy\nc.png,refer\n")

    result = read_dataset(labels, "csv")

    assert {r.path.name: (r.grade, r.classes) for r in result.records} == {
        "a.png": (1, ("healthy", "refer")),
        "b.png": (0, ("healthy", "refer")),
        "c.png": (1, ("healthy", "refer")),
    }


def test_folder_classes_are_sorted_folder_names(tmp_path: Path) -> None:
    image(tmp_path / "refer" / "x.PNG")
    image(tmp_path / "healthy" / "y.jpg")
    image(tmp_path / "healthy" / "z.tiff")
    notes = text(tmp_path / "healthy" / "notes.txt", "not an image")

    result = read_dataset(tmp_path, "folder")

    assert {r.path.name: (r.grade, r.classes) for r in result.records} == {
        "x.PNG": (1, ("healthy", "refer")),
        "y.jpg": (0, ("healthy", "refer")),
        "z.tiff": (0, ("healthy", "refer")),
    }
    assert [(s.source, s.row) for s in result.skipped] == [(str(notes), None)]


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_dataset_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError) as err:
        read_dataset(tmp_path, "drive")
    message = str(err.value)
    assert "'drive'" in message and "\n" not in message
    assert all(name in message for name in READERS)


def test_missing_root_and_missing_labels_file(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="does not exist"):
        read_dataset(tmp_path / "nowhere", "aptos")
    with pytest.raises(MobiledrError) as err:
        read_dataset(tmp_path, "messidor2")
    assert str(err.value) == f"messidor2: expected messidor_data.csv under {tmp_path} (not found)"


def test_labels_file_missing_a_column_or_unreadable(tmp_path: Path) -> None:
    labels = text(tmp_path / "train.csv", "id_code,grade\na,1\n")
    with pytest.raises(MobiledrError) as err:
        read_dataset(tmp_path, "aptos")
    assert str(err.value).startswith(f"{labels}: missing column 'diagnosis'")
    assert "\n" not in str(err.value)

    idrid = text(tmp_path / "a. IDRiD_Disease Grading_Training Labels.csv", "Image name,Grade,Risk of macular edema ,,,\n")
    with pytest.raises(MobiledrError) as err:
        read_dataset(tmp_path, "idrid")
    found = "'Image name', 'Grade', 'Risk of macular edema'"  # stripped, empty trailing columns dropped
    assert str(err.value) == f"{idrid}: missing column 'Retinopathy grade' (found: {found})"

    (tmp_path / "Annotation_Base11.xls").write_bytes(b"not a workbook at all")
    with pytest.raises(MobiledrError, match=r"cannot read .*Annotation_Base11\.xls") as err:
        read_dataset(tmp_path, "messidor")
    assert "\n" not in str(err.value)
