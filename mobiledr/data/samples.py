"""Real photographs that ship inside installed packages (matplotlib's sample data), for tests and
benchmarks that must not download anything. They are not fundus photographs: they stand for natural
image content (sharp edges, texture, noise) where synthetic images are too clean."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mobiledr.errors import MobiledrError

NAMES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def sample_photograph_paths() -> list[Path]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [folder / name for name in NAMES if (folder / name).is_file()]
    if not paths:
        raise MobiledrError(f"{folder}: matplotlib's sample photographs are missing")
    return paths


def sample_photographs() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) for each sample photograph found."""
    out = []
    for path in sample_photograph_paths():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MobiledrError(f"{path}: cannot decode")
        out.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out
