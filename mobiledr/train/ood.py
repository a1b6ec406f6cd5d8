"""Mahalanobis out-of-distribution score on pooled features (Lee et al. 2018, REFERENCE.md section 6).

Class means and one shared covariance of the class-centred training features; the covariance is
estimated with Ledoit-Wolf shrinkage (scikit-learn) so it stays well conditioned when features
outnumber images. score(f) = max_c -(f - mu_c)^T Sigma^-1 (f - mu_c) / 2: higher is more familiar.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from mobiledr.errors import MobiledrError


def fit_gaussian(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means (C, D) and the shared precision matrix (D, D)."""
    x = features.detach().double().numpy()
    y = labels.detach().numpy()
    missing = [c for c in range(num_classes) if not (y == c).any()]
    if missing:
        raise MobiledrError(f"OOD statistics: no training features for class {missing[0]}")
    means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
    centred = x - means[y]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return torch.from_numpy(means).float(), torch.from_numpy(precision).float()


def mahalanobis_score(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(N,) max over classes of -0.5 * squared Mahalanobis distance."""
    diff = features.float()[:, None, :] - means[None, :, :]  # (N, C, D)
    distance = torch.einsum("ncd,de,nce->nc", diff, precision, diff)
    return (-0.5 * distance).amax(dim=1)


def accept_threshold(scores: torch.Tensor, accept: float) -> float:
    """The score above which a fraction ``accept`` of in-distribution (validation) images lies."""
    return float(torch.quantile(scores.double(), 1.0 - accept))
