"""Where the network looks: gradient saliency, Grad-CAM, and the gradient-free heatmap exported models compute.

All three explain one *target score* per image, ``logits @ v`` with ``v`` from :func:`class_weights`:
for binary models the logit difference ``logit_c - logit_other`` (``c`` = 1, the positive class, by
default), so a map shows evidence FOR that class against the other, the quantity the calibrated
probability ``sigmoid((logit_1 - logit_0) / T)`` is a function of; for multi-class models ``logit_c``
(``c`` = each image's predicted class by default).

The Grad-CAM target layer is the attended map ``A = attention(features(x))`` that the head pools. With a
linear head (``head_hidden == 0``) Grad-CAM's weights are ``v @ W / (h*w)`` at every position, so
Grad-CAM equals ReLU(CAM) up to a positive scale, and :class:`HeatmapModule` computes CAM from forward
ops only. Every map is normalised per image to 0-1 by its maximum (an all-zero map stays zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from mobiledr.models import MobileDRNet, ModelConfig
from mobiledr.models.cbam import spatial_max
from mobiledr.plots import save_figure
from mobiledr.train.inference import Classifier

METHODS = {
    "cam": "class activation map (linear head)",
    "cbam-spatial": "CBAM spatial attention gate",
    "channel-mean": "channel mean of the feature map",
}
#: What each exported heatmap is, for the manifest and the explain panel: only CAM explains a class.
DESCRIPTIONS = {
    "cam": "class activation map of the explained class (equal to Grad-CAM up to scale for this linear head)",
    "cbam-spatial": "CBAM spatial attention gate: where the network attends, the same map for every class; not Grad-CAM, not class evidence",
    "channel-mean": "channel mean of the feature map: the same map for every class; not Grad-CAM, not class evidence",
}
CLASS_SPECIFIC = {"cam": True, "cbam-spatial": False, "channel-mean": False}


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """(N, h, w) -> ReLU, divided per image by its maximum: 0-1; an all-zero map stays zero.

    The divisor is the maximum clamped to the smallest normal float32 (an all-zero map divides 0 by it):
    no division by zero, and unlike ``max + eps`` scale-invariant for any map above 1e-38, which
    matters for untrained or fp16 models whose maps can be far below any fixed epsilon. The maximum
    is a max-pool over the whole map, an op XNNPACK delegates (it has no ``amax``).
    """
    maps = torch.relu(maps)
    n, h, w = maps.shape
    peak = spatial_max(maps.view(n, 1, h, w)).view(n, 1, 1)
    return maps / torch.clamp(peak, min=torch.finfo(torch.float32).tiny)


def class_weights(logits: torch.Tensor, class_index: int | None) -> torch.Tensor:
    """(N, K) weights ``v`` of the explained score ``logits @ v`` (see the module docstring).

    Uses only shape-static control flow, so it traces into exported graphs.
    """
    num_classes = logits.shape[1]
    if class_index is not None and not 0 <= class_index < num_classes:
        raise ValueError(f"class index {class_index} out of range for {num_classes} classes")
    if num_classes == 2:  # a constant: exported graphs get no data-dependent ops for it
        sign = [1.0, -1.0] if class_index == 0 else [-1.0, 1.0]
        return torch.tensor([sign], dtype=logits.dtype, device=logits.device).expand(logits.shape[0], 2)
    if class_index is None:
        chosen = logits.argmax(dim=1, keepdim=True)
    else:
        chosen = torch.full_like(logits[:, :1], class_index, dtype=torch.long)
    return (torch.arange(num_classes, device=logits.device) == chosen).to(logits.dtype)


def heatmap_method(network: MobileDRNet) -> str:
    """The exported heatmap's kind, a key of METHODS: CAM for a linear head, else the CBAM spatial
    gate, else (no CBAM, non-linear head) the channel mean of the feature map."""
    return method_for(network.config)


def method_for(config: ModelConfig) -> str:
    """:func:`heatmap_method` from a model configuration alone."""
    if config.head_hidden == 0:
        return "cam"
    return "cbam-spatial" if config.cbam else "channel-mean"


class HeatmapModule(nn.Module):
    """Logits and a 0-1 heatmap from forward ops only (no autograd), for embedding in exported models.

    ``forward(inputs)``: ``inputs`` (N, 3, S, S) is the *normalised* model input (the photometric stage's
    output); returns ``(logits (N, K), heatmap (N, h, w))`` with h = w = the feature map's side (S/32, or
    S/16 for dilated backbones), float in 0-1, max 1 per image unless all zero. The heatmap is
    :func:`heatmap_method`'s: CAM ``ReLU(sum_k (v @ W)_k A_k)`` for a linear head, explaining
    ``class_index`` as :func:`class_weights` does (None: the positive class of binary models, the
    predicted class otherwise); else the CBAM spatial gate ``attention.spatial(
    attention.channel(F))``; else ``ReLU(mean_k A_k)``. The app upsamples it to the image. The network
    should be in eval mode (dropout off), as every function here expects.
    """

    def __init__(self, network: MobileDRNet, class_index: int | None = None) -> None:
        super().__init__()
        self.network = network
        self.class_index = class_index
        self.method = heatmap_method(network)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, gate = self.network.forward_maps(inputs)
        logits = self.network.head(attended)
        cam = class_weights(logits, self.class_index) @ self.network.head.fc[0].weight if self.method == "cam" else None
        return logits, compute_heatmap(self.method, attended, gate, cam)


def compute_heatmap(method: str, attended: torch.Tensor, gate: torch.Tensor | None, cam_weights: torch.Tensor | None) -> torch.Tensor:
    """:class:`HeatmapModule`'s normalised (N, h, w) map from the network's intermediate tensors:
    ``gate`` is CBAM's spatial gate, ``cam_weights`` (N or 1, C) the CAM channel weights ``v @ W``."""
    n, channels, h, w = attended.shape
    if method == "cam":
        if cam_weights is None:
            raise ValueError("the CAM heatmap needs its channel weights")
        # sum_c w_c A_c as a batched matrix product (XNNPACK has no sum over channels)
        weights = cam_weights if cam_weights.shape[0] == n else cam_weights.expand(n, channels)  # shape-static: no expand op when exported
        maps = torch.bmm(attended.reshape(n, channels, h * w).transpose(1, 2), weights.reshape(n, channels, 1)).view(n, h, w)
    elif method == "cbam-spatial":
        if gate is None:
            raise ValueError("the cbam-spatial heatmap needs the CBAM gate")
        maps = gate.view(gate.shape[0], gate.shape[2], gate.shape[3])  # a view, not a select: XNNPACK has no select
    else:  # the channel mean as an average pool over the channel axis of the transposed map
        maps = F.avg_pool2d(attended.permute(0, 2, 3, 1), kernel_size=(1, channels), stride=(1, channels)).view(n, h, w)
    return normalise(maps)


