"""Before/after images of the preprocessing, for checking it on a camera's own photographs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from mobiledr.data.geometry import GeometricResult, decode, geometric, write_png
from mobiledr.data.photometric import Photometric
from mobiledr.data.spec import PreprocessSpec


@dataclass(frozen=True)
class Preview:
    source: str
    output: str
    box: tuple[int, int, int, int]
    circle: tuple[float, float, float] | None
    original_size: tuple[int, int]

    def to_dict(self) -> dict:
        return {"source": self.source, "output": self.output, "box": list(self.box), "circle": self.circle, "original_size": list(self.original_size)}


def _annotated_original(rgb: np.ndarray, result: GeometricResult, height: int) -> np.ndarray:
    """The original frame scaled to ``height`` with the crop box (green) and fitted disc (yellow)."""
    scale = height / rgb.shape[0]
    image = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = (round(v * scale) for v in result.box)
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 2)
    if result.circle is not None:
        c = result.circle
        cv2.circle(image, (round(c.cx * scale), round(c.cy * scale)), round(c.r * scale), (255, 255, 0), 1)
    return image


def preview(path: str | Path, spec: PreprocessSpec, out_dir: str | Path, photometric: Photometric | None = None) -> Preview:
    """Write ``<out_dir>/<stem>_preview.png``: original | geometric stage | photometric stage."""
    path, out_dir = Path(path), Path(out_dir)
    rgb = decode(path)
    result = geometric(rgb, spec)
    stage = photometric or Photometric(spec)
    with torch.no_grad():
        tensor = torch.from_numpy(result.image).permute(2, 0, 1)[None].float()
        enhanced = stage.enhance(tensor)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    panel = np.concatenate([_annotated_original(rgb, result, spec.size), result.image, enhanced], axis=1)
    output = out_dir / f"{path.stem}_preview.png"
    write_png(output, panel, compression=3)
    circle = (result.circle.cx, result.circle.cy, result.circle.r) if result.circle else None
    return Preview(str(path), str(output), result.box, circle, result.original_size)
