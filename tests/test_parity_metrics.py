"""Parity's comparisons and tolerance policy on arrays with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mobiledr.errors import MobiledrError
from mobiledr.parity.compare import Decision, agreements, clinical, flipped, heatmap_correlation, tensor_errors
from mobiledr.parity.policy import DEFAULT_PATH, Policy

BINARY = Decision(threshold=0.3, positive_index=1)


def test_tensor_errors_known_values() -> None:
    reference = np.array([[1.0, -2.0], [0.0, 4.0]], np.float32)
    actual = reference + np.array([[0.1, 0.0], [0.0, -0.2]], np.float32)
    e = tensor_errors(reference, actual)
    assert e["max_abs"] == pytest.approx(0.2, abs=1e-6)
    assert e["mean_abs"] == pytest.approx(0.075, abs=1e-6)
    assert e["max_rel"] == pytest.approx(0.1, abs=1e-6)  # 0.1 / 1 and 0.2 / 4 = 0.05
    assert e["sqnr_db"] == pytest.approx(10 * math.log10(21 / 0.05), abs=1e-4)
    dot = float(np.dot(reference.ravel().astype(np.float64), actual.ravel().astype(np.float64)))
    assert e["cosine"] == pytest.approx(dot / (np.linalg.norm(reference) * np.linalg.norm(actual.astype(np.float64))), abs=1e-6)
    same = tensor_errors(reference, reference.copy())
    assert same["max_abs"] == 0 and same["sqnr_db"] == math.inf and same["cosine"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        tensor_errors(reference, reference[:1])


def test_decisions_agreements_and_flips() -> None:
    reference = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.71, 0.29]])
    actual = np.array([[0.85, 0.15], [0.75, 0.25], [0.3, 0.7], [0.69, 0.31]])  # image 1 and 3 cross 0.3
    assert BINARY.apply(reference).tolist() == [0, 1, 1, 0]
    found = flipped(["a", "b", "c", "d"], np.array([0, 1, 1, 0]), reference, actual, BINARY)
    assert [(f["image"], f["reference"], f["artifact"]) for f in found] == [("b", 1, 0), ("d", 0, 1)]
    assert found[0]["reference_margin"] == pytest.approx(0.1) and found[0]["artifact_margin"] == pytest.approx(-0.05)
    ref = {"probs": reference, "ood_score": np.array([-10.0, -50.0, -5.0, -70.0])}
    act = {"probs": actual, "ood_score": np.array([-10.0, -45.0, -5.0, -59.0])}  # the last crosses -60
    out = agreements(ref, act, BINARY, ood_threshold=-60.0)
    assert out == {"top1": 1.0, "decision": 0.5, "ood": 0.75}
    argmax = Decision(None, None)
    assert agreements(ref, act, argmax, None)["decision"] == 1.0 and not argmax.binary


def test_heatmap_correlation() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 4))
    assert heatmap_correlation(maps, maps * 2 + 1) == {"mean": pytest.approx(1.0), "min": pytest.approx(1.0)}
    flat = np.zeros((1, 4, 4))
    assert heatmap_correlation(flat, flat)["mean"] == 1.0 and heatmap_correlation(flat, maps[:1])["mean"] == 0.0


def _labelled(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 + 0.35 * (y - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    reference = np.stack([1 - p, p], axis=1)
    actual = np.clip(reference + rng.normal(0, 0.02, reference.shape), 0, 1)
    return y, reference, actual


def test_bootstrap_intervals_are_deterministic_given_a_seed() -> None:
    y, reference, actual = _labelled()
    first = clinical(y, reference, actual, BINARY, resamples=100, seed=3)
    again = clinical(y, reference, actual, BINARY, resamples=100, seed=3)
    other = clinical(y, reference, actual, BINARY, resamples=100, seed=4)
    assert first == again
    assert first["measures"]["auc"]["delta"]["ci"] != other["measures"]["auc"]["delta"]["ci"]
    auc = first["measures"]["auc"]
    low, high = auc["delta"]["ci"]
    assert low <= auc["delta"]["value"] <= high
    assert auc["delta"]["value"] == pytest.approx(auc["artifact"]["value"] - auc["reference"]["value"])
    assert set(first["measures"]) == {"auc", "sensitivity", "specificity"}
    multi = clinical(np.arange(30) % 3, np.eye(3)[np.arange(30) % 3] * 0.8 + 0.05, np.eye(3)[np.arange(30) % 3] * 0.7 + 0.1, Decision(None, None), 50, 0)
    assert set(multi["measures"]) == {"auc", "accuracy"}
    assert clinical(np.zeros(5, int), reference[:5], actual[:5], BINARY, 10, 0)["defined"] is False


def test_default_policy_rules() -> None:
    policy = Policy.load()
    assert policy.source == str(DEFAULT_PATH) and {"fp32", "fp16", "int8"} <= set(policy.tables)
    y, reference, actual = _labelled()
    outcome = clinical(y, reference, actual, BINARY, resamples=200, seed=0)
    errors = {"probs": tensor_errors(reference, actual)}
    agreement = agreements({"probs": reference}, {"probs": actual}, BINARY, None)
    fp32 = {c.rule: c for c in policy.check("fp32", errors, agreement, outcome)}
    assert fp32["max_abs.probs"].ok is False and "max_rel.ood_score" not in fp32  # outputs the bundle lacks are ignored
    int8 = {c.rule: c for c in policy.check("int8", errors, agreement, outcome)}
    # The int8 gate: paired non-inferiority of sensitivity and specificity (issue 16.6; it was the
    # artifact's sensitivity inside the reference's own CI), and OOD agreement where there is an OOD output.
    assert set(int8) == {"min_decision_agreement", "max_abs_delta_auc", "non_inferiority.sensitivity", "non_inferiority.specificity"}
    assert int8["min_decision_agreement"].value == agreement["decision"]
    unlabelled = {c.rule: c for c in policy.check("int8", errors, agreement, None)}
    assert unlabelled["max_abs_delta_auc"].ok is None and unlabelled["non_inferiority.sensitivity"].ok is None
    assert policy.tables["int8"]["non_inferiority_margin"] == 0.02 and policy.tables["int8"]["min_ood_agreement"] == 0.99


def test_sensitivity_rule_uses_the_reference_interval(tmp_path: Path) -> None:
    y, reference, _ = _labelled(400)
    positives = np.flatnonzero((y == 1) & (reference[:, 1] >= 0.3))
    worse = reference.copy()
    worse[positives[: len(positives) // 3], 1] = 0.0  # a third of the detected positives now missed
    (tmp_path / "policy.yaml").write_text("int8:\n  sensitivity_within_ci: true\n")  # the older rule, still available
    policy = Policy.load(tmp_path / "policy.yaml")
    same = {c.rule: c for c in policy.check("int8", {}, {}, clinical(y, reference, reference, BINARY, 200, 0))}
    bad = {c.rule: c for c in policy.check("int8", {}, {}, clinical(y, reference, worse, BINARY, 200, 0))}
    assert same["sensitivity_within_ci"].ok is True
    assert bad["sensitivity_within_ci"].ok is False and bad["sensitivity_within_ci"].note.startswith("delta -")


@pytest.mark.parametrize(
    "text,message",
    [
        ("fp32: [1, 2]", "expected a table of rules"),
        ("fp32:\n  max_abs: 0.1", r"max_abs: expected \{output: limit\}"),
        ("fp32:\n  min_decision_agreement: high", "must be a number"),
        ("fp32:\n  max_error: 1", "unknown rule 'max_error'"),
        ("int8:\n  sensitivity_within_ci: 1", "must be true or false"),
        ("int8:\n  non_inferiority_margin: 2", "is a fraction"),
        ("fp32: {max_abs: {probs: 1e-4", "not valid YAML"),
        ("[]", "maps precisions"),
    ],
)
def test_policy_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(MobiledrError, match=message) as info:
        Policy.load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(MobiledrError, match="cannot read"):
        Policy.load(tmp_path / "missing.yaml")


def _one_and_a_half_points_less_sensitive() -> tuple[np.ndarray, np.ndarray, np.ndarray, Decision]:
    """2000 images, 1000 referable: the artifact misses 25 eyes the reference refers and refers 10 it
    misses: 1.5 points less sensitive, specificity unchanged."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(1000, int), np.zeros(1000, int)]
    p = np.where(y == 1, rng.uniform(0.35, 1, len(y)), rng.uniform(0, 0.6, len(y)))
    actual = p.copy()
    hits, misses = np.flatnonzero((y == 1) & (p >= 0.5)), np.flatnonzero((y == 1) & (p < 0.5))
    actual[hits[:25]], actual[misses[:10]] = 0.4, 0.6
    return y, np.stack([1 - p, p], axis=1), np.stack([1 - actual, actual], axis=1), Decision(0.5, 1)


