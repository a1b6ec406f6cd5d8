"""Screening metrics, the OOD score, temperature scaling and the operating threshold, on toy data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from sklearn.metrics import (
    average_precision_score,
    cohen_kappa_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from mobiledr.train.calibration import fit_temperature
from mobiledr.train.metrics import (
    auc_scores,
    bootstrap_binary,
    operating_point,
    per_class,
    quadratic_kappa,
    reliability,
    wilson_interval,
)
from mobiledr.train.ood import exact_score, fit_gaussian, fit_ood, stats_score
from mobiledr.train.threshold import choose_threshold

# Ten images: 4 diseased, 6 healthy. At 0.5: TP 3 (0.9 0.8 0.6), FN 1 (0.3), FP 2 (0.7, and 0.5 itself), TN 4.
Y10 = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P10 = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.4, 0.2, 0.1, 0.05])


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (30% positive) and a noisy score that separates them moderately."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(2.0 * y - 1.0 + rng.normal(0, 1.2, n))))
    return y, p


def test_operating_point_by_hand() -> None:
    point = operating_point(Y10, P10, 0.5)
    assert (point.tp, point.fn, point.fp, point.tn) == (3, 1, 2, 4)
    rates = point.rates()
    assert rates["sensitivity"] == pytest.approx(3 / 4)
    assert rates["specificity"] == pytest.approx(4 / 6)
    assert rates["ppv"] == pytest.approx(3 / 5)
    assert rates["npv"] == pytest.approx(4 / 5)
    assert point.fractions()["specificity"] == (4, 6)
    nobody_positive = operating_point(Y10, P10, 1.1)
    assert (nobody_positive.tp, nobody_positive.fp) == (0, 0)
    assert math.isnan(nobody_positive.rates()["ppv"]) and nobody_positive.rates()["specificity"] == 1.0


def test_operating_point_matches_sklearn() -> None:
    y, p = _scored(500, 1)
    point = operating_point(y, p, 0.6)
    precision, recall, _, _ = precision_recall_fscore_support(y, (p >= 0.6).astype(int), labels=[0, 1], zero_division=0)
    rates = point.rates()
    assert rates["sensitivity"] == pytest.approx(recall[1]) and rates["specificity"] == pytest.approx(recall[0])
    assert rates["ppv"] == pytest.approx(precision[1]) and rates["npv"] == pytest.approx(precision[0])


def test_per_class_table_by_hand() -> None:
    table = per_class(Y10, (P10 >= 0.5).astype(int), 2)
    assert table.precision == pytest.approx([4 / 5, 3 / 5])
    assert table.recall == pytest.approx([4 / 6, 3 / 4])
    assert table.f1[1] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert table.support == [6, 4]


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    reference = binomtest(37, 52).proportion_ci(0.95, method="wilson")
    assert wilson_interval(37, 52) == pytest.approx((reference.low, reference.high))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_bootstrap_contains_estimate_reproducible_and_narrows() -> None:
    y, p = _scored(400, 2)
    point, auc = operating_point(y, p, 0.5).rates(), roc_auc_score(y, p)
    ci = bootstrap_binary(y, p, 0.5, resamples=100, seed=5)
    for name, value in {**point, "roc_auc": auc}.items():
        assert ci[name][0] <= value <= ci[name][1], name
    assert bootstrap_binary(y, p, 0.5, resamples=100, seed=5) == ci
    assert bootstrap_binary(y, p, 0.5, resamples=100, seed=6) != ci
    y_big, p_big = _scored(4000, 2)
    ci_big = bootstrap_binary(y_big, p_big, 0.5, resamples=100, seed=5)
    for name in ci:
        assert ci_big[name][1] - ci_big[name][0] < 0.6 * (ci[name][1] - ci[name][0]), name


def test_auc_scores_binary_and_multiclass_match_sklearn() -> None:
    y, p = _scored(300, 3)
    scores = auc_scores(y, np.stack([1 - p, p], axis=1))
    assert scores.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert scores.pr_auc == pytest.approx(average_precision_score(y, p))

    rng = np.random.default_rng(4)
    y3 = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y3]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = auc_scores(y3, probs)
    assert scores.roc_auc == pytest.approx(roc_auc_score(y3, probs, multi_class="ovr", average="macro"))
    assert scores.pr_auc == pytest.approx(np.mean([average_precision_score(y3 == c, probs[:, c]) for c in range(3)]))

    absent = auc_scores(np.where(y3 == 2, 0, y3), probs)  # class 2 never occurs: left out of the macro mean
    assert math.isnan(absent.per_class_roc_auc[2])
    assert absent.roc_auc == pytest.approx(np.mean(absent.per_class_roc_auc[:2]))


def test_quadratic_kappa_equals_sklearn() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 5, 200)
    graded = np.clip(truth + rng.integers(-1, 2, 200), 0, 4)
    assert quadratic_kappa(truth, graded) == pytest.approx(cohen_kappa_score(truth, graded, weights="quadratic"))
    assert quadratic_kappa(truth, truth) == pytest.approx(1.0)


def test_ece_calibrated_overconfident_and_bins() -> None:
    rng = np.random.default_rng(6)
    n = 100_000
    confidence = rng.uniform(0.5, 1.0, n)
    truth = rng.integers(0, 2, n)
    correct = rng.random(n) < confidence  # right exactly as often as claimed
    predicted = np.where(correct, truth, 1 - truth)
    probs = np.where(predicted[:, None] == np.arange(2), confidence[:, None], 1 - confidence[:, None])
    calibrated = reliability(truth, probs)
    assert calibrated.ece < 0.01
    assert len(calibrated.count) == 15 and sum(calibrated.count) == n

    overconfident = np.where(probs.argmax(axis=1)[:, None] == np.arange(2), 0.97, 0.03)
    accuracy = float((overconfident.argmax(axis=1) == truth).mean())
    assert reliability(truth, overconfident).ece == pytest.approx(0.97 - accuracy, abs=1e-9)

    tiny = reliability(np.array([0, 1]), np.array([[0.9, 0.1], [0.6, 0.4]]))  # 0.9 right, 0.6 wrong
    assert tiny.count[13] == 1 and tiny.count[8] == 1
    assert tiny.ece == pytest.approx((0.1 + 0.6) / 2)


def _toy_gaussians(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Three classes in 4-D with a shared, correlated covariance."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], dtype=float)
    mixing = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0.2, 0], [0, 0, 0.5, 0], [0.1, 0, 0, 2.0]])
    labels = rng.integers(0, 3, n)
    features = centres[labels] + rng.normal(size=(n, 4)) @ mixing
    return torch.tensor(features, dtype=torch.float32), torch.tensor(labels), centres


def test_mahalanobis_fit_and_closed_form() -> None:
    features, labels, centres = _toy_gaussians(3000, 7)
    means, covariance, _ = fit_gaussian(features, labels, 3)
    for c in range(3):
        np.testing.assert_allclose(means[c], features[labels == c].double().mean(dim=0).numpy(), atol=1e-9)

    stats = fit_ood(features, labels, 3, features[:500], accept=0.95)
    assert stats.info["rank"] == 4 and stats.residual_scale == 0.0  # 4-D: full rank, exact
    probe = torch.tensor(np.random.default_rng(8).normal(size=(20, 4)) * 4, dtype=torch.float32)
    f, prec = probe.double().numpy(), np.linalg.inv(covariance)
    expected = np.max([-0.5 * np.einsum("nd,de,ne->n", f - means[c], prec, f - means[c]) for c in range(3)], axis=0)
    np.testing.assert_allclose(stats_score(probe, stats).numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(exact_score(probe, means, covariance), expected, rtol=1e-9)

    inside = stats_score(features[:200], stats)
    far = stats_score(torch.tensor(centres.mean(axis=0) + np.array([[30.0, -30, 20, 0]] * 5), dtype=torch.float32), stats)
    assert torch.quantile(inside, 0.01) > far.max()
    assert stats.threshold == pytest.approx(float(torch.quantile(stats_score(features[:500], stats).double(), 0.05)))


def _ill_conditioned(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features like a CNN's pooled activations: a common offset, a few strong directions and many
    weak ones (shrunk covariance condition number ~3e4 with 8000 images in 32-D)."""
    rng = np.random.default_rng(seed)
    spectrum = np.logspace(0, -10, dim)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, dim)))
    labels = rng.integers(0, 2, n)
    features = 5.0 + labels[:, None] * 0.5 + (rng.normal(size=(n, dim)) * np.sqrt(spectrum)) @ rotation.T
    return torch.tensor(features, dtype=torch.float32), torch.tensor(labels)


