"""Screening metrics on arrays: the operating point, confidence intervals, AUCs, calibration, kappa.

Everything scikit-learn provides comes from scikit-learn; this module adds what it lacks: the
operating point at a locked threshold with PPV/NPV (its 2x2 table is a bincount, cheap enough to
recount in every bootstrap resample), Wilson and percentile-bootstrap intervals, and the expected
calibration error with its reliability bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    cohen_kappa_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


@dataclass(frozen=True)
class OperatingPoint:
    """The 2x2 table of a binary test at one threshold (positive when p >= threshold)."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    def fractions(self) -> dict[str, tuple[int, int]]:
        """(successes, trials) behind sensitivity, specificity, PPV and NPV, for binomial intervals."""
        return {
            "sensitivity": (self.tp, self.tp + self.fn),
            "specificity": (self.tn, self.tn + self.fp),
            "ppv": (self.tp, self.tp + self.fp),
            "npv": (self.tn, self.tn + self.fn),
        }

    def rates(self) -> dict[str, float]:
        """Sensitivity, specificity, PPV and NPV (nan where a denominator is 0)."""
        return {name: successes / trials if trials else math.nan for name, (successes, trials) in self.fractions().items()}


def _cells(y_true: np.ndarray, p_positive: np.ndarray, threshold: float) -> np.ndarray:
    """Each image's cell of the 2x2 table: 0 TN, 1 FP, 2 FN, 3 TP (positive when p >= threshold)."""
    return 2 * np.asarray(y_true).astype(int) + (np.asarray(p_positive) >= threshold)


def _point(cells: np.ndarray, threshold: float) -> OperatingPoint:
    tn, fp, fn, tp = np.bincount(cells, minlength=4).tolist()
    return OperatingPoint(float(threshold), tp, fp, tn, fn)


def operating_point(y_true: np.ndarray, p_positive: np.ndarray, threshold: float) -> OperatingPoint:
    """Counts of the binary decision ``p_positive >= threshold`` against labels (1 = positive)."""
    return _point(_cells(y_true, p_positive, threshold), threshold)


