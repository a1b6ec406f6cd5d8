"""Per-module output shapes, parameters and MACs, like the thesis's model summary (Figure 3.5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mobiledr.models.mobilenetv3 import ConvBNAct, InvertedResidual
from mobiledr.models.network import MobileDRNet


@dataclass(frozen=True)
class SummaryRow:
    name: str
    kind: str
    detail: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    input_size: int
    rows: list[SummaryRow]
    trainable_params: int
    bn_statistics: int  # BatchNorm running means and variances (Keras' "non-trainable params")
    macs: int
    fp32_bytes: int  # parameters and BN statistics as float32
    int8_bytes: int  # conv/linear weights as int8 plus int32 biases after BN folding (scales excluded)

    def to_dict(self) -> dict:
        return asdict(self)


def _describe(module: nn.Module) -> tuple[str, str]:
    """A short kind and detail for a row, e.g. ("IR", "k5 e672 SE HS s2") for an inverted residual."""
    if isinstance(module, InvertedResidual):
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        dw = convs[0]
        has_se = any(hasattr(m, "fc1") for m in module.modules())
        act = "HS" if any(isinstance(m, nn.Hardswish) for m in module.modules()) else "RE"
        stride = dw.stride[0] if dw.dilation[0] == 1 else f"1 d{dw.dilation[0]}"
        return "IR", f"k{dw.kernel_size[0]} e{dw.out_channels}{' SE' if has_se else ''} {act} s{stride}"
    if isinstance(module, ConvBNAct):
        conv = module[0]
        return "Conv", f"{conv.kernel_size[0]}x{conv.kernel_size[1]} s{conv.stride[0]} {conv.in_channels}->{conv.out_channels}"
    return type(module).__name__, ""


def _units(model: MobileDRNet) -> list[tuple[str, nn.Module]]:
    """The rows of the table: each backbone stage, each attention branch, the head."""
    units = [(f"features.{i}", m) for i, m in enumerate(model.features)]
    children = list(model.attention.named_children())
    units += [(f"attention.{n}", m) for n, m in children] if children else []
    units.append(("head", model.head))
    return units


def summarize(model: MobileDRNet, input_size: int | None = None) -> ModelSummary:
    """Run one (1, 3, S, S) forward pass in eval mode, counting FLOPs per module."""
    size = input_size or model.config.input_size
    units = _units(model)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name, module in units
    ]
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with counter, torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    # FlopCounterMode names modules "<RootClass>.<qualified name>"; conv and linear count 2 FLOPs per MAC.
    flops = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, module in units:
        kind, detail = _describe(module)
        unit_flops = sum(flops.get(f"{root}.{name}", {}).values())
        params = sum(p.numel() for p in module.parameters())
        rows.append(SummaryRow(name, kind, detail, shapes[name], params, unit_flops // 2))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    int8_bytes = sum(m.weight.numel() + 4 * m.weight.shape[0] for m in layers)
    return ModelSummary(
        input_size=size,
        rows=rows,
        trainable_params=trainable,
        bn_statistics=stats,
        macs=counter.get_total_flops() // 2,
        fp32_bytes=4 * (trainable + stats),
        int8_bytes=int8_bytes,
    )
