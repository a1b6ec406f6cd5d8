"""The near-duplicate gate: no false pairs on a fresh synthetic set, copies caught, evidence written."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.cache import Cache, prepare
from mobiledr.data.duplicates import EVIDENCE_COLUMNS, MIN_INLIERS, SHEET_PAIRS, SHEET_TILE
from mobiledr.data.labels import get_scheme
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile, flag_duplicates, make_splits
from mobiledr.data.synth import make_dataset

# 160 photographs of 128-px frames: the gate before keypoint verification flagged 4 pairs of
# different patients here (2 across the default splits) and refused to write them.
FRESH_N, FRESH_SIZE, FRESH_SEED, CACHE_SIZE = 160, 128, 0, 128
ORIGINALS = 6  # photographs copied, each by every transformation
runner = CliRunner()


def _split(*args: str):
    return runner.invoke(app, ["data", "split", *args], env={"COLUMNS": "160"})


@pytest.fixture(scope="session")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    root = tmp_path_factory.mktemp("fresh")
    make_dataset(root / "data", n=FRESH_N, size=FRESH_SIZE, seed=FRESH_SEED)
    return prepare(root / "data", "aptos", PreprocessSpec(size=CACHE_SIZE), root / "cache", workers=2).cache


def _rotated(frame: np.ndarray, angle: float) -> np.ndarray:
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0), (w, h))


def _exposed(frame: np.ndarray, k: int) -> np.ndarray:
    gain, gamma = (0.75, 1.15) if k % 2 else (1.25, 0.85)
    return np.clip((frame.astype(np.float32) / 255) ** gamma * gain * 255, 0, 255).astype(np.uint8)


def _jpeg(frame: np.ndarray, k: int) -> np.ndarray:
    _, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 55 + 10 * (k % 3)])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _rescaled(frame: np.ndarray, k: int) -> np.ndarray:
    factor = 0.6 if k % 2 else 1.7
    size = (round(frame.shape[1] * factor), round(frame.shape[0] * factor))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


ANGLES = (37.0, -123.0, 171.0, -64.0, 95.0, -12.5)
TRANSFORMS = {
    "rotated": lambda frame, k: _rotated(frame, ANGLES[k]),
    "mirrored": lambda frame, k: np.ascontiguousarray(frame[:, ::-1]),
    "exposed": _exposed,
    "jpeg": _jpeg,
    "rescaled": _rescaled,
}


@pytest.fixture(scope="session")
def copies(fresh: Cache, tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """Twelve photographs of the fresh set and, as new patients, a copy of each of the first six by
    every transformation (what an augmentation script run before splitting saves)."""
    root = tmp_path_factory.mktemp("copies")
    source = Path(fresh.meta["source"])
    table = pd.read_csv(source / "train.csv", dtype=str).head(12)
    (root / "data" / "train_images").mkdir(parents=True)
    rows = []
    for k, row in table.iterrows():
        shutil.copy(source / "train_images" / f"{row.id_code}.png", root / "data" / "train_images" / f"{row.id_code}.png")
        rows.append(row.to_dict())
        if k >= ORIGINALS:
            continue
        frame = cv2.imread(str(source / "train_images" / f"{row.id_code}.png"), cv2.IMREAD_COLOR)
        for name, transform in TRANSFORMS.items():
            copy_id = f"{name}-{row.id_code}"
            cv2.imwrite(str(root / "data" / "train_images" / f"{copy_id}.png"), transform(frame, int(k)))
            rows.append({"id_code": copy_id, "diagnosis": row.diagnosis, "patient_id": f"copy-{name}-{k}", "eye": row.eye})
    pd.DataFrame(rows).to_csv(root / "data" / "train.csv", index=False)
    return prepare(root / "data", "aptos", PreprocessSpec(size=CACHE_SIZE), root / "cache", workers=2).cache


def _family(key: str) -> str:
    """The photograph a file shows: ``train_images/rotated-<id>.png`` shows ``<id>``."""
    name = Path(key).stem
    for transform in TRANSFORMS:
        name = name.removeprefix(f"{transform}-")
    return name


def test_fresh_synthetic_set_splits_without_an_override(fresh: Cache, tmp_path: Path) -> None:
    out = tmp_path / "splits.csv"
    result = _split(str(fresh.root), "--scheme", "any-dr", "--out", str(out))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert len(SplitFile.read(out).rows) == FRESH_N
    evidence = pd.read_csv(tmp_path / "splits.duplicates.csv")
    assert list(evidence.columns) == EVIDENCE_COLUMNS
    assert len(evidence) == 0  # not one pair flagged, within or across splits


def test_copies_are_caught_with_their_transform(copies: Cache) -> None:
    entries = copies.entries
    flagged = {(entries[c.i].key, entries[c.j].key): c for c in flag_duplicates(copies)}
    for (a, b), c in flagged.items():
        assert _family(a) == _family(b), (a, b, c)  # nothing but copies of one photograph
    ids = pd.read_csv(Path(copies.meta["source"]) / "train.csv", dtype=str).id_code
    originals = [i for i in ids if "-" not in i][:ORIGINALS]  # in the order they were copied
    for k, original in enumerate(originals):
        for name in TRANSFORMS:
            a, b = f"train_images/{original}.png", f"train_images/{name}-{original}.png"
            c = flagged.get((a, b)) or flagged.get((b, a))
            assert c is not None, f"{name} copy of {original} missed"
            assert c.rule == "keypoints" and c.match.inliers >= MIN_INLIERS, (name, c)
            assert c.match.mirrored == (name == "mirrored"), (name, c)
            assert 0.9 < c.match.scale < 1.1, (name, c)  # the geometric stage undoes a rescale
            if name == "rotated":
                # the transform maps the first image of the pair onto the second; the copy is rotated
                # by ANGLES[k] counter-clockwise on screen, which is -ANGLES[k] in y-down pixels
                expected = -ANGLES[k] if (a, b) in flagged else ANGLES[k]
                assert abs((c.match.rotation - expected + 180) % 360 - 180) < 3, (c.match.rotation, expected)


def test_split_refuses_and_shows_the_evidence(copies: Cache, tmp_path: Path) -> None:
    out, sheet = tmp_path / "splits.csv", tmp_path / "pairs.png"
    result = _split(str(copies.root), "--scheme", "any-dr", "--out", str(out), "--val", "0.2", "--test", "0.2", "--sheet", str(sheet))
    message = str(result.exception)
    assert result.exit_code != 0 and "near-duplicate pairs across splits" in message, result.output
    assert "splits.duplicates.csv" in message and "\n" not in message and not out.exists()
    evidence = pd.read_csv(tmp_path / "splits.duplicates.csv", dtype={"mirrored": str, "crosses_splits": str})
    assert list(evidence.columns) == EVIDENCE_COLUMNS
    assert len(evidence) >= ORIGINALS * len(TRANSFORMS) and (evidence.crosses_splits == "yes").any()
    assert (evidence.inliers >= MIN_INLIERS).all() and (evidence.rule == "keypoints").all()
    assert all(_family(a) == _family(b) for a, b in zip(evidence.key_a, evidence.key_b))
    assert set(evidence.mirrored) == {"yes", "no"} and evidence["transform"].str.split().map(len).eq(6).all()
    crossing = evidence[evidence.crosses_splits == "yes"]
    assert (crossing.split_a != crossing.split_b).all() and evidence.crosses_splits.iloc[: len(crossing)].eq("yes").all()
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] == 3 * SHEET_TILE
    assert image.shape[0] > min(len(evidence), SHEET_PAIRS) * SHEET_TILE  # a row of tiles per pair drawn, plus captions
    merged_out = tmp_path / "merged.csv"
    result = _split(str(copies.root), "--scheme", "any-dr", "--out", str(merged_out), "--val", "0.2", "--test", "0.2", "--merge-duplicates")
    assert result.exit_code == 0, result.output
    merged = pd.read_csv(tmp_path / "merged.duplicates.csv", dtype={"crosses_splits": str})
    assert len(merged) == len(evidence) and (merged.crosses_splits == "no").all()
    split_of = {r.key: r.split for r in SplitFile.read(merged_out).rows}
    assert all(split_of[a] == split_of[b] for a, b in zip(merged.key_a, merged.key_b))


def test_make_splits_reports_only_crossing_pairs(copies: Cache) -> None:
    flagged = flag_duplicates(copies)
    splits, crossing = make_splits(copies, get_scheme("any-dr"), val=0.2, test=0.2, flagged=flagged)
    split_of = {r.key: r.split for r in splits.rows}
    entries = copies.entries
    expected = {frozenset((entries[c.i].key, entries[c.j].key)) for c in flagged if split_of[entries[c.i].key] != split_of[entries[c.j].key]}
    assert expected and {frozenset((a.key, b.key)) for a, b in crossing} == expected


def test_mirrored_keypoints_are_what_sift_finds_in_the_mirror_image(fresh: Cache) -> None:
    from scipy.spatial import cKDTree

    from mobiledr.data.duplicates import keypoints

    rgb = fresh.image(fresh.entries[0])
    derived, found = keypoints(rgb).mirrored(), keypoints(np.ascontiguousarray(rgb[:, ::-1]))
    distance, nearest = cKDTree(found.points).query(derived.points)
    same = distance < 0.1
    assert same.mean() > 0.6, same.mean()  # the rest: near the 500-keypoint cut-off, or where CLAHE differs
    a, b = derived.descriptors[same].astype(np.float32), found.descriptors[nearest[same]].astype(np.float32)
    error = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    assert np.median(error) < 0.2, np.median(error)  # unrelated descriptors differ by ~1


def test_sheet_must_be_a_png_path(copies: Cache, tmp_path: Path) -> None:
    for bad in (tmp_path, tmp_path / "pairs.jpg"):
        result = _split(str(copies.root), "--scheme", "any-dr", "--out", str(tmp_path / "s.csv"), "--sheet", str(bad))
        assert result.exit_code != 0 and "--sheet takes the path of a .png file" in str(result.exception)
        assert not (tmp_path / "s.duplicates.csv").exists()  # refused before any work
