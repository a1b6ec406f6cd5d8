"""Mahalanobis out-of-distribution score on pooled features (Lee et al. 2018).

Class means and one shared covariance of the class-centred training features, estimated with
Ledoit-Wolf shrinkage (scikit-learn) so it stays well conditioned when features outnumber images.
score(f) = max_c -(f - mu_c)^T Sigma^-1 (f - mu_c) / 2: higher is more familiar.

Deployed models compute it as a sum of squares of whitened coordinates, never as a quadratic form
with the precision matrix: ``f^T P f`` of an ill-conditioned ``P`` cancels catastrophically in float32,
and each runtime sums in its own order (relative errors of 0.3-0.6 were measured between runtimes).
Sigma's leading ``rank`` eigenvectors ``V`` (stored as rows, ``components``; eigenvalues ``l``) whiten the principal subspace; the rest
of the space is modelled by one variance ``l_res`` (the mean of the remaining eigenvalues, most of
which are the shrinkage floor when features outnumber images):

    x = f - mu_c,  p = V^T x,  r = x - V p
    d^2 = |p / sqrt(l)|^2 + |r|^2 / l_res

Every term is a square, so float32 keeps its relative accuracy (error ~ eps * |x| / |r| instead of
eps * cond(Sigma)). ``rank`` is the smallest power of two whose OOD-gate decisions agree with the
exact full-rank score's on the validation images (``min_agreement``), which also keeps the exported
statistics small (D x rank instead of D x D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf

from mobiledr.errors import MobiledrError

MIN_AGREEMENT = 0.995  # validation OOD-gate agreement of the low-rank score with the full-rank one
MAX_RANK = 256


@dataclass
class OODStats:
    """The whitened Gaussian model of in-distribution features and the gate's threshold."""

    means: torch.Tensor  # (classes, D)
    components: torch.Tensor  # (rank, D), orthonormal rows: Sigma's leading eigenvectors
    scales: torch.Tensor  # (rank,), 1 / sqrt(eigenvalue)
    residual_scale: float  # 1 / sqrt(mean remaining eigenvalue); 0 when rank == D
    threshold: float  # scores below this are rejected as out of distribution
    info: dict[str, Any] | None = None  # rank choice: features, rank, validation agreement, shrinkage

    def to_dict(self) -> dict[str, Any]:
        return {
            "means": self.means, "components": self.components, "scales": self.scales, "residual_scale": self.residual_scale,
            "threshold": self.threshold, "info": self.info or {},
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OODStats:
        if "precision" in data and "components" not in data:  # checkpoints written before the whitened form
            components, scales, residual = whitening_from_precision(data["precision"])
            return cls(data["means"].float(), components, scales, residual, float(data["threshold"]), {"rank": len(components), "converted": "precision"})
        return cls(
            data["means"], data["components"], data["scales"], float(data["residual_scale"]), float(data["threshold"]), dict(data.get("info") or {})
        )


def fit_gaussian(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Class means (C, D), the shrunk shared covariance (D, D), both float64, and the shrinkage."""
    x = features.detach().double().numpy()
    y = labels.detach().numpy()
    missing = [c for c in range(num_classes) if not (y == c).any()]
    if missing:
        raise MobiledrError(f"OOD statistics: no training features for class {missing[0]}")
    means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
    estimator = LedoitWolf(assume_centered=True).fit(x - means[y])
    return means, estimator.covariance_, float(estimator.shrinkage_)


def exact_score(features: torch.Tensor | np.ndarray, means: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """(N,) the full-rank score in float64 (the reference the low-rank score is chosen against)."""
    f = np.asarray(features, dtype=np.float64)
    chol = np.linalg.cholesky(covariance)
    distances = []
    for mu in means:
        z = np.linalg.solve(chol, (f - mu).T)  # L^-1 x: |z|^2 = x^T Sigma^-1 x
        distances.append((z**2).sum(axis=0))
    return -0.5 * np.min(distances, axis=0)


def _whitening(means: np.ndarray, eigenvalues: np.ndarray, eigenvectors: np.ndarray, rank: int) -> tuple[torch.Tensor, ...]:
    """(means, components, scales, residual_scale) keeping the ``rank`` leading eigenpairs (descending)."""
    components = eigenvectors[:, :rank].T
    scales = 1.0 / np.sqrt(eigenvalues[:rank])
    rest = eigenvalues[rank:]
    residual = float(1.0 / np.sqrt(rest.mean())) if len(rest) else 0.0
    return torch.from_numpy(means).float(), torch.from_numpy(np.ascontiguousarray(components)).float(), torch.from_numpy(scales).float(), residual


def whitening_from_precision(precision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(components, scales, residual_scale): the full-rank whitening of an older checkpoint's precision."""
    values, vectors = np.linalg.eigh(precision.double().numpy())  # ascending precision = descending covariance
    _, components, scales, residual = _whitening(np.zeros((1, len(values))), 1.0 / values, vectors, len(values))
    return components, scales, residual


def ood_score(features: torch.Tensor, means: torch.Tensor, components: torch.Tensor, scales: torch.Tensor, residual_scale: float) -> torch.Tensor:
    """(N,) max over classes of -0.5 * squared Mahalanobis distance, as sums of squares.

    Written with matrix products, element-wise ops, slices, global means and ``maximum`` only, so the
    exported graph stays inside one XNNPACK delegate (a sum over k values is k times the mean of an
    (N, 1, k, 1) view, XNNPACK's global average pooling)."""
    features = features.float()
    n, (rank, dim) = features.shape[0], components.shape
    best = None
    for c in range(means.shape[0]):
        x = features - means[c : c + 1]  # (N, D)
        p = F.linear(x, components)  # (N, rank): x @ V
        z = p * scales
        d2 = (z * z).view(n, 1, rank, 1).mean(dim=(2, 3), keepdim=True).view(n, 1) * float(rank)
        if dim > rank:
            r = x - p @ components  # the part of x outside the principal subspace
            d2 = d2 + (r * r).view(n, 1, dim, 1).mean(dim=(2, 3), keepdim=True).view(n, 1) * (float(dim) * residual_scale * residual_scale)
        score = -0.5 * d2  # (N, 1)
        best = score if best is None else torch.maximum(best, score)
    assert best is not None
    return best.reshape(n)


def stats_score(features: torch.Tensor, stats: OODStats) -> torch.Tensor:
    return ood_score(features, stats.means, stats.components, stats.scales, stats.residual_scale)


def accept_threshold(scores: torch.Tensor, accept: float) -> float:
    """The score above which a fraction ``accept`` of in-distribution (validation) images lies."""
    return float(torch.quantile(torch.as_tensor(scores).double(), 1.0 - accept))


def fit_ood(
    train_features: torch.Tensor, train_labels: torch.Tensor, num_classes: int, val_features: torch.Tensor, accept: float,
    min_agreement: float = MIN_AGREEMENT, max_rank: int = MAX_RANK, rank: int | None = None,
) -> OODStats:  # fmt: skip
    """Fit the Gaussian on training features, choose the rank on validation features (or use
    ``rank``), and set the threshold so a fraction ``accept`` of validation images passes the gate."""
    means, covariance, shrinkage = fit_gaussian(train_features, train_labels, num_classes)
    dim = covariance.shape[0]
    values, vectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = values[::-1], vectors[:, ::-1]
    reference = exact_score(val_features, means, covariance)
    reference_rejects = reference < float(np.quantile(reference, 1.0 - accept))
    ranks = [r for r in (2**k for k in range(4, 16)) if r < min(dim, max_rank)] + [min(dim, max_rank)]
    for rank in [min(rank, dim)] if rank else ranks:
        whitening = _whitening(means, eigenvalues, eigenvectors, rank)
        scores = ood_score(val_features, *whitening)
        threshold = accept_threshold(scores, accept)
        agreement = float(np.mean((scores.numpy() < threshold) == reference_rejects))
        if agreement >= min_agreement:
            break
    info = {"features": dim, "rank": rank, "val_gate_agreement_with_full_rank": agreement, "ledoit_wolf_shrinkage": shrinkage,
            "condition_number": float(eigenvalues[0] / eigenvalues[-1])}  # fmt: skip
    return OODStats(*whitening, threshold=threshold, info=info)
