"""The synthetic fundus generator: determinism, geometry, lesions by grade, APTOS-layout data sets."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from mobiledr.data import synth
from mobiledr.data.synth import FundusInfo, generate_fundus, make_dataset
from mobiledr.errors import MobiledrError


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _radius_map(info: FundusInfo) -> np.ndarray:
    """Distance of every pixel from the field's centre, in field radii."""
    yy, xx = np.ogrid[: info.height, : info.width]
    cx, cy = info.disc_center
    return np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / info.disc_radius


@pytest.mark.parametrize("size", [96, 128, 201])
def test_shape_dtype_and_landscape_frame(size: int) -> None:
    img, info = generate_fundus(2, size, np.random.default_rng(0))
    assert img.dtype == np.uint8
    assert img.shape == (size, round(size * 4 / 3), 3)
    assert (info.height, info.width) == img.shape[:2]
    assert 0.42 * size <= info.disc_radius <= 0.57 * size


def test_same_seed_same_image_other_seed_other_image() -> None:
    a, info_a = generate_fundus(3, 128, np.random.default_rng(11), eye="right")
    b, info_b = generate_fundus(3, 128, np.random.default_rng(11), eye="right")
    c, _ = generate_fundus(3, 128, np.random.default_rng(12), eye="right")
    assert np.array_equal(a, b)
    assert info_a == info_b
    assert not np.array_equal(a, c)


def test_grade_changes_only_the_lesions() -> None:
    """Same generator state, other grade: same eye and capture; the differences lie inside the field."""
    healthy, info0 = generate_fundus(0, 192, np.random.default_rng(7))
    sick, info4 = generate_fundus(4, 192, np.random.default_rng(7))
    assert info0.crop_box == info4.crop_box and info0.optic_disc_center == info4.optic_disc_center
    changed = np.abs(healthy.astype(int) - sick.astype(int)).max(axis=2) > 30
    assert changed.mean() > 0.005  # lesions are visible
    assert _radius_map(info0)[changed].max() < 1.0


def test_black_border_and_bright_field() -> None:
    for seed in range(8):
        img, info = generate_fundus(seed % 5, 256, np.random.default_rng(seed), notch=False)
        grey, r = _grey(img), _radius_map(info)
        outside = grey[r > 1.0 + 12 / info.disc_radius]  # clear of JPEG ringing at the rim
        inside = grey[r < 0.8]
        assert outside.size > 1000
        assert np.percentile(outside, 99.9) <= 6, (seed, np.percentile(outside, 99.9))
        assert 0 < outside.mean() < 3  # a noisy black, like a real camera's, not exactly zero
        assert np.median(inside) > 25 + outside.mean(), seed


def test_crop_box_matches_non_black_pixels() -> None:
    """The box a tolerance-7 circle crop finds equals ``crop_box`` within 2 % of the frame."""
    cut_off = notched = 0
    for seed in range(16):
        img, info = generate_fundus(seed % 5, 256, np.random.default_rng(100 + seed), notch=seed % 3 == 0)
        ys, xs = np.nonzero(_grey(img) > 7)
        found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert np.abs(np.subtract(found, info.crop_box)).max() <= 0.02 * info.height, (seed, found, info.crop_box)
        x0, y0, x1, y1 = info.crop_box
        (cx, cy), r = info.disc_center, info.disc_radius
        circle = (max(0, cx - r), max(0, cy - r), min(info.width, cx + r), min(info.height, cy + r))
        assert np.abs(np.subtract(info.crop_box, circle)).max() <= 2  # the disc's box, a tab left out
        cut_off += y0 == 0 or y1 == info.height
        notched += info.notch
    assert notched == 6
    assert cut_off >= 1  # some fields are taller than the frame


def test_notch_changes_the_rim() -> None:
    plain, info = generate_fundus(0, 256, np.random.default_rng(5), notch=False)
    notched, info_n = generate_fundus(0, 256, np.random.default_rng(5), notch=True)
    assert not info.notch and info_n.notch
    changed = np.abs(plain.astype(int) - notched.astype(int)).max(axis=2) > 30
    near_rim = np.abs(_radius_map(info) - 1.0) < 0.1
    assert changed.sum() > 10
    assert changed[~near_rim].sum() == 0


def test_lesion_counts_grow_with_grade() -> None:
    means = []
    for grade in range(5):
        infos = [generate_fundus(grade, 128, np.random.default_rng(1000 * grade + s))[1] for s in range(6)]
        if grade == 0:
            assert all(info.lesion_total == 0 for info in infos)
        else:
            assert all(info.microaneurysms > 0 for info in infos)
        if grade == 1:
            assert all(info.lesion_total == info.microaneurysms for info in infos)
        if grade >= 3:
            assert all(info.haemorrhages > 0 and info.cotton_wool_spots > 0 for info in infos)
        if grade == 4:
            assert sum(info.neovascularisations for info in infos) > 0
        means.append(np.mean([info.lesion_total for info in infos]))
    assert means == sorted(means), means
    assert means[4] > 5 * means[1]


