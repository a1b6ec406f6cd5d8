"""The photometric stage as a torch module: used in training (on the GPU when present) and
embedded, unchanged, in exported models so an app cannot get it wrong.

It is written for phones: every op is one XNNPACK runs in its delegate (strided depthwise
convolutions, bilinear upsampling, element-wise arithmetic, global means), so the stage costs a few
percent of an int8 program instead of most of it:

- The Ben Graham blur (sigma = R/30, 71 taps at 512 px) runs at reduced resolution: a pyramid of
  stride-2 binomial filters ([1, 3, 3, 1]/8, which also keeps the decimation from aliasing), a short
  separable Gaussian at 1/f resolution, and bilinear upsampling back one octave at a time (one x f
  step leaves visible kinks at strong edges). The kernels' variances add, so the
  low-resolution sigma makes the total equal the exact one; f is the largest power of two that leaves
  that sigma >= 2 reduced pixels, where the difference from OpenCV's full-resolution ``GaussianBlur`` stays
  within 0.5 grey levels on average and 3 at worst (measured in ``benchmarks/results/photometric_error.md``).
- Borders: zero padding, and each filter's result divided by its response to a constant image (a
  normalised convolution: the average of the pixels that exist), instead of reflect padding.
- The circular mask is computed from two coordinate vectors and applied as a multiply, not stored as
  an S x S tensor nor applied with ``where``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mobiledr.data.spec import PreprocessSpec

MIN_LOW_SIGMA = 2.0  # reduced pixels: below this the bilinear reconstruction drifts from the exact blur
BINOMIAL = (1.0, 3.0, 3.0, 1.0)  # /8: each stride-2 level, centred between two input pixels; variance 3/4


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps over +-ceil(4 sigma)."""
    radius = max(1, math.ceil(4 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def _low_sigma(sigma: float, factor: int) -> float:
    """The Gaussian sigma, in reduced pixels, that makes the pyramid, the Gaussian and the bilinear
    upsampling together as wide as ``sigma``: variances add (at octave i, in full-resolution pixels
    squared: binomial 3/4 * 4^i, x2 bilinear 2/3 * 4^i); 0 when the pyramid alone is wider."""
    levels = int(math.log2(factor))
    spent = sum((0.75 + 2 / 3) * 4**i for i in range(levels))
    return math.sqrt(sigma**2 - spent) / factor if sigma**2 > spent else 0.0


def blur_plan(sigma: float, size: int) -> tuple[int, float]:
    """(factor, reduced sigma): the largest power-of-two factor dividing ``size`` whose reduced sigma
    is at least MIN_LOW_SIGMA (1 when none is)."""
    factor = 1
    while size % (2 * factor) == 0 and _low_sigma(sigma, 2 * factor) >= MIN_LOW_SIGMA:
        factor *= 2
    return factor, _low_sigma(sigma, factor)


def _normaliser(kernel: torch.Tensor, length: int, stride: int, padding: int) -> torch.Tensor:
    """1 / the filter's response to a constant signal of ``length`` samples (zero-padded)."""
    response = F.conv1d(torch.ones(1, 1, length), kernel.view(1, 1, -1), stride=stride, padding=padding)
    return 1.0 / response.view(-1)


class Photometric(nn.Module):
    """(N, 3, S, S) float RGB in 0-255 (the geometric stage's output) -> normalised model input.

    fundus: Ben Graham local-colour subtraction ``4*x - 4*blur(x) + 128`` (clamped to 0-255),
    pixels outside ``mask_radius * S/2`` set to 128, then ``(x/255 - mean)/std``.
    oct: luma replicated to three channels, then a per-image z-score.
    """

    def __init__(self, spec: PreprocessSpec) -> None:
        super().__init__()
        self.spec = spec
        size = spec.size
        self.factor, self.low_sigma = blur_plan(spec.blur_sigma, size)
        binomial = torch.tensor(BINOMIAL) / 8.0
        self.levels = int(math.log2(self.factor))
        for level in range(self.levels):
            length = size >> level
            self.register_buffer(f"pyramid_h{level}", binomial.view(1, 1, 1, -1).repeat(3, 1, 1, 1), persistent=False)
            self.register_buffer(f"pyramid_v{level}", binomial.view(1, 1, -1, 1).repeat(3, 1, 1, 1), persistent=False)
            norm = _normaliser(binomial, length, 2, 1)
            self.register_buffer(f"pyramid_nh{level}", norm.view(1, 1, 1, -1), persistent=False)
            self.register_buffer(f"pyramid_nv{level}", norm.view(1, 1, -1, 1), persistent=False)
        kernel = gaussian_kernel1d(self.low_sigma) if self.low_sigma > 0 else torch.ones(1)
        self.pad = (len(kernel) - 1) // 2
        low = size // self.factor
        self.register_buffer("kernel_h", kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_v", kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), persistent=False)
        norm = _normaliser(kernel, low, 1, self.pad)
        self.register_buffer("norm_h", norm.view(1, 1, 1, low), persistent=False)
        self.register_buffer("norm_v", norm.view(1, 1, low, 1), persistent=False)
        # mask: (row - c)^2 + (col - c)^2 <= limit; squared offsets lie on a 1/4 grid, so the threshold
        # sits halfway between two grid values and a x16 ramp clamped to 0-1 is exactly 0 or 1
        offsets = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) ** 2
        limit = (spec.mask_radius * size / 2) ** 2
        self.mask_threshold = (math.floor(limit * 4) + 0.5) / 4
        self.register_buffer("rows_sq", offsets.view(1, 1, size, 1), persistent=False)
        self.register_buffer("cols_sq", offsets.view(1, 1, 1, size), persistent=False)
        mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)  # (x - 128)*scale + shift
        self.register_buffer("shift", (128.0 / 255.0 - mean) / std, persistent=False)  # = (x/255 - mean)/std
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("three", torch.ones(1, 3, 1, 1), persistent=False)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian blur (sigma = spec.blur_sigma) at 1/factor resolution, normalised at the borders."""
        size = x.shape[-1]
        low = x
        for level in range(self.levels):
            low = F.conv2d(low, getattr(self, f"pyramid_h{level}"), stride=(1, 2), padding=(0, 1), groups=3) * getattr(self, f"pyramid_nh{level}")
            low = F.conv2d(low, getattr(self, f"pyramid_v{level}"), stride=(2, 1), padding=(1, 0), groups=3) * getattr(self, f"pyramid_nv{level}")
        low = F.conv2d(low, self.kernel_h, padding=(0, self.pad), groups=3) * self.norm_h
        low = F.conv2d(low, self.kernel_v, padding=(self.pad, 0), groups=3) * self.norm_v
        for level in reversed(range(self.levels)):
            side = size >> level
            low = F.interpolate(low, size=(side, side), mode="bilinear", align_corners=False)
        return low

    def inside(self) -> torch.Tensor:
        """(1, 1, S, S) 1.0 inside the mask circle, 0.0 outside."""
        return torch.clamp((self.mask_threshold - (self.rows_sq + self.cols_sq)) * 16.0, 0.0, 1.0)

    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        """The enhanced image minus 128, zero outside the mask."""
        if self.spec.ben_graham:
            x = torch.clamp(4.0 * (x - self.blur(x)), -128.0, 127.0)  # clamp(4x - 4 blur + 128, 0, 255) - 128
        else:
            x = x - 128.0
        return x * self.inside()

    def _luma(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.luma)  # (N, 1, S, S)

    def enhance(self, x: torch.Tensor) -> torch.Tensor:
        """The visible result in 0-255 (what ``mobiledr data preview`` shows)."""
        x = x.float()
        if self.spec.mode == "oct":
            return self._luma(x) * self.three
        return self._centred(x) + 128.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.spec.mode == "oct":
            grey = self._luma(x)
            centred = grey - grey.mean(dim=(2, 3), keepdim=True)
            count = 3 * grey.shape[-1] * grey.shape[-2]  # the z-score of the three replicated channels
            std = torch.sqrt((centred * centred).mean(dim=(2, 3), keepdim=True) * (count / (count - 1)))
            return (centred / (std + 1e-6)) * self.three
        return self._centred(x) * self.scale + self.shift


def opencv_reference(image: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """The exact Ben Graham output (OpenCV's full-resolution ``GaussianBlur``, reflected borders) of an
    (S, S, 3) image and the mask circle: the yardstick :class:`Photometric`'s blur is measured against
    (tests and ``benchmarks/photometric_error.py``), never part of the pipeline."""
    x = image.astype(np.float32)
    enhanced = np.clip(4 * x - 4 * cv2.GaussianBlur(x, (0, 0), spec.blur_sigma) + 128, 0, 255)
    size = spec.size
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    inside = (xx - centre) ** 2 + (yy - centre) ** 2 <= (spec.mask_radius * size / 2) ** 2
    enhanced[~inside] = 128
    return enhanced, inside