def test_whitened_ood_score_is_accurate_in_float32() -> None:
    """The float32 score matches the float64 full-rank reference where the quadratic form of the
    precision matrix does not (the instability that failed every fp32 artifact's ood_score)."""
    features, labels = _ill_conditioned(8000, 32, 3)
    probe, _ = _ill_conditioned(64, 32, 4)
    stats = fit_ood(features, labels, 2, features[:200], accept=0.95, rank=32)  # full rank: only rounding differs
    means, covariance, _ = fit_gaussian(features, labels, 2)
    reference = exact_score(probe, means, covariance)
    relative = np.abs(stats_score(probe, stats).numpy() - reference) / np.abs(reference)
    assert relative.max() < 2e-5

    precision = torch.tensor(np.linalg.inv(covariance), dtype=torch.float32)
    diff = probe[:, None, :] - torch.tensor(means, dtype=torch.float32)[None]
    quadratic = (-0.5 * torch.einsum("ncd,de,nce->nc", diff, precision, diff)).amax(dim=1).numpy()
    assert (np.abs(quadratic - reference) / np.abs(reference)).max() > 10 * relative.max()  # what it replaces


def test_ood_rank_is_chosen_against_the_full_rank_gate() -> None:
    """Fewer features than the dimension: a low rank keeps the gate's decisions on validation."""
    features, labels = _ill_conditioned(300, 256, 5)
    val, _ = _ill_conditioned(400, 256, 6)
    stats = fit_ood(features, labels, 2, val, accept=0.9)
    assert stats.components.shape == (stats.info["rank"], 256) and stats.info["rank"] < 256
    assert stats.info["val_gate_agreement_with_full_rank"] >= 0.995
    means, covariance, _ = fit_gaussian(features, labels, 2)
    reference = exact_score(val, means, covariance)
    agree = (stats_score(val, stats).numpy() < stats.threshold) == (reference < np.quantile(reference, 0.1))
    assert agree.mean() >= 0.995
    rows = stats.components.double()
    torch.testing.assert_close(rows @ rows.T, torch.eye(len(rows), dtype=torch.float64), atol=1e-5, rtol=0)


