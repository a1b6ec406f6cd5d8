"""``PreprocessSpec``: the one definition of preprocessing, stored with caches, checkpoints and bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mobiledr.errors import MobiledrError
from mobiledr.fields import strict_kwargs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("fundus", "oct")


@dataclass(frozen=True)
class PreprocessSpec:
    """Both stages of preprocessing.

    Geometric stage (OpenCV/numpy; a phone app does the same): decode, 8-bit RGB, circle crop
    (fundus), pad to square, bicubic resize to ``size``. Photometric stage (a torch module, also
    embedded in exported models): fundus: Ben Graham ``4*img - 4*blur(img, sigma) + 128`` with
    ``sigma = blur_sigma_ratio * R`` (R = size/2, the disc radius after cropping), pixels outside
    ``mask_radius * R`` set to 128, then ``(x/255 - mean)/std``; oct: greyscale replicated to three
    channels and a per-image z-score.
    """

    size: int = 512
    mode: str = "fundus"
    crop_tolerance: int = 7  # grey level (0-255) above which a pixel belongs to the disc
    ben_graham: bool = True
    blur_sigma_ratio: float = 1 / 30
    mask_radius: float = 0.9
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise MobiledrError(f"preprocessing mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.size < 32:
            raise MobiledrError(f"preprocessing size must be >= 32, got {self.size}")
        if not 0 < self.mask_radius <= 1.5 or self.blur_sigma_ratio <= 0:
            raise MobiledrError("preprocessing mask_radius must be in (0, 1.5] and blur_sigma_ratio > 0")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def for_oct(cls, size: int = 224) -> PreprocessSpec:
        return cls(size=size, mode="oct", ben_graham=False)

    @property
    def blur_sigma(self) -> float:
        """Gaussian sigma in pixels at the model size."""
        return self.blur_sigma_ratio * self.size / 2

    @property
    def geometric_key(self) -> str:
        """Hash of the fields the geometric stage depends on (a cache is valid while it is unchanged)."""
        fields = {"size": self.size, "mode": self.mode, "crop_tolerance": self.crop_tolerance}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        return cls(**strict_kwargs(cls, data, "preprocess spec"))
