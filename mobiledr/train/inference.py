"""Batched inference over a dataset: logits and pooled features, the photometric stage on the device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mobiledr.data.photometric import Photometric
from mobiledr.models import MobileDRNet


@dataclass
class Predictions:
    logits: torch.Tensor  # (N, classes), float32 on the CPU
    features: torch.Tensor  # (N, C) pooled attended features
    labels: torch.Tensor  # (N,)

    def probabilities(self, temperature: float = 1.0) -> torch.Tensor:
        return torch.softmax(self.logits / temperature, dim=1)


class Classifier(nn.Module):
    """The photometric stage followed by the network: geometric-stage images (0-255) to logits."""

    def __init__(self, network: MobileDRNet, photometric: Photometric) -> None:
        super().__init__()
        self.network = network
        self.photometric = photometric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.photometric(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.forward_with_features(self.photometric(x))


@torch.no_grad()
def predict(
    classifier: Classifier,
    dataset: Dataset,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Predictions:
    """Run the whole dataset in eval mode; ``on_batch(n)`` after each batch of n images."""
    was_training = classifier.training
    classifier.eval()
    logits, features, labels = [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    try:
        for images, targets in loader:
            out, pooled = classifier.forward_with_features(images.to(device))
            logits.append(out.float().cpu())
            features.append(pooled.float().cpu())
            labels.append(targets)
            if on_batch is not None:
                on_batch(len(targets))
    finally:
        classifier.train(was_training)
    return Predictions(torch.cat(logits), torch.cat(features), torch.cat(labels))