@torch.no_grad()
def exported_heatmap(network: MobileDRNet, inputs: torch.Tensor, class_index: int | None = None) -> torch.Tensor:
    """:class:`HeatmapModule`'s (N, h, w) heatmap for normalised ``inputs``, without autograd."""
    return HeatmapModule(network, class_index)(inputs)[1]


def saliency(classifier: Classifier, images: torch.Tensor, class_index: int | None = None) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2014): |d score / d image| on the geometric-stage
    input (N, 3, S, S, 0-255), max over colour channels, normalised per image -> (N, S, S)."""
    with torch.enable_grad():
        x = images.detach().float().requires_grad_(True)
        logits = classifier(x)
        score = (logits * class_weights(logits.detach(), class_index)).sum()
        (grad,) = torch.autograd.grad(score, x)
    return normalise(grad.abs().amax(dim=1))


def grad_cam(classifier: Classifier, images: torch.Tensor, class_index: int | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the attended map A: weights = spatial mean of d score / dA,
    map = ReLU(sum_k w_k A_k), normalised per image -> (N, h, w)."""
    network = classifier.network
    with torch.enable_grad():
        attended = network.attention(network.features(classifier.photometric(images.float())))
        logits = network.head(attended)
        score = (logits * class_weights(logits.detach(), class_index)).sum()
        (grad,) = torch.autograd.grad(score, attended)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return normalise((weights * attended.detach()).sum(dim=1))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two maps; None when either is constant."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else None


def to_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Geometric-stage uint8 RGB (S, S, 3) images -> (N, 3, S, S) float 0-255."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


@dataclass
class Explanations:
    """Logits and the three maps for a batch; ``correlations`` is exported heatmap vs Grad-CAM per image."""

    logits: torch.Tensor  # (N, K)
    saliency: np.ndarray  # (N, S, S)
    grad_cam: np.ndarray  # (N, h, w)
    heatmap: np.ndarray  # (N, h, w), what the exported model computes
    method: str  # key of METHODS
    correlations: list[float | None]


def explain(classifier: Classifier, images: torch.Tensor, class_index: int | None = None) -> Explanations:
    """Saliency, Grad-CAM and the exported heatmap for geometric-stage images (N, 3, S, S, 0-255)."""
    with torch.no_grad():
        logits, heatmap = HeatmapModule(classifier.network, class_index)(classifier.photometric(images.float()))
    cams = grad_cam(classifier, images, class_index).numpy()
    heat = heatmap.numpy()
    return Explanations(
        logits=logits,
        saliency=saliency(classifier, images, class_index).numpy(),
        grad_cam=cams,
        heatmap=heat,
        method=heatmap_method(classifier.network),
        correlations=[pearson(h, c) for h, c in zip(heat, cams)],
    )


def disc_mask(rgb: np.ndarray, tolerance: int = 7) -> np.ndarray:
    """Boolean (S, S) mask of the fundus disc in a geometric-stage image: non-black pixels (dark lesions
    filled by a closing) inside the inscribed circle."""
    size = rgb.shape[0]
    bright = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) > tolerance).astype(np.uint8)
    side = max(3, size // 16) | 1
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    yy, xx = np.mgrid[:size, : rgb.shape[1]]
    centre = (size - 1) / 2
    return (bright > 0) & ((xx - centre) ** 2 + (yy - centre) ** 2 <= (size / 2) ** 2)


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, disc_only: bool = True) -> np.ndarray:
    """The 0-1 heatmap upsampled (bicubic) to the image, coloured with TURBO and blended with weight
    ``alpha``; with ``disc_only`` only inside :func:`disc_mask`, so the black border stays black."""
    height, width = rgb.shape[:2]
    upsampled = np.clip(cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    colour = cv2.cvtColor(cv2.applyColorMap(np.rint(upsampled * 255).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    blended = np.rint((1 - alpha) * rgb.astype(np.float32) + alpha * colour.astype(np.float32)).astype(np.uint8)
    if not disc_only:
        return blended
    return np.where(disc_mask(rgb)[:, :, None], blended, rgb)


def save_panel(path: str | Path, panels: Sequence[tuple[str, np.ndarray]], title: str, dpi: int = 110) -> None:
    """Captioned RGB images side by side under one title line, as a PNG (matplotlib object API);
    each image is drawn at least 3 inches wide, and at its own resolution when larger."""
    side = max(3.0, panels[0][1].shape[1] / dpi)
    fig = Figure(figsize=(side * len(panels), side + 0.5))
    for index, (caption, image) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        ax.imshow(image)
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=dpi)
