"""How far an artifact's outputs are from the reference's: element-wise errors, decision agreements,
and (on labelled images) the change in AUC, sensitivity and specificity with paired bootstrap CIs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mobiledr.train.metrics import auc_scores, bootstrap_ci, operating_point

REL_FLOOR = 1e-6  # relative errors divide by max(|reference|, REL_FLOOR)


@dataclass(frozen=True)
class Decision:
    """The manifest's decision rule: binary ``probs[positive] >= threshold``, otherwise argmax."""

    threshold: float | None
    positive_index: int | None

    @classmethod
    def from_manifest(cls, decision: dict[str, Any]) -> Decision:
        return cls(decision.get("threshold"), decision.get("positive_index"))

    @property
    def binary(self) -> bool:
        return self.threshold is not None and self.positive_index is not None

    def apply(self, probs: np.ndarray) -> np.ndarray:
        if self.binary:
            return (probs[:, self.positive_index] >= self.threshold).astype(np.int64)
        return probs.argmax(axis=1)

    def margin(self, probs: np.ndarray) -> np.ndarray:
        """Signed distance to the decision boundary: p - threshold (binary), top-1 minus top-2 (argmax)."""
        if self.binary:
            return probs[:, self.positive_index] - self.threshold
        top = np.sort(probs, axis=1)
        return top[:, -1] - top[:, -2]


def tensor_errors(reference: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """max and mean |error|, max relative error, cosine similarity and SQNR (dB; inf when identical)."""
    r, a = reference.astype(np.float64).ravel(), actual.astype(np.float64).ravel()
    if r.shape != a.shape:
        raise ValueError(f"shape {actual.shape} differs from the reference's {reference.shape}")
    error = np.abs(a - r)
    noise, signal = float(np.sum((a - r) ** 2)), float(np.sum(r**2))
    norms = float(np.linalg.norm(r) * np.linalg.norm(a))
    return {
        "max_abs": float(error.max()) if error.size else 0.0,
        "mean_abs": float(error.mean()) if error.size else 0.0,
        "max_rel": float((error / np.maximum(np.abs(r), REL_FLOOR)).max()) if error.size else 0.0,
        "cosine": float(np.dot(r, a) / norms) if norms > 0 else float(np.array_equal(r, a)),
        "sqnr_db": math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf),
    }


def heatmap_correlation(reference: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Per-image Pearson correlation of the heatmaps: mean and minimum (a flat map correlates 1 with an
    identical flat map, 0 otherwise)."""
    values = []
    for r, a in zip(reference.reshape(len(reference), -1), actual.reshape(len(actual), -1), strict=True):
        if r.std() == 0 or a.std() == 0:
            values.append(float(np.allclose(r, a)))
        else:
            values.append(float(np.corrcoef(r, a)[0, 1]))
    return {"mean": float(np.mean(values)), "min": float(np.min(values))}


def agreements(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], decision: Decision, ood_threshold: float | None) -> dict[str, Any]:
    """Top-1, decision, OOD-decision agreement (fractions of images) and heatmap correlation."""
    out: dict[str, Any] = {}
    scores = "probs" if "probs" in reference else "logits" if "logits" in reference else None
    if scores:
        out["top1"] = float(np.mean(reference[scores].argmax(1) == actual[scores].argmax(1)))
    if "probs" in reference:
        out["decision"] = float(np.mean(decision.apply(reference["probs"]) == decision.apply(actual["probs"])))
    if "ood_score" in reference and ood_threshold is not None:
        out["ood"] = float(np.mean((reference["ood_score"] < ood_threshold) == (actual["ood_score"] < ood_threshold)))
    if "heatmap" in reference:
        out["heatmap_correlation"] = heatmap_correlation(reference["heatmap"], actual["heatmap"])
    return out


def flipped(names: list[str], labels: np.ndarray | None, reference: np.ndarray, actual: np.ndarray, decision: Decision) -> list[dict[str, Any]]:
    """The images whose decision differs, with each side's decision and distance to the boundary."""
    ref_dec, act_dec = decision.apply(reference), decision.apply(actual)
    ref_margin, act_margin = decision.margin(reference), decision.margin(actual)
    return [
        {
            "image": names[i], "label": None if labels is None else int(labels[i]),
            "reference": int(ref_dec[i]), "artifact": int(act_dec[i]),
            "reference_margin": float(ref_margin[i]), "artifact_margin": float(act_margin[i]),
        }
        for i in np.flatnonzero(ref_dec != act_dec)
    ]  # fmt: skip


def _screening(y: np.ndarray, probs: np.ndarray, decision: Decision) -> dict[str, float]:
    """AUC (binary: of the positive class; multi-class: one-vs-rest macro), and sensitivity and
    specificity at the operating threshold (binary only) or accuracy (multi-class)."""
    auc = auc_scores(y, probs).roc_auc
    if decision.binary:
        rates = operating_point(y, probs[:, decision.positive_index], decision.threshold).rates()
        return {"auc": auc, "sensitivity": rates["sensitivity"], "specificity": rates["specificity"]}
    return {"auc": auc, "accuracy": float(np.mean(probs.argmax(1) == y))}


def _paired(y: np.ndarray, reference: np.ndarray, actual: np.ndarray, decision: Decision) -> dict[str, float]:
    ref, act = _screening(y, reference, decision), _screening(y, actual, decision)
    return {**{f"reference_{k}": v for k, v in ref.items()}, **{f"artifact_{k}": v for k, v in act.items()},
            **{f"delta_{k}": act[k] - ref[k] for k in ref}}  # fmt: skip


def clinical(y: np.ndarray, reference: np.ndarray, actual: np.ndarray, decision: Decision, resamples: int, seed: int, level: float = 0.95,
             groups: np.ndarray | list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Screening measures of the reference and the artifact on the same labelled images, their
    differences, and paired percentile-bootstrap CIs (the same resamples for both sides; seeded).
    With ``groups`` (patient ids) patients are resampled, not images: a cluster bootstrap."""
    if len(np.unique(y)) < 2:
        return {"defined": False, "reason": "the labels have a single class: no AUC, sensitivity or specificity"}
    point = _paired(y, reference, actual, decision)

    def statistic(idx: np.ndarray) -> dict[str, float]:
        if len(np.unique(y[idx])) < 2:  # a resample without both outcomes has no AUC
            return dict.fromkeys(point, math.nan)
        return _paired(y[idx], reference[idx], actual[idx], decision)

    intervals = bootstrap_ci(statistic, len(y), resamples, seed, level, groups) if resamples else {}
    measures = [m for m in ("auc", "sensitivity", "specificity", "accuracy") if f"delta_{m}" in point]
    return {
        "defined": True, "level": level, "resamples": resamples, "seed": seed,
        "unit": "patients" if groups is not None else "images", "clusters": len(set(map(str, groups))) if groups is not None else len(y),
        "measures": {
            m: {side: {"value": point[f"{side}_{m}"], "ci": intervals.get(f"{side}_{m}")} for side in ("reference", "artifact", "delta")}
            for m in measures
        },
    }  # fmt: skip
