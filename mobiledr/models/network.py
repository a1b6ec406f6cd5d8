"""The screening network: MobileNetV3 ``features`` -> CBAM -> classification head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mobiledr.models.cbam import CBAM
from mobiledr.models.config import ModelConfig
from mobiledr.models.mobilenetv3 import build_features, init_weights
from mobiledr.models.weights import load_backbone


class ClassifierHead(nn.Module):
    """Global average pool -> dropout -> [Linear(C, hidden) -> ReLU] -> Linear(-, classes)."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        if hidden > 0:
            self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
        else:
            self.fc = nn.Sequential(nn.Linear(channels, num_classes))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pooled(x))


class MobileDRNet(nn.Module):
    """MobileNetV3 + CBAM classifier; ``features`` keeps torchvision's state_dict layout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.features = build_features(config.arch, config.width_mult, config.reduced_tail, config.dilated)
        channels = self.features.out_channels
        self.attention: nn.Module = (
            CBAM(channels, config.cbam_reduction, config.cbam_kernel, config.cbam_spatial_bn, config.cbam_residual)
            if config.cbam
            else nn.Identity()
        )
        self.head = ClassifierHead(channels, config.num_classes, config.head_hidden, config.dropout)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (before CBAM), e.g. (N, 960, 16, 16) for Large at 512."""
        return self.features(x)

    def forward_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attended map the head pools and CBAM's spatial gate (None without CBAM)."""
        features = self.features(x)
        if isinstance(self.attention, CBAM):
            return self.attention.forward_with_gate(features)
        return self.attention(features), None

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the (N, C) pooled attended features the classifier (and the OOD gate) sees."""
        pooled = self.head.pooled(self.attention(self.features(x)))
        return self.head.classify(pooled), pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (N, num_classes)."""
        return self.head(self.attention(self.features(x)))


def build_model(config: ModelConfig, pretrained: str | Path | None = None) -> MobileDRNet:
    """Build the network; ``pretrained`` is a torchvision-format ImageNet checkpoint for the backbone."""
    model = MobileDRNet(config)
    if pretrained is not None:
        load_backbone(model.features, pretrained)
    return model