def test_int8_gate_fails_an_artifact_1_5_points_less_sensitive(tmp_path: Path) -> None:
    y, reference, actual, decision = _one_and_a_half_points_less_sensitive()
    outcome = clinical(y, reference, actual, decision, resamples=400, seed=0)
    sensitivity = outcome["measures"]["sensitivity"]
    assert sensitivity["delta"]["value"] == pytest.approx(-0.015)
    low, high = sensitivity["delta"]["ci"]
    assert -0.03 < low < -0.02 and -0.01 < high < 0  # about (-2.7, -0.3) points
    old = Policy.load(_policy(tmp_path, "old", "int8:\n  sensitivity_within_ci: true\n"))
    assert all(c.ok for c in old.check("int8", {}, {}, outcome))  # passed the gate before issue 16
    checks = {c.rule: c for c in Policy.load().check("int8", {}, {"decision": 1.0, "ood": 1.0}, outcome)}
    assert checks["non_inferiority.sensitivity"].ok is False and checks["non_inferiority.sensitivity"].value == pytest.approx(low)
    assert "delta -1.5 pp" in checks["non_inferiority.sensitivity"].note and "images resampled" in checks["non_inferiority.sensitivity"].note
    assert checks["non_inferiority.specificity"].ok is True and checks["min_ood_agreement"].ok is True

    # The hand-made numbers exactly: delta -1.5 points, paired CI (-2.5, -0.7).
    stated = {"defined": True, "measures": {
        "sensitivity": {"reference": {"value": 0.90, "ci": (0.88, 0.92)}, "artifact": {"value": 0.885, "ci": (0.86, 0.91)},
                        "delta": {"value": -0.015, "ci": (-0.025, -0.007)}},
        "specificity": {"reference": {"value": 0.9, "ci": (0.88, 0.92)}, "artifact": {"value": 0.9, "ci": (0.88, 0.92)},
                        "delta": {"value": 0.0, "ci": (-0.004, 0.004)}},
        "auc": {"reference": {"value": 0.95, "ci": None}, "artifact": {"value": 0.95, "ci": None}, "delta": {"value": 0.001, "ci": None}},
    }}  # fmt: skip
    assert all(c.ok for c in old.check("int8", {}, {}, stated))
    checks = {c.rule: c for c in Policy.load().check("int8", {}, {}, stated)}
    assert checks["non_inferiority.sensitivity"].ok is False and checks["non_inferiority.specificity"].ok is True
    # The margin is the policy's: at 3 points the same artifact is non-inferior.
    wider = Policy.load(_policy(tmp_path, "wide", "int8:\n  non_inferiority_margin: 0.03\n"))
    assert all(c.ok for c in wider.check("int8", {}, {}, stated))
    no_ci = {"defined": True, "measures": {m: {**v, "delta": {**v["delta"], "ci": None}} for m, v in stated["measures"].items()}}
    no_ci_checks = {c.rule: c for c in Policy.load().check("int8", {}, {}, no_ci)}
    assert no_ci_checks["non_inferiority.sensitivity"].ok is False  # fails closed without resamples


