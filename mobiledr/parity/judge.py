"""One artifact's outputs against the reference's, judged by the tolerance policy: the verdict that
``mobiledr parity`` reports per artifact and that ``mobiledr export`` uses to choose an int8 recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mobiledr.parity.compare import Decision, agreements, clinical, tensor_errors
from mobiledr.parity.policy import Check, Policy

PASS, FAIL = "PASS", "FAIL"


@dataclass
class Judgement:
    verdict: str
    reasons: list[str]
    checks: list[Check]
    errors: dict[str, dict[str, float]]
    agreement: dict[str, Any]
    clinical: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        """The figures a manifest records for a quantization attempt."""
        measures = (self.clinical or {}).get("measures") or {}
        delta_auc = measures.get("auc", {}).get("delta", {}).get("value")
        return {
            "verdict": self.verdict,
            "decision_agreement": self.agreement.get("decision"),
            "ood_agreement": self.agreement.get("ood"),
            "delta_auc": delta_auc,
            "reasons": list(self.reasons),
            "checks": [asdict(c) for c in self.checks],
        }


def show(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def failure_reasons(checks: list[Check], prefix: str = "") -> list[str]:
    return [f"{prefix}{c.rule} = {show(c.value)} (limit {c.limit})" + (f"; {c.note}" if c.note else "") for c in checks if c.ok is False]


def judge(
    policy: Policy, precision: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], decision: Decision,
    ood_threshold: float | None, labels: np.ndarray | None = None, groups: list[str] | None = None, resamples: int = 1000, seed: int = 0,
) -> Judgement:  # fmt: skip
    """Errors, agreements and (on labelled images) the paired clinical deltas, checked against the
    rules of ``precision``; a precision the policy has no table for fails (the policy fails closed)."""
    errors = {name: tensor_errors(reference[name], actual[name]) for name in reference}
    agreement = agreements(reference, actual, decision, ood_threshold)
    outcome = None
    if labels is not None and "probs" in reference:
        outcome = clinical(labels, reference["probs"], actual["probs"], decision, resamples, seed, groups=groups)
    if not policy.has(precision):
        return Judgement(FAIL, [f"the tolerance policy {policy.source} has no rules for precision {precision}"], [], errors, agreement, outcome)
    checks = policy.check(precision, errors, agreement, outcome)
    reasons = failure_reasons(checks)
    return Judgement(FAIL if reasons else PASS, reasons, checks, errors, agreement, outcome)
