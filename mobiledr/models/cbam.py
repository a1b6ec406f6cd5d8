"""CBAM attention (Woo et al. 2018) on the backbone's last feature map, as in the thesis's Figure 3.5.

Reductions are written with ops XNNPACK delegates (it has no ``amax`` and averages only over the two
spatial dimensions): the spatial max is a max-pool over the whole map, the channel mean a 1x1
convolution with constant weights 1/C, the channel max a max-pool over the channel axis of the
transposed map. The results are the same numbers (the mean up to summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def spatial_max(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1): the maximum over H and W."""
    window = (x.shape[2], x.shape[3])
    return F.max_pool2d(x, kernel_size=window, stride=window)  # stride given: Core ML's converter needs it


def channel_max(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W): the maximum over C."""
    window = (1, x.shape[1])
    return F.max_pool2d(x.permute(0, 2, 3, 1), kernel_size=window, stride=window).permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Average- and max-pooled descriptors through one shared MLP, summed, sigmoid-gated."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True).view(n, c))
        mx = self.mlp(spatial_max(x).view(n, c))
        return x * torch.sigmoid(avg + mx).view(n, c, 1, 1)


class SpatialAttention(nn.Module):
    """Channel mean and max -> k x k conv (2 -> 1) [-> BN] -> sigmoid: the (N, 1, H, W) gate in [0, 1]
    that :class:`CBAM` multiplies the map by."""

    def __init__(self, kernel_size: int = 7, batch_norm: bool = False, channels: int = 1) -> None:
        super().__init__()
        # the channel mean as a 1x1 convolution (not in the state_dict: a constant of the architecture)
        self.register_buffer("mean_weight", torch.full((1, channels, 1, 1), 1.0 / channels), persistent=False)
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention kernel must be odd, got {kernel_size}")
        # The official CBAM code puts BN after a bias-free conv; the thesis uses a biased conv alone.
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean_weight.shape[1] != x.shape[1]:
            raise ValueError(f"spatial attention built for {self.mean_weight.shape[1]} channels, got {x.shape[1]}")
        pooled = torch.cat([F.conv2d(x, self.mean_weight), channel_max(x)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Channel then spatial attention; with ``residual`` the attended map is added to the input."""

    def __init__(
        self, channels: int, reduction: int = 4, kernel_size: int = 7, spatial_bn: bool = False, residual: bool = True
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size, spatial_bn, channels)
        self.residual = residual

    def forward_with_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and the spatial gate (N, 1, H, W) it applied (the exported CBAM heatmap)."""
        refined = self.channel(x)
        gate = self.spatial(refined)
        attended = refined * gate
        return (x + attended if self.residual else attended), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gate(x)[0]
