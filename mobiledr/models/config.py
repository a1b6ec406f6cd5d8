"""``ModelConfig``: the serialisable description of a network, and the named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mobiledr.errors import MobiledrError
from mobiledr.fields import strict_kwargs
from mobiledr.models.mobilenetv3 import BLOCK_TABLES


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a MobileNetV3 + CBAM classifier; stored in checkpoints and manifests."""

    name: str = "custom"
    arch: str = "large"
    num_classes: int = 2
    input_size: int = 224
    width_mult: float = 1.0
    reduced_tail: bool = False
    dilated: bool = False
    cbam: bool = True
    cbam_reduction: int = 4
    cbam_kernel: int = 7
    cbam_spatial_bn: bool = False
    cbam_residual: bool = True
    head_hidden: int = 64  # 0: GAP -> dropout -> one Linear, which makes CAM exact
    dropout: float = 0.2

    def __post_init__(self) -> None:
        problems = []
        if self.arch not in BLOCK_TABLES:
            problems.append(f"arch must be one of {sorted(BLOCK_TABLES)}, got {self.arch!r}")
        if self.num_classes < 2:
            problems.append(f"num_classes must be >= 2, got {self.num_classes}")
        if self.input_size < 32:
            problems.append(f"input_size must be >= 32, got {self.input_size}")
        if self.width_mult <= 0:
            problems.append(f"width_mult must be > 0, got {self.width_mult}")
        if self.cbam_reduction < 1:
            problems.append(f"cbam_reduction must be >= 1, got {self.cbam_reduction}")
        if self.cbam_kernel < 1 or self.cbam_kernel % 2 == 0:
            problems.append(f"cbam_kernel must be a positive odd number, got {self.cbam_kernel}")
        if self.head_hidden < 0:
            problems.append(f"head_hidden must be >= 0, got {self.head_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problems:
            raise MobiledrError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> ModelConfig:
        """Build from a mapping, rejecting unknown keys and values of the wrong type."""
        return cls(**strict_kwargs(cls, data, source))

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a YAML or JSON file holding a ModelConfig mapping (optionally under a ``model:`` key)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise MobiledrError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise MobiledrError(f"{path}: cannot read config: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = data["model"]
        if not isinstance(data, dict):
            raise MobiledrError(f"{path}: expected a mapping of model config fields")
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


PRESETS: dict[str, ModelConfig] = {
    # The thesis (Figure 3.5): MobileNetV3-Large + CBAM, 512x512 fundus photographs, DR vs no DR.
    "thesis-dr": ModelConfig(name="thesis-dr", arch="large", num_classes=2, input_size=512),
    "thesis-dr-small": ModelConfig(name="thesis-dr-small", arch="small", num_classes=2, input_size=512),
    # The OCT project: Kermany OCT2017, CNV/DME/DRUSEN/NORMAL at 224x224.
    "oct-kermany": ModelConfig(name="oct-kermany", arch="large", num_classes=4, input_size=224),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise MobiledrError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