def test_fit_temperature_recovers_known_temperature() -> None:
    generator = torch.Generator().manual_seed(9)
    true_logits = torch.randn(3000, 3, generator=generator) * 2.0
    labels = torch.multinomial(torch.softmax(true_logits, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.15)


def test_threshold_sensitivity_and_youden() -> None:
    y, p = _scored(600, 10)
    threshold = choose_threshold(y, p, "sensitivity", 0.9)
    assert operating_point(y, p, threshold).rates()["sensitivity"] >= 0.9
    higher = p[p > threshold].min()  # the next stricter threshold misses the target
    assert operating_point(y, p, higher).rates()["sensitivity"] < 0.9

    youden = choose_threshold(y, p, "youden")
    fpr, tpr, _ = roc_curve(y, p)
    rates = operating_point(y, p, youden).rates()
    assert rates["sensitivity"] + rates["specificity"] - 1 == pytest.approx(np.max(tpr - fpr))


def test_sensitivity_threshold_is_the_highest_reaching_the_target_over_many_seeds() -> None:
    """The rule, checked by brute force over every distinct score on 2000 random validation sets of
    varied size, prevalence, separation and ties (roc_curve's default drop_intermediate=True broke it
    on about 15% of them)."""
    wrong = 0
    for seed in range(2000):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(20, 200))
        y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(int)
        y[:2] = [0, 1]
        p = 1 / (1 + np.exp(-(rng.normal(size=n) + rng.uniform(0, 2) * y)))
        if seed % 3 == 0:
            p = np.round(p, 2)  # ties, as low-precision artifacts produce
        target = float(rng.choice([0.8, 0.85, 0.9, 0.95]))
        candidates = np.unique(p)
        reaching = [t for t in candidates if operating_point(y, p, t).rates()["sensitivity"] >= target]
        wrong += choose_threshold(y, p, "sensitivity", target) != pytest.approx(max(reaching))
    assert wrong == 0