def test_int8_gate_needs_99_percent_ood_agreement() -> None:
    policy = Policy.load()
    for agreement, ok in ((0.985, False), (0.99, True), (1.0, True)):
        checks = {c.rule: c for c in policy.check("int8", {}, {"ood": agreement}, None)}
        assert checks["min_ood_agreement"].ok is ok


def _policy(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_paired_deltas_resample_patients_when_ids_exist() -> None:
    """Two identical eyes per patient: resampling patients widens the paired intervals by about
    sqrt(2) over resampling images as if independent, and the report says which unit was resampled."""
    y, reference, actual = _labelled(300, seed=5)
    y2, ref2, act2 = np.repeat(y, 2), np.repeat(reference, 2, axis=0), np.repeat(actual, 2, axis=0)
    groups = np.repeat([f"patient:{i}" for i in range(len(y))], 2)
    images = clinical(y2, ref2, act2, BINARY, 300, 0)
    patients = clinical(y2, ref2, act2, BINARY, 300, 0, groups=groups)
    assert (images["unit"], patients["unit"], patients["clusters"]) == ("images", "patients", 300)
    for measure in ("auc", "sensitivity"):
        width = {name: np.diff(o["measures"][measure]["reference"]["ci"])[0] for name, o in (("images", images), ("patients", patients))}
        assert 1.2 < width["patients"] / width["images"] < 1.7, (measure, width)
