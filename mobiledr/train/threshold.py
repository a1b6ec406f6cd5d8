"""The operating threshold, chosen on validation (never on test) and locked into the checkpoint."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from mobiledr.errors import MobiledrError


def choose_threshold(y_true: np.ndarray, p_positive: np.ndarray, method: str = "sensitivity", target_sensitivity: float = 0.9) -> float:
    """``sensitivity``: the highest threshold whose sensitivity reaches the target (best specificity
    under that constraint); ``youden``: the threshold maximising sensitivity + specificity - 1.
    A case is positive when its probability is >= the threshold.

    Every distinct score is a candidate (``drop_intermediate=False``): scikit-learn's default drops the
    thresholds between collinear ROC points, and the first point reaching the target on the thinned
    curve can be a lower threshold than the highest one that reaches it."""
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        raise MobiledrError("cannot choose an operating threshold: the validation split holds one class only")
    fpr, tpr, thresholds = roc_curve(y_true, np.asarray(p_positive, dtype=np.float64), drop_intermediate=False)
    if method == "youden":
        index = int(np.argmax(tpr - fpr))
    elif method == "sensitivity":
        index = int(np.flatnonzero(tpr >= target_sensitivity)[0])
    else:
        raise MobiledrError(f"unknown threshold method {method!r}; use sensitivity or youden")
    return float(np.clip(thresholds[index], 0.0, 1.0))
