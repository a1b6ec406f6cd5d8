"""MobileNetV3 (Large/Small) + CBAM screening networks in torchvision's weight layout."""

from mobiledr.models.config import PRESETS, ModelConfig, get_preset
from mobiledr.models.network import MobileDRNet, build_model

__all__ = ["PRESETS", "MobileDRNet", "ModelConfig", "build_model", "get_preset"]
