"""MobileNetV3 Large/Small backbones, driven by a block table, in torchvision's weight layout.

The module tree mirrors torchvision's ``mobilenet_v3_large().features`` /
``mobilenet_v3_small().features`` exactly (same nesting, same ``state_dict`` keys and shapes), so an
ImageNet checkpoint written by torchvision loads with ``strict=True``. torchvision itself is not a
dependency: it cannot be imported next to the CPU build of torch this project pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Arch = Literal["large", "small"]

BN_EPS = 0.001
BN_MOMENTUM = 0.01


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: channels before width scaling, as in the MobileNetV3 paper."""

    in_ch: int
    kernel: int
    expanded: int
    out_ch: int
    use_se: bool
    activation: Literal["RE", "HS"]
    stride: int


def _table(rows: str) -> list[BlockSpec]:
    """Parse ``in,kernel,expanded,out,SE|-,RE|HS,stride`` rows (one per line)."""
    specs = []
    for row in rows.strip().splitlines():
        i, k, e, o, se, act, s = (field.strip() for field in row.split(","))
        specs.append(BlockSpec(int(i), int(k), int(e), int(o), se == "SE", act, int(s)))  # type: ignore[arg-type]
    return specs


# The paper's Tables 1 and 2. The last three rows of each (the C5 stage) are the ones that
# ``reduced_tail`` halves and ``dilated`` dilates.
BLOCK_TABLES: dict[str, list[BlockSpec]] = {
    "large": _table(
        """
        16,3,16,16,-,RE,1
        16,3,64,24,-,RE,2
        24,3,72,24,-,RE,1
        24,5,72,40,SE,RE,2
        40,5,120,40,SE,RE,1
        40,5,120,40,SE,RE,1
        40,3,240,80,-,HS,2
        80,3,200,80,-,HS,1
        80,3,184,80,-,HS,1
        80,3,184,80,-,HS,1
        80,3,480,112,SE,HS,1
        112,3,672,112,SE,HS,1
        112,5,672,160,SE,HS,2
        160,5,960,160,SE,HS,1
        160,5,960,160,SE,HS,1
        """
    ),
    "small": _table(
        """
        16,3,16,16,SE,RE,2
        16,3,72,24,-,RE,2
        24,3,88,24,-,RE,1
        24,5,96,40,SE,HS,2
        40,5,240,40,SE,HS,1
        40,5,240,40,SE,HS,1
        40,5,120,48,SE,HS,1
        48,5,144,48,SE,HS,1
        48,5,288,96,SE,HS,2
        96,5,576,96,SE,HS,1
        96,5,576,96,SE,HS,1
        """
    ),
}
TAIL_BLOCKS = 3


def block_settings(arch: str, width_mult: float = 1.0, reduced_tail: bool = False, dilated: bool = False) -> list[tuple[BlockSpec, int]]:
    """Return the scaled block table of ``arch`` as ``(spec, dilation)`` pairs."""
    if arch not in BLOCK_TABLES:
        raise ValueError(f"unknown MobileNetV3 arch {arch!r}; expected one of {sorted(BLOCK_TABLES)}")
    table = BLOCK_TABLES[arch]
    tail_start = len(table) - TAIL_BLOCKS
    divider = 2 if reduced_tail else 1

    def scale(ch: int) -> int:
        return make_divisible(ch * width_mult, 8)

    settings = []
    for index, spec in enumerate(table):
        in_tail = index >= tail_start
        # The first tail block keeps its input and expansion width; later ones are halved too.
        in_ch = spec.in_ch // divider if index > tail_start else spec.in_ch
        expanded = spec.expanded // divider if index > tail_start else spec.expanded
        out_ch = spec.out_ch // divider if in_tail else spec.out_ch
        scaled = BlockSpec(scale(in_ch), spec.kernel, scale(expanded), scale(out_ch), spec.use_se, spec.activation, spec.stride)
        settings.append((scaled, 2 if (dilated and in_tail) else 1))
    return settings


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d [-> activation]; children named 0/1/2 as torchvision's Conv2dNormActivation."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        activation: type[nn.Module] | None = nn.Hardswish,
    ) -> None:
        padding = (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation())  # not in place: export keeps aten.hardswish, which XNNPACK runs natively
        super().__init__(*layers)
        self.out_channels = out_ch


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6`` with float constants: ``nn.Hardsigmoid`` exports as integer scalars whose
    casts ExecuTorch runs outside the XNNPACK delegate (XNNPACK has no hard-sigmoid of its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + 3.0, 0.0, 6.0) * (1.0 / 6.0)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation with 1x1 convs ``fc1``/``fc2``, ReLU and hard-sigmoid gating."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = HardSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when expanded == in) -> depthwise -> [SE] -> project (1x1, linear)."""

    def __init__(self, spec: BlockSpec, dilation: int = 1) -> None:
        super().__init__()
        if spec.stride not in (1, 2):
            raise ValueError(f"illegal stride {spec.stride}")
        self.use_res_connect = spec.stride == 1 and spec.in_ch == spec.out_ch
        act = nn.Hardswish if spec.activation == "HS" else nn.ReLU
        stride = 1 if dilation > 1 else spec.stride
        layers: list[nn.Module] = []
        if spec.expanded != spec.in_ch:
            layers.append(ConvBNAct(spec.in_ch, spec.expanded, kernel=1, activation=act))
        layers.append(
            ConvBNAct(spec.expanded, spec.expanded, spec.kernel, stride, groups=spec.expanded, dilation=dilation, activation=act)
        )
        if spec.use_se:
            layers.append(SqueezeExcitation(spec.expanded, make_divisible(spec.expanded // 4, 8)))
        layers.append(ConvBNAct(spec.expanded, spec.out_ch, kernel=1, activation=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


def build_features(arch: str, width_mult: float = 1.0, reduced_tail: bool = False, dilated: bool = False) -> nn.Sequential:
    """Build the ``features`` trunk: stem, inverted residual blocks, last 1x1 conv (6x widening)."""
    settings = block_settings(arch, width_mult, reduced_tail, dilated)
    first = settings[0][0]
    layers: list[nn.Module] = [ConvBNAct(3, first.in_ch, kernel=3, stride=2, activation=nn.Hardswish)]
    layers += [InvertedResidual(spec, dilation) for spec, dilation in settings]
    last_in = settings[-1][0].out_ch
    layers.append(ConvBNAct(last_in, 6 * last_in, kernel=1, activation=nn.Hardswish))
    features = nn.Sequential(*layers)
    features.out_channels = 6 * last_in  # type: ignore[assignment]
    return features


def init_weights(module: nn.Module) -> None:
    """torchvision's MobileNetV3 initialisation (Kaiming fan-out convs, unit BN, N(0, 0.01) linears)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
