"""Patient-grouped splits and the near-duplicate gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mobiledr.data.cache import Cache, prepare
from mobiledr.data.duplicates import fingerprint, near_duplicate_pairs
from mobiledr.data.geometry import decode, geometric
from mobiledr.data.labels import get_scheme
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile, flag_duplicates, make_splits
from mobiledr.errors import MobiledrError


def test_no_patient_crosses_splits(synth_cache: Cache, tmp_path: Path) -> None:
    scheme = get_scheme("any-dr")
    splits, duplicates = make_splits(synth_cache, scheme, val=0.2, test=0.2, seed=3)
    assert duplicates == []
    split_of_patient: dict[str, set[str]] = {}
    for row in splits.rows:
        split_of_patient.setdefault(row.patient_id, set()).add(row.split)
    assert all(len(s) == 1 for s in split_of_patient.values())
    assert {r.split for r in splits.rows} == {"train", "val", "test"}
    for name in ("train", "val", "test"):
        labels = {r.label for r in splits.rows_of(name)}
        assert labels == {0, 1}, name  # stratified: both classes everywhere
    path = tmp_path / "splits.csv"
    splits.write(path)
    again = SplitFile.read(path)
    assert again.rows == splits.rows and again.scheme == "any-dr"
    reseeded, _ = make_splits(synth_cache, scheme, val=0.2, test=0.2, seed=3)
    assert reseeded.rows == splits.rows


def test_split_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="split file not found"):
        SplitFile.read(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("key,split\nA,train\n")
    with pytest.raises(MobiledrError, match="missing column label"):
        SplitFile.read(bad)


def test_too_few_patients(synth_cache: Cache) -> None:
    with pytest.raises(MobiledrError, match="too few"):
        make_splits(synth_cache, get_scheme("any-dr"), val=0.01, test=0.01)


def _rotated_copy(src: Path, dst: Path, angle: float, flip: bool, gain: float) -> None:
    """What the thesis's pipeline wrote: the circle-cropped photograph rotated, maybe mirrored,
    re-exposed and re-compressed, saved as a new image."""
    crop = geometric(decode(src), PreprocessSpec(size=256)).image
    matrix = cv2.getRotationMatrix2D((127.5, 127.5), angle, 1.0)
    copy = cv2.warpAffine(crop, matrix, (256, 256))
    copy = np.ascontiguousarray(copy[:, ::-1]) if flip else copy
    copy = np.clip(copy.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(copy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    cv2.imwrite(str(dst), cv2.imdecode(jpeg, cv2.IMREAD_COLOR))


def test_augmented_copies_across_splits_are_detected(synth_cache: Cache, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(Path(synth_cache.meta["source"]), data)
    table = pd.read_csv(data / "train.csv")
    rng = np.random.default_rng(0)
    copies = []
    for i, row in table.head(8).iterrows():  # eight photographs, each copied as a new "patient"
        new_id = f"copy{i:02d}"
        _rotated_copy(data / "train_images" / f"{row.id_code}.png", data / "train_images" / f"{new_id}.png", rng.uniform(-180, 180), i % 2 == 0, rng.uniform(0.85, 1.15))
        copies.append({"id_code": new_id, "diagnosis": row.diagnosis, "patient_id": f"other-{i}", "eye": row.eye})
    pd.concat([table, pd.DataFrame(copies)]).to_csv(data / "train.csv", index=False)
    # 224 px, a realistic model size: fine vessels and lesions are what tells two photographs apart.
    cache = prepare(data, "aptos", PreprocessSpec(size=224), tmp_path / "cache", workers=2).cache
    scheme = get_scheme("any-dr")
    flagged = flag_duplicates(cache)
    all_pairs = {frozenset((cache.entries[c.i].key, cache.entries[c.j].key)) for c in flagged}
    originals = [f"train_images/{row.id_code}.png" for _, row in table.head(8).iterrows()]
    for i, original in enumerate(originals):
        assert frozenset((original, f"train_images/copy{i:02d}.png")) in all_pairs, i
    assert len(all_pairs) == 8  # and no distinct photographs are confused
    found_any = False
    for seed in range(4):
        splits, duplicates = make_splits(cache, scheme, val=0.2, test=0.2, seed=seed, flagged=flagged)
        split_of = {r.key: r.split for r in splits.rows}
        crossing = {frozenset((a, b)) for a, b in all_pairs if split_of[a] != split_of[b]}
        assert {frozenset((a.key, b.key)) for a, b in duplicates} == crossing
        found_any |= bool(crossing)
        merged, leftover = make_splits(cache, scheme, val=0.2, test=0.2, seed=seed, merge_duplicates=True, flagged=flagged)
        assert leftover == []
        merged_of = {r.key: r.split for r in merged.rows}
        assert all(merged_of[a] == merged_of[b] for a, b in all_pairs)
    assert found_any


def test_fingerprint_ignores_exposure_but_not_content(synth_cache: Cache) -> None:
    a, b = (synth_cache.image(e) for e in synth_cache.entries[:2])
    brighter = np.clip(a.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)
    images = [a, brighter, b]
    pairs = near_duplicate_pairs([fingerprint(x) for x in images], lambda i: images[i])
    assert pairs == [(0, 1)]
