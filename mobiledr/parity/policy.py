"""The tolerance policy: which rules each artifact precision must meet (``tolerances.yaml`` beside this
module is the default; users pass their own with ``--tolerances``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mobiledr.errors import MobiledrError

DEFAULT_PATH = Path(__file__).with_name("tolerances.yaml")
ELEMENTWISE = {"max_abs": "max_abs", "max_rel": "max_rel", "min_cosine": "cosine", "min_sqnr_db": "sqnr_db"}  # rule -> measure
AGREEMENT = {"min_top1_agreement": "top1", "min_decision_agreement": "decision", "min_ood_agreement": "ood"}
SCALAR = {*AGREEMENT, "min_heatmap_correlation", "max_abs_delta_auc", "non_inferiority_margin"}
NON_INFERIOR = ("sensitivity", "specificity")  # the measures the non-inferiority margin applies to
FLAGS = {"sensitivity_within_ci"}


@dataclass(frozen=True)
class Check:
    """One rule applied to one artifact: ``ok`` is None when the rule could not be evaluated."""

    rule: str
    limit: str
    value: float | None
    ok: bool | None
    note: str = ""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MobiledrError(f"{where} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Policy:
    source: str
    tables: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Read and validate a policy file (unknown rules and malformed limits are one-line errors)."""
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise MobiledrError(f"{path}: cannot read the tolerance policy: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise MobiledrError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or not data:
            raise MobiledrError(f"{path}: a tolerance policy maps precisions (fp32, fp16, int8, ...) to rules")
        for precision, rules in data.items():
            where = f"{path}: {precision}"
            if not isinstance(rules, dict):
                raise MobiledrError(f"{where}: expected a table of rules")
            for rule, limit in rules.items():
                if rule in ELEMENTWISE:
                    if not isinstance(limit, dict):
                        raise MobiledrError(f"{where}.{rule}: expected {{output: limit}}")
                    for output, value in limit.items():
                        _number(value, f"{where}.{rule}.{output}")
                elif rule in SCALAR:
                    value = _number(limit, f"{where}.{rule}")
                    if rule == "non_inferiority_margin" and not 0 <= value < 1:
                        raise MobiledrError(f"{where}.{rule} is a fraction (0.02 = 2 percentage points), got {value!r}")
                elif rule in FLAGS:
                    if not isinstance(limit, bool):
                        raise MobiledrError(f"{where}.{rule} must be true or false")
                else:
                    known = ", ".join([*ELEMENTWISE, *SCALAR, *FLAGS])
                    raise MobiledrError(f"{where}: unknown rule {rule!r}; known rules: {known}")
        return cls(str(path), data)

    def has(self, precision: str) -> bool:
        return precision in self.tables

    def bundled_tolerances(self, precision: str) -> tuple[float, float]:
        """(rtol, atol) for an ExecuTorch BundledProgram self-check, whose runtime applies one pair to
        every output: the loosest of the precision's max_rel and max_abs limits (the per-output golden
        checks are the strict ones)."""
        rules = self.tables.get(precision, {})
        return max(rules.get("max_rel", {}).values(), default=1e-4), max(rules.get("max_abs", {}).values(), default=1e-4)

    def self_check(self, precision: str, outputs: Sequence[str]) -> dict[str, dict[str, float]]:
        """The per-output limits a phone's self-check on the golden vectors applies: ``{output: {max_abs,
        max_rel}}`` from this precision's element-wise rules (outputs without a limit are left out), the
        same numbers the golden checks here use. Written into each manifest artifact (``self_check``)."""
        rules = self.tables.get(precision, {})
        limits = {name: {rule: float(rules[rule][name]) for rule in ("max_abs", "max_rel") if name in rules.get(rule, {})} for name in outputs}
        return {name: limit for name, limit in limits.items() if limit}

    def elementwise(self, precision: str, errors: dict[str, dict[str, float]]) -> list[Check]:
        """The element-wise rules of ``precision`` on per-output errors (from ``compare.tensor_errors``)."""
        checks = []
        for rule, measure in ELEMENTWISE.items():
            upper = rule.startswith("max")
            for output, limit in self.tables.get(precision, {}).get(rule, {}).items():
                if output not in errors:
                    continue
                value = errors[output][measure]
                ok = value <= limit if upper else value >= limit
                checks.append(Check(f"{rule}.{output}", f"{'<=' if upper else '>='} {limit:g}", value, bool(ok)))
        return checks

    def check(self, precision: str, errors: dict[str, dict[str, float]], agreement: dict[str, Any], clinical: dict[str, Any] | None) -> list[Check]:
        """Every rule of ``precision``: element-wise, agreements, and the clinical ones on labelled images."""
        rules = self.tables.get(precision, {})
        checks = self.elementwise(precision, errors)
        for rule, key in AGREEMENT.items():
            if rule in rules and key in agreement:
                checks.append(Check(rule, f">= {rules[rule]:g}", agreement[key], agreement[key] >= rules[rule]))
        if "min_heatmap_correlation" in rules and "heatmap_correlation" in agreement:
            value = agreement["heatmap_correlation"]["mean"]
            checks.append(Check("min_heatmap_correlation", f">= {rules['min_heatmap_correlation']:g}", value, value >= rules["min_heatmap_correlation"]))
        measures = clinical["measures"] if clinical and clinical.get("defined") else None
        if "max_abs_delta_auc" in rules:
            limit = f"<= {rules['max_abs_delta_auc']:g}"
            if measures is None:
                checks.append(Check("max_abs_delta_auc", limit, None, None, "needs labelled images with both outcomes"))
            else:
                delta = measures["auc"]["delta"]["value"]
                checks.append(Check("max_abs_delta_auc", limit, delta, abs(delta) <= rules["max_abs_delta_auc"]))
        if "non_inferiority_margin" in rules:
            checks += _non_inferiority(rules["non_inferiority_margin"], clinical, measures)
        if rules.get("sensitivity_within_ci"):
            checks.append(_sensitivity_check(measures))
        return checks


def _non_inferiority(margin: float, clinical: dict[str, Any] | None, measures: dict[str, Any] | None) -> list[Check]:
    """Sensitivity and specificity of the artifact non-inferior to the reference's: the lower bound of
    the paired 95% CI of (artifact - reference) must lie above -margin. Without labels the rule is not
    evaluated; on labelled images without a CI (no resamples) it fails, as the policy fails closed."""
    checks = []
    limit = f"paired 95% CI of delta above -{margin:g}"
    for name in NON_INFERIOR:
        rule = f"non_inferiority.{name}"
        if measures is None:
            checks.append(Check(rule, limit, None, None, "needs labelled images with both outcomes"))
        elif name not in measures:
            checks.append(Check(rule, limit, None, None, "binary models only"))
        elif measures[name]["delta"]["ci"] is None:
            checks.append(Check(rule, limit, None, False, "needs bootstrap resamples (--bootstrap > 0)"))
        else:
            delta = measures[name]["delta"]
            low, high = delta["ci"]
            unit = (clinical or {}).get("unit", "images")
            note = f"delta {100 * delta['value']:+.1f} pp, 95% CI ({100 * low:+.1f}, {100 * high:+.1f}) pp, {unit} resampled"
            checks.append(Check(rule, limit, low, bool(low > -margin), note))
    return checks


def _sensitivity_check(measures: dict[str, Any] | None) -> Check:
    rule = "sensitivity_within_ci"
    if measures is None:
        return Check(rule, "in the reference's CI", None, None, "needs labelled images with both outcomes")
    if "sensitivity" not in measures:
        return Check(rule, "in the reference's CI", None, None, "binary models only")
    sensitivity = measures["sensitivity"]
    low_high = sensitivity["reference"]["ci"]
    if low_high is None:
        return Check(rule, "in the reference's CI", None, None, "needs bootstrap resamples (--bootstrap > 0)")
    low, high = low_high
    value = sensitivity["artifact"]["value"]
    return Check(rule, f"in [{low:.3f}, {high:.3f}]", value, bool(low <= value <= high), f"delta {sensitivity['delta']['value']:+.3f}")
