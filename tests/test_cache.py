"""The preprocessed-image cache: parallel, incremental, and every broken file rejected with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mobiledr.data.cache import Cache, prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError

from .conftest import CACHE_SIZE, SYNTH_N
from .test_preprocess import disc_frame


def test_cache_holds_every_synthetic_image(synth_cache: Cache, synth_dataset: Path) -> None:
    assert len(synth_cache.entries) == SYNTH_N
    assert synth_cache.rejects == []
    assert synth_cache.spec.size == CACHE_SIZE
    entry = synth_cache.entries[0]
    assert entry.record.patient_id and entry.record.eye in ("left", "right")
    assert entry.record.path.is_file() and entry.record.path.is_relative_to(synth_dataset)
    image = synth_cache.image(entry)
    assert image.shape == (CACHE_SIZE, CACHE_SIZE, 3) and image.dtype == np.uint8
    reopened = Cache.open(synth_cache.root)
    assert [e.key for e in reopened.entries] == [e.key for e in synth_cache.entries]
    np.testing.assert_array_equal(reopened.entries[3].processed.fingerprint.polar, synth_cache.entries[3].processed.fingerprint.polar)


def test_rerun_only_processes_new_or_changed(synth_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_dataset, data)
    out = tmp_path / "cache"
    spec = PreprocessSpec(size=64)
    first = prepare(data, "aptos", spec, out, workers=1)
    assert first.processed == SYNTH_N and first.reused == 0
    second = prepare(data, "aptos", spec, out, workers=1)
    assert second.processed == 0 and second.reused == SYNTH_N
    changed = sorted((data / "train_images").iterdir())[0]
    image = cv2.imread(str(changed))
    cv2.imwrite(str(changed), np.ascontiguousarray(image[:, ::-1]))
    third = prepare(data, "aptos", spec, out, workers=1)
    assert third.processed == 1 and third.reused == SYNTH_N - 1
    with pytest.raises(MobiledrError, match="use another --out"):
        prepare(data, "aptos", PreprocessSpec(size=128), out, workers=1)


def _bad_corpus(root: Path) -> dict[str, str]:
    """One file of every broken kind, in an image-folder layout; returns name -> expected reason."""
    folder = root / "grade0"
    folder.mkdir(parents=True)
    good = disc_frame(width=300, height=220, cx=150, cy=110, r=100)
    cv2.imwrite(str(folder / "good.jpg"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    jpeg = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    Image.new("1", (12_000, 10_000)).save(folder / "bomb.png")  # 120 MP of zeros, a few kB on disk
    cv2.imwrite(str(folder / "black.png"), np.zeros((200, 300, 3), np.uint8))
    garbage = bytearray(jpeg)
    garbage[200:] = np.random.default_rng(0).integers(0, 256, len(garbage) - 200, dtype=np.uint8).tobytes()
    (folder / "garbage.jpg").write_bytes(bytes(garbage))
    return {
        "empty.png": "empty file",
        "text.png": "not an image",
        "truncated.jpg": "truncated",
        "bomb.png": "decompression bomb",
        "black.png": "no fundus disc found",
        "garbage.jpg": "",
    }


def test_bad_input_corpus_goes_to_rejects(tmp_path: Path) -> None:
    expected = _bad_corpus(tmp_path / "data")
    report = prepare(tmp_path / "data", "folder", PreprocessSpec(size=64), tmp_path / "cache", workers=2)
    assert [Path(e.record.path).name for e in report.cache.entries] == ["good.jpg"]
    reasons = {Path(r.source).name: r.reason for r in report.rejected}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    assert (tmp_path / "cache" / "rejects.csv").read_text().count("\n") == 1 + len(expected)
    # A re-run keeps the rejects without decoding the files again.
    again = prepare(tmp_path / "data", "folder", PreprocessSpec(size=64), tmp_path / "cache", workers=1)
    assert again.processed == 0 and len(again.rejected) == len(expected)


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "grade0"
    folder.mkdir(parents=True)
    (folder / "empty.png").write_bytes(b"")
    with pytest.raises(MobiledrError, match="no usable images"):
        prepare(tmp_path / "data", "folder", PreprocessSpec(size=64), tmp_path / "cache", workers=1)
    assert "empty file" in (tmp_path / "cache" / "rejects.csv").read_text()


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="not a mobiledr cache"):
        Cache.open(tmp_path)


def test_interrupted_prepare_keeps_completed_images(synth_dataset: Path, tmp_path: Path) -> None:
    out, spec = tmp_path / "cache", PreprocessSpec(size=48)

    def stop_after_ten(done: int, total: int) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(synth_dataset, "aptos", spec, out, workers=1, on_progress=stop_after_ten)
    kept = len(Cache.open(out).entries)
    assert kept >= 10
    again = prepare(synth_dataset, "aptos", spec, out, workers=1)
    assert again.reused == kept and again.processed == SYNTH_N - kept