def test_eyes_put_the_optic_disc_on_mirrored_sides() -> None:
    for seed in range(4):
        for eye, side in (("left", -1), ("right", 1)):
            img, info = generate_fundus(0, 192, np.random.default_rng(seed), eye=eye)
            assert side * (info.optic_disc_center[0] - info.disc_center[0]) > 0.05 * info.disc_radius
            assert side * (info.optic_disc_center[0] - info.fovea_center[0]) > 4 * info.optic_disc_radius
            # the brightest blob of the photograph is the optic disc, on that side
            blurred = cv2.GaussianBlur(_grey(img).astype(np.float32), (0, 0), info.optic_disc_radius / 2)
            y, x = np.unravel_index(np.argmax(blurred), blurred.shape)
            assert np.hypot(x - info.optic_disc_center[0], y - info.optic_disc_center[1]) < 1.5 * info.optic_disc_radius
    _, left = generate_fundus(0, 192, np.random.default_rng(3), eye="left")
    _, right = generate_fundus(0, 192, np.random.default_rng(3), eye="right")
    assert left.optic_disc_center[0] - left.disc_center[0] == pytest.approx(right.disc_center[0] - right.optic_disc_center[0])
    assert left.optic_disc_center[1] == pytest.approx(right.optic_disc_center[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"grade": 5}, "grade"), ({"grade": -1}, "grade"), ({"size": 16}, "size"), ({"eye": "both"}, "eye")],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"grade": 1, "size": 64, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(MobiledrError, match=message):
        generate_fundus(**args)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_make_dataset_layout(tmp_path: Path) -> None:
    ticks: list[int] = []
    csv_path = make_dataset(tmp_path / "aptos", n=9, size=72, seed=3, progress=ticks.append)
    assert csv_path == tmp_path / "aptos" / "train.csv"
    assert csv_path.read_text().splitlines()[0] == "id_code,diagnosis,patient_id,eye"
    rows = _read_csv(csv_path)
    assert len(rows) == 9 and ticks == [1] * 9
    ids = [row["id_code"] for row in rows]
    assert len(set(ids)) == 9
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    patients: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        patients.setdefault(row["patient_id"], []).append(row)
        assert row["diagnosis"] in {"0", "1", "2", "3", "4"}
    assert len(patients) == 5
    assert sorted(len(p) for p in patients.values()) == [1, 2, 2, 2, 2]
    for eyes in patients.values():
        assert len({row["eye"] for row in eyes}) == len(eyes)
        assert {row["eye"] for row in eyes} <= {"left", "right"}
        grades = [int(row["diagnosis"]) for row in eyes]
        assert max(grades) - min(grades) <= 1
    files = sorted(p.name for p in (tmp_path / "aptos" / "train_images").iterdir())
    assert files == sorted(f"{i}.png" for i in ids)  # nothing else: no temporary files
    assert sorted(p.name for p in (tmp_path / "aptos").iterdir()) == ["train.csv", "train_images"]
    for i in ids:
        img = cv2.imread(str(tmp_path / "aptos" / "train_images" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (72, 96, 3)


def test_make_dataset_is_reproducible(tmp_path: Path) -> None:
    def contents(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a = contents(make_dataset(tmp_path / "a", n=4, size=64, seed=5).parent)
    b = contents(make_dataset(tmp_path / "b", n=4, size=64, seed=5).parent)
    c = contents(make_dataset(tmp_path / "c", n=4, size=64, seed=6).parent)
    assert a == b
    assert a.keys() != c.keys()


def test_grade_weights(tmp_path: Path) -> None:
    healthy = _read_csv(make_dataset(tmp_path / "h", n=6, size=48, grade_weights=[1, 0, 0, 0, 0]))
    assert {row["diagnosis"] for row in healthy} == {"0"}
    severe = _read_csv(make_dataset(tmp_path / "s", n=6, size=48, grade_weights=[0, 0, 0, 0, 2]))
    assert {row["diagnosis"] for row in severe} == {"4"}
    with pytest.raises(MobiledrError, match="grade_weights"):
        make_dataset(tmp_path / "x", n=2, size=48, grade_weights=[1, 1])


def test_default_grade_mix_is_balanced_for_any_dr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = np.asarray(synth.DEFAULT_GRADE_WEIGHTS) / sum(synth.DEFAULT_GRADE_WEIGHTS)
    grades = np.array([synth._patient_grades(rng, weights) for _ in range(4000)]).ravel()
    assert 0.45 < np.mean(grades == 0) < 0.55
    assert np.mean(grades == 2) > np.mean(grades == 1) > np.mean(grades == 3)


def test_interrupted_dataset_leaves_only_complete_files(tmp_path: Path) -> None:
    done: list[int] = []

    def stop_after_three(step: int) -> None:
        done.append(step)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path, n=6, size=48, progress=stop_after_three)
    files = list((tmp_path / "train_images").iterdir())
    assert len(files) == 3 and all(f.suffix == ".png" and not f.name.startswith(".") for f in files)
    assert all(cv2.imread(str(f)) is not None for f in files)
    assert not (tmp_path / "train.csv").exists()
