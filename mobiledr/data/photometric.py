"""The photometric stage as a torch module: used in training (on the GPU when present) and
embedded, unchanged, in exported models so an app cannot get it wrong."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mobiledr.data.spec import PreprocessSpec


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps over +-ceil(4 sigma)."""
    radius = max(1, math.ceil(4 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return (kernel / kernel.sum()).float()


class Photometric(nn.Module):
    """(N, 3, S, S) float RGB in 0-255 (the geometric stage's output) -> normalised model input.

    fundus: Ben Graham local-colour subtraction ``4*x - 4*blur(x) + 128`` (clamped to 0-255),
    pixels outside ``mask_radius * S/2`` set to 128, then ``(x/255 - mean)/std``.
    oct: luma replicated to three channels, then a per-image z-score.
    """

    def __init__(self, spec: PreprocessSpec) -> None:
        super().__init__()
        self.spec = spec
        kernel = gaussian_kernel1d(spec.blur_sigma)
        self.pad = (len(kernel) - 1) // 2
        self.register_buffer("kernel_h", kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_v", kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), persistent=False)
        yy, xx = torch.meshgrid(torch.arange(spec.size), torch.arange(spec.size), indexing="ij")
        centre = (spec.size - 1) / 2
        inside = ((xx - centre) ** 2 + (yy - centre) ** 2) <= (spec.mask_radius * spec.size / 2) ** 2
        # bool, not float: 1 byte per pixel in exported artifacts (256 KB at 512, not 1 MB)
        self.register_buffer("inside", inside.view(1, 1, spec.size, spec.size), persistent=False)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur with reflected borders (OpenCV's BORDER_REFLECT_101)."""
        x = F.conv2d(F.pad(x, (self.pad, self.pad, 0, 0), mode="reflect"), self.kernel_h, groups=3)
        return F.conv2d(F.pad(x, (0, 0, self.pad, self.pad), mode="reflect"), self.kernel_v, groups=3)

    def enhance(self, x: torch.Tensor) -> torch.Tensor:
        """The visible result in 0-255 (what ``mobiledr data preview`` shows)."""
        if self.spec.mode == "oct":
            return (x * self.luma).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        if self.spec.ben_graham:
            x = torch.clamp(4.0 * x - 4.0 * self.blur(x) + 128.0, 0.0, 255.0)
        return torch.where(self.inside, x, torch.full_like(x, 128.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.enhance(x.float())
        if self.spec.mode == "oct":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True)
            return (x - mean) / (std + 1e-6)
        return (x - self.mean) / self.std