def decision_point(y_true: np.ndarray, decided: np.ndarray, threshold: float = math.nan) -> OperatingPoint:
    """Counts of given binary decisions (True = referred) against labels, e.g. with gate rejects referred."""
    return _point(2 * np.asarray(y_true).astype(int) + np.asarray(decided).astype(int), threshold)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (nan, nan) with no trials."""
    if trials == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def clusters(groups: np.ndarray | list[str] | None, n: int) -> list[np.ndarray]:
    """The item indices of each cluster (a patient's images), in order of first appearance; every
    item its own cluster when ``groups`` is None."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    _, first, inverse = np.unique(np.asarray(groups).astype(str), return_index=True, return_inverse=True)
    by_code = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    return [by_code[code] for code in np.argsort(first, kind="stable")]


def bootstrap_ci(
    statistic: Callable[[np.ndarray], dict[str, float]], n: int, resamples: int = 1000, seed: int = 0, level: float = 0.95,
    groups: np.ndarray | list[str] | None = None,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile bootstrap over ``n`` items: ``statistic(indices)`` is evaluated on ``resamples``
    draws of ``n`` indices with replacement; resamples where a statistic is undefined (nan) are
    skipped for that statistic. Seeded, so the same call gives the same intervals.

    With ``groups`` (one cluster id per item, e.g. the patient) it is a cluster bootstrap: each
    resample draws as many clusters as there are, with replacement, and takes all items of each, so
    the correlation of a patient's two eyes widens the interval as it should (Field & Welsh 2007)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = [statistic(rng.integers(0, n, n)) for _ in range(resamples)]
    else:
        members = clusters(groups, n)
        k = len(members)
        draws = [statistic(np.concatenate([members[c] for c in rng.integers(0, k, k)])) for _ in range(resamples)]
    alpha = 100 * (1 - level) / 2
    intervals = {}
    for name in draws[0] if draws else ():
        values = np.array([d[name] for d in draws], dtype=np.float64)
        values = values[~np.isnan(values)]
        intervals[name] = (float(np.percentile(values, alpha)), float(np.percentile(values, 100 - alpha))) if len(values) else (math.nan, math.nan)
    return intervals


def bootstrap_binary(
    y_true: np.ndarray, p_positive: np.ndarray, threshold: float, resamples: int = 1000, seed: int = 0, level: float = 0.95,
    groups: np.ndarray | list[str] | None = None,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile-bootstrap intervals of sensitivity, specificity, PPV and NPV at the threshold and of
    the ROC-AUC, all from the same resamples of images (of patients, with ``groups``)."""
    y, p = np.asarray(y_true).astype(int), np.asarray(p_positive)
    cells = _cells(y, p, threshold)

    def statistic(idx: np.ndarray) -> dict[str, float]:
        auc = float(roc_auc_score(y[idx], p[idx])) if 0 < y[idx].sum() < len(idx) else math.nan
        return {**_point(cells[idx], threshold).rates(), "roc_auc": auc}

    return bootstrap_ci(statistic, len(y), resamples, seed, level, groups)


def per_participant(y_true: np.ndarray, p_positive: np.ndarray, groups: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One row per participant: truly positive when either eye (any image) is, and referred when any
    image is (the maximum probability reaches the threshold exactly when one image's does). Returns
    (labels, maximum probability, participant ids) in order of first appearance."""
    y, p = np.asarray(y_true).astype(int), np.asarray(p_positive, dtype=np.float64)
    members = clusters(groups, len(y))
    ids = [str(np.asarray(groups, dtype=object)[m[0]]) for m in members]
    return np.array([y[m].max() for m in members]), np.array([p[m].max() for m in members]), ids


@dataclass(frozen=True)
class AucScores:
    roc_auc: float  # binary: of class 1; multi-class: one-vs-rest macro over classes with both outcomes
    pr_auc: float  # average precision, same averaging
    per_class_roc_auc: list[float]  # one-vs-rest, nan where a class is absent (or the only one)
    per_class_pr_auc: list[float]


def auc_scores(y_true: np.ndarray, probs: np.ndarray) -> AucScores:
    """ROC-AUC and PR-AUC (average precision): binary on the positive class (index 1); multi-class
    one-vs-rest, macro-averaged over the classes that have both positives and negatives."""
    y_true = np.asarray(y_true).astype(int)
    roc, pr = [], []
    for c in range(probs.shape[1]):
        hits = y_true == c
        defined = 0 < hits.sum() < len(hits)
        roc.append(float(roc_auc_score(hits, probs[:, c])) if defined else math.nan)
        pr.append(float(average_precision_score(hits, probs[:, c])) if defined else math.nan)
    if probs.shape[1] == 2:
        return AucScores(roc[1], pr[1], roc, pr)

    def macro(values: list[float]) -> float:
        return float(np.nanmean(values)) if not np.isnan(values).all() else math.nan

    return AucScores(macro(roc), macro(pr), roc, pr)


@dataclass(frozen=True)
class PerClass:
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]


def per_class(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> PerClass:
    """Precision, recall, F1 and support of every class (0 where undefined, as scikit-learn does)."""
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=list(range(num_classes)), zero_division=0)
    return PerClass(precision.tolist(), recall.tolist(), f1.tolist(), support.astype(int).tolist())


def quadratic_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights (the ICDR grading metric)."""
    return float(cohen_kappa_score(y_true, y_pred, weights="quadratic"))


@dataclass(frozen=True)
class Reliability:
    """Top-class confidence against accuracy in equal-width bins (Guo et al. 2017)."""

    edges: list[float]  # bins + 1 edges from 0 to 1; bin m holds confidences in (edges[m], edges[m+1]]
    confidence: list[float]  # mean confidence per bin (nan when empty)
    accuracy: list[float]  # fraction correct per bin (nan when empty)
    count: list[int]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
        count = np.array(self.count)
        gap = np.abs(np.array(self.accuracy) - np.array(self.confidence))
        return float(np.sum(np.where(count > 0, gap, 0.0) * count) / count.sum())


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> Reliability:
    """Reliability bins of the predicted class's probability."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct.astype(float), minlength=bins) / count
    return Reliability(edges.tolist(), mean_conf.tolist(), accuracy.tolist(), count.astype(int).tolist())
