"""The deployed graph: geometric-stage image (0-255) -> photometric stage -> network -> named outputs.

It is three modules so quantized exports can keep the ends in float32:

- ``photometric`` (:class:`~mobiledr.data.photometric.Photometric`, float): Ben Graham, mask, normalisation;
- ``core`` (:class:`Core`): backbone and CBAM, the convolutions int8 quantizes;
- ``post`` (:class:`Post`, float): pooling, the head, temperature-calibrated softmax, the 0-1 heatmap and
  the Mahalanobis OOD score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from mobiledr.data.photometric import Photometric
from mobiledr.errors import MobiledrError
from mobiledr.models import MobileDRNet
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.explain import class_weights, compute_heatmap, heatmap_method
from mobiledr.train.ood import OODStats, ood_score

OUTPUTS = ("probs", "logits", "heatmap", "ood_score")


class Core(nn.Module):
    """Normalised input -> the attended feature map, its global average (the head's input) and CBAM's
    spatial gate when the heatmap uses it.

    Pooling happens here, not in :class:`Post`, so each core output has one consumer: an XNNPACK int8
    delegate's channels-last output read by two float partitions fails at run time in executorch 1.5.
    """

    def __init__(self, network: MobileDRNet, with_gate: bool) -> None:
        super().__init__()
        self.network = network
        self.with_gate = with_gate

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        attended, gate = self.network.forward_maps(x)
        pooled = self.network.head.pooled(attended)
        return (attended, pooled, gate) if self.with_gate else (attended, pooled)


class Post(nn.Module):
    """Attended map, pooled features [, gate] -> the selected outputs, in float32."""

    def __init__(self, network: MobileDRNet, outputs: Sequence[str], temperature: float, ood: OODStats | None) -> None:
        super().__init__()
        self.head = network.head
        self.outputs = tuple(outputs)
        self.method = heatmap_method(network)
        self.inverse_temperature = 1.0 / temperature
        if "ood_score" in self.outputs:
            if ood is None:
                raise MobiledrError("output ood_score needs OOD statistics, and the checkpoint has none")
            self.register_buffer("ood_means", ood.means.float().clone())
            self.register_buffer("ood_components", ood.components.float().clone())
            self.register_buffer("ood_scales", ood.scales.float().clone())
            self.ood_residual_scale = ood.residual_scale
        self.static_cam = self.method == "cam" and network.config.num_classes == 2
        if self.static_cam:  # binary models explain the positive class: v @ W is a constant (1, C)
            weight = network.head.fc[0].weight.detach()
            self.register_buffer("cam_weights", class_weights(torch.zeros(1, 2), None) @ weight)

    def forward(self, attended: torch.Tensor, pooled: torch.Tensor, gate: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        logits = self.head.classify(pooled)
        values: dict[str, torch.Tensor] = {}
        for name in self.outputs:
            if name == "probs":
                values[name] = torch.softmax(logits * self.inverse_temperature, dim=1)
            elif name == "logits":
                values[name] = logits
            elif name == "heatmap":
                values[name] = compute_heatmap(self.method, attended, gate, self._cam_weights(logits))
            else:
                values[name] = ood_score(pooled, self.ood_means, self.ood_components, self.ood_scales, self.ood_residual_scale)
        return tuple(values[name] for name in self.outputs)


    def _cam_weights(self, logits: torch.Tensor) -> torch.Tensor | None:
        if self.method != "cam":
            return None
        return self.cam_weights if self.static_cam else class_weights(logits, None) @ self.head.fc[0].weight


class DeployModel(nn.Module):
    """(1, 3, S, S) float32 RGB 0-255 -> the outputs named by ``post.outputs``, in that order."""

    def __init__(self, photometric: Photometric, core: nn.Module, post: Post) -> None:
        super().__init__()
        self.photometric = photometric
        self.core = core
        self.post = post

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.post.outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.post(*self.core(self.photometric(image)))


def check_outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown or not outputs:
        raise MobiledrError(f"unknown output {unknown[0]!r}; choose from {', '.join(OUTPUTS)}" if unknown else "no outputs selected")
    return tuple(name for name in OUTPUTS if name in outputs)  # canonical order


def default_outputs(checkpoint: Checkpoint) -> tuple[str, ...]:
    """Every output the checkpoint supports (ood_score only with OOD statistics)."""
    return tuple(name for name in OUTPUTS if name != "ood_score" or checkpoint.ood is not None)


def build_deploy(checkpoint: Checkpoint, outputs: Sequence[str], input_size: int | None = None) -> DeployModel:
    """The float32 deployed model in eval mode, at ``input_size`` (default: the checkpoint's)."""
    network = checkpoint.build_model()
    spec = checkpoint.preprocess
    if input_size is not None:
        spec = dataclasses.replace(spec, size=input_size)
    outputs = check_outputs(outputs)
    core = Core(network, with_gate="heatmap" in outputs and heatmap_method(network) == "cbam-spatial")
    post = Post(network, outputs, checkpoint.temperature, checkpoint.ood)
    return DeployModel(Photometric(spec), core, post).eval()
