"""Atomic writes: readers see the old file or the whole new one, never a part; no temp files left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mobiledr.io import atomic_write_bytes, atomic_write_csv, atomic_write_json


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text() == '{\n  "a": 2\n}\n'
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o044 == 0o044  # readable by others, unlike mkstemp's private 0600
    atomic_write_csv(tmp_path / "t.csv", ["k", "v"], [[1, "x,y"]])
    assert (tmp_path / "t.csv").read_text() == 'k,v\n1,"x,y"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "t.csv"]


def test_failed_rename_keeps_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.png"
    atomic_write_bytes(target, b"old")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
