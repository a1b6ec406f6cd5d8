"""CBAM attention (Woo et al. 2018) on the backbone's last feature map, as in the thesis's Figure 3.5."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Average- and max-pooled descriptors through one shared MLP, summed, sigmoid-gated."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        mx = self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]


class SpatialAttention(nn.Module):
    """Channel mean and max -> k x k conv (2 -> 1) [-> BN] -> sigmoid: the (N, 1, H, W) gate in [0, 1]
    that :class:`CBAM` multiplies the map by."""

    def __init__(self, kernel_size: int = 7, batch_norm: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention kernel must be odd, got {kernel_size}")
        # The official CBAM code puts BN after a bias-free conv; the thesis uses a biased conv alone.
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Channel then spatial attention; with ``residual`` the attended map is added to the input."""

    def __init__(
        self, channels: int, reduction: int = 4, kernel_size: int = 7, spatial_bn: bool = False, residual: bool = True
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size, spatial_bn)
        self.residual = residual

    def forward_with_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and the spatial gate (N, 1, H, W) it applied (the exported CBAM heatmap)."""
        refined = self.channel(x)
        gate = self.spatial(refined)
        attended = refined * gate
        return (x + attended if self.residual else attended), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gate(x)[0]
