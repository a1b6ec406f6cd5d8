"""The screening study's analysis of one split, from any model's outputs (a checkpoint's or a shipped
artifact's): the flow of images, the unit of analysis, intention-to-screen and accepted-only results
with cluster-bootstrap intervals, per-participant results, misses by true grade, prevalence and
PPV/NPV at an intended-use prevalence.

The unit resampled is the patient wherever the split file has patient ids: a patient's two eyes are
correlated, so resampling images as if independent makes intervals too narrow (by a factor of about
1.4 when both eyes always agree). Images without a patient id are their own cluster.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, cohen_kappa_score, roc_auc_score

from mobiledr.reporting import ci, md_table, num, pct
from mobiledr.train.metrics import bootstrap_ci, clusters, decision_point, reliability, wilson_interval

LEVEL = 0.95
ECE_BINS = 15
RATES = ("sensitivity", "specificity", "ppv", "npv")


@dataclass
class SplitOutputs:
    """Every readable image of the evaluated split (in the cache), with the system's outputs.

    ``labels`` is -1 for images the reference standard could not grade (counted in the flow, never
    scored); ``accepted`` is the OOD gate's verdict (all True without a gate); ``grades`` the data
    set's own grade (or class) per image, for misses by grade."""

    keys: list[str]
    labels: np.ndarray  # (N,) int, -1: ungradable by the reference
    probs: np.ndarray  # (N, K) calibrated probabilities
    accepted: np.ndarray  # (N,) bool: passed the OOD gate
    grades: list[str]
    patients: list[str]  # '' where the split file has no patient id


def _groups(patients: list[str], keys: list[str]) -> np.ndarray:
    return np.array([f"patient:{p}" if p else f"image:{k}" for p, k in zip(patients, keys)], dtype=object)


def positive_ppv_npv(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """PPV and NPV at an intended-use prevalence from sensitivity and specificity (Bayes' rule)."""
    tp, fp = sensitivity * prevalence, (1 - specificity) * (1 - prevalence)
    tn, fn = specificity * (1 - prevalence), (1 - sensitivity) * prevalence
    return (tp / (tp + fp) if tp + fp > 0 else math.nan), (tn / (tn + fn) if tn + fn > 0 else math.nan)


def _rates(y: np.ndarray, decided: np.ndarray, prevalence: float | None) -> dict[str, float]:
    rates = decision_point(y, decided).rates()
    if prevalence is not None:
        rates["ppv_at_prevalence"], rates["npv_at_prevalence"] = positive_ppv_npv(rates["sensitivity"], rates["specificity"], prevalence)
    return rates


def _misses_by_grade(y: np.ndarray, decided: np.ndarray, grades: list[str]) -> list[dict[str, Any]]:
    """Per true grade of the referable images: how many there are and how many the system missed."""
    positives = Counter(g for g, label in zip(grades, y) if label == 1)
    missed = Counter(g for g, label, d in zip(grades, y, decided) if label == 1 and not d)
    return [{"grade": g, "positives": positives[g], "missed": missed[g], "missed_rate": missed[g] / positives[g]} for g in sorted(positives)]


def _binary(y: np.ndarray, decided: np.ndarray, groups: np.ndarray | None, grades: list[str], resamples: int, seed: int,
            prevalence: float | None, what: str) -> dict[str, Any]:  # fmt: skip
    """One analysis: the 2x2 table of ``decided`` (referred) against ``y``, cluster-bootstrap and
    Wilson intervals, PPV/NPV at the intended-use prevalence, misses by grade."""
    point = decision_point(y, decided)
    value = _rates(y, decided, prevalence)
    boot = (
        bootstrap_ci(lambda idx: _rates(y[idx], decided[idx], prevalence), len(y), resamples, seed, LEVEL, groups)
        if resamples and len(y) else {}
    )  # fmt: skip
    section: dict[str, Any] = {"analysis": what, "images": int(len(y)), "tp": point.tp, "fp": point.fp, "tn": point.tn, "fn": point.fn}
    for name, (successes, trials) in point.fractions().items():
        section[name] = {"value": value[name], "successes": successes, "trials": trials, "ci_bootstrap": boot.get(name),
                         "ci_wilson": wilson_interval(successes, trials, LEVEL)}  # fmt: skip
    if prevalence is not None:
        for name in ("ppv_at_prevalence", "npv_at_prevalence"):
            section[name] = {"value": value[name], "ci_bootstrap": boot.get(name)}
    section["misses_by_grade"] = _misses_by_grade(y, decided, grades)
    return section


def _participants(y: np.ndarray, decided: np.ndarray, groups: np.ndarray, resamples: int, seed: int, prevalence: float | None,
                  what: str) -> dict[str, Any]:  # fmt: skip
    """Per participant: positive when either eye is, referred when either eye is; participants are
    independent, so the bootstrap resamples them directly."""
    members = clusters(groups, len(y))
    py = np.array([y[m].max() for m in members])
    pd = np.array([decided[m].max() for m in members])
    section = _binary(py, pd, None, [""] * len(py), resamples, seed, prevalence, what)
    section.pop("misses_by_grade")
    section["participants"] = section.pop("images")
    return section


def _figures(y: np.ndarray, probs: np.ndarray, decided: np.ndarray | None, binary: bool, ordinal: bool) -> dict[str, float]:
    """ROC-AUC, PR-AUC, kappa and ECE of one (re)sample (nan where undefined)."""
    out = {"roc_auc": math.nan, "pr_auc": math.nan, "kappa": math.nan, "ece": math.nan}
    if not len(y):
        return out
    predicted = decided.astype(int) if binary and decided is not None else probs.argmax(axis=1)
    if binary:
        if 0 < y.sum() < len(y):
            out["roc_auc"] = float(roc_auc_score(y, probs[:, 1]))
            out["pr_auc"] = float(average_precision_score(y, probs[:, 1]))
    else:
        roc, pr = [], []
        for c in range(probs.shape[1]):
            hits = y == c
            if 0 < hits.sum() < len(hits):
                roc.append(roc_auc_score(hits, probs[:, c]))
                pr.append(average_precision_score(hits, probs[:, c]))
        if roc:
            out["roc_auc"], out["pr_auc"] = float(np.mean(roc)), float(np.mean(pr))
    if len(np.unique(np.r_[y, predicted])) > 1:
        out["kappa"] = float(cohen_kappa_score(y, predicted, weights="quadratic" if ordinal else None))
    out["ece"] = reliability(y, probs, ECE_BINS).ece
    return out


def analyse(outputs: SplitOutputs, classes: list[str], threshold: float | None, scheme: str, resamples: int, seed: int,
            prevalence: float | None = None, unreadable: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The clinical analysis of one split (see the module docstring); ``threshold`` is the locked
    operating threshold on ``probs[:, 1]`` of a binary model (None: argmax); ``unreadable`` the
    data set's rejects (counted in the flow: they reach no split)."""
    binary = len(classes) == 2
    t = threshold if threshold is not None else 0.5
    gradable = outputs.labels >= 0
    groups_all = _groups(outputs.patients, outputs.keys)
    has_ids = any(outputs.patients)
    gi = np.flatnonzero(gradable)
    y, probs, accepted = outputs.labels[gi], outputs.probs[gi], outputs.accepted[gi]
    grades = [outputs.grades[i] for i in gi]
    groups = groups_all[gi] if has_ids else None
    patients_in = len(set(groups_all[gi])) if has_ids else None

    report: dict[str, Any] = {
        "unit_of_analysis": {
            "unit": "image",
            "resampled": "patients" if has_ids else "images",
            "clusters": patients_in if has_ids else int(len(gi)),
            "why": (
                "intervals resample patients (cluster bootstrap): a patient's eyes are correlated, and treating them as "
                "independent makes intervals too narrow" if has_ids else
                "the split file has no patient ids: every image is treated as its own patient, so intervals may be too narrow "
                "if one person contributes several images"
            ),
            "bootstrap": {"resamples": resamples, "seed": seed, "level": LEVEL, "method": "percentile"},
            "wilson": "Wilson intervals treat images as independent (shown for comparison)",
        },
        "flow": _flow(outputs, classes, unreadable),
    }  # fmt: skip
    positives = int((y == 1).sum()) if binary else None
    if binary:
        boot = bootstrap_ci(lambda idx: {"prevalence": float(np.mean(y[idx] == 1))}, len(y), resamples, seed, LEVEL, groups) if resamples else {}
        report["prevalence"] = {"value": positives / len(y) if len(y) else math.nan, "positives": positives, "gradable": int(len(y)),
                                "ci_bootstrap": boot.get("prevalence"), "ci_wilson": wilson_interval(positives, len(y), LEVEL)}  # fmt: skip
        report["intended_use_prevalence"] = prevalence
        model = probs[:, 1] >= t
        its = model | ~accepted  # a gate reject goes to a human grader: a referral
        analyses = {
            "model": _binary(y, model, groups, grades, resamples, seed, prevalence, "every gradable image, the OOD gate ignored"),
            "intention_to_screen": _binary(y, its, groups, grades, resamples, seed, prevalence,
                                           "every gradable image; images the OOD gate rejects count as referrals"),
            "accepted_only": _binary(y[accepted], model[accepted], groups[accepted] if groups is not None else None,
                                     [g for g, a in zip(grades, accepted) if a], resamples, seed, prevalence,
                                     "only the gradable images the OOD gate accepts"),
        }  # fmt: skip
        report["analyses"] = analyses
        if has_ids and all(outputs.patients[i] for i in gi):
            report["per_participant"] = {
                "rule": "a participant is positive when either eye (any image) is, and referred when either eye is",
                "intention_to_screen": _participants(y, its, groups, resamples, seed, prevalence, "intention to screen, per participant"),
                "model": _participants(y, model, groups, resamples, seed, prevalence, "every gradable image, per participant"),
            }  # type: ignore[arg-type]  # fmt: skip
        else:
            report["per_participant"] = {"not_available": "the split file lacks patient ids for some images: per-participant results need them"}
        decided = model
    else:
        decided = None
    ordinal = scheme == "icdr-5"
    value = _figures(y, probs, decided, binary, ordinal)
    boot = bootstrap_ci(lambda idx: _figures(y[idx], probs[idx], decided[idx] if decided is not None else None, binary, ordinal),
                        len(y), resamples, seed, LEVEL, groups) if resamples else {}  # fmt: skip
    report["figures"] = {name: {"value": v, "ci_bootstrap": boot.get(name)} for name, v in value.items()}
    report["figures"]["kappa"]["weights"] = "quadratic weights" if ordinal else "unweighted, of the decision"
    # The system's own gradable rate: of every readable image of the split (those the reference could
    # not grade too), the fraction the OOD gate accepts.
    all_groups = groups_all if has_ids else None
    acc = outputs.accepted.astype(float)
    boot = bootstrap_ci(lambda idx: {"rate": float(acc[idx].mean())}, len(acc), resamples, seed, LEVEL, all_groups) if resamples and len(acc) else {}
    report["figures"]["system_gradable_rate"] = {"value": float(acc.mean()) if len(acc) else math.nan, "accepted": int(acc.sum()),
                                                 "images": int(len(acc)), "ci_bootstrap": boot.get("rate"),
                                                 "ci_wilson": wilson_interval(int(acc.sum()), len(acc), LEVEL)}  # fmt: skip
    ref = gradable.astype(float)
    boot = bootstrap_ci(lambda idx: {"rate": float(ref[idx].mean())}, len(ref), resamples, seed, LEVEL, all_groups) if resamples and len(ref) else {}
    report["figures"]["reference_gradable_rate"] = {"value": float(ref.mean()) if len(ref) else math.nan, "gradable": int(ref.sum()),
                                                    "images": int(len(ref)), "ci_bootstrap": boot.get("rate")}  # fmt: skip
    return report


def _flow(outputs: SplitOutputs, classes: list[str], unreadable: dict[str, Any] | None) -> dict[str, Any]:
    """STARD-style flow: listed -> unreadable -> ungradable by the reference -> rejected by the gate -> analysed, per class."""
    gradable = outputs.labels >= 0
    per_class = {}
    for c, name in enumerate(classes):
        mine = outputs.labels == c
        per_class[name] = {"gradable": int(mine.sum()), "gate_rejected": int((mine & ~outputs.accepted).sum()),
                           "analysed_accepted_only": int((mine & outputs.accepted).sum()), "analysed_intention_to_screen": int(mine.sum())}  # fmt: skip
    return {
        "dataset": unreadable,
        "split_images": int(len(outputs.labels)),
        "ungradable_by_reference": int((~gradable).sum()),
        "gradable": int(gradable.sum()),
        "gate_rejected": int((gradable & ~outputs.accepted).sum()),
        "gate_rejected_ungradable": int((~gradable & ~outputs.accepted).sum()),
        "analysed_intention_to_screen": int(gradable.sum()),
        "analysed_accepted_only": int((gradable & outputs.accepted).sum()),
        "per_class": per_class,
    }


# -- Markdown --------------------------------------------------------------------------------------
def _row(title: str, entry: dict[str, Any]) -> list[str]:
    n = f"{entry['successes']} / {entry['trials']}" if "trials" in entry else ""
    return [title, pct(entry["value"]), n, ci(entry.get("ci_bootstrap")), ci(entry.get("ci_wilson"))]


def markdown(clinical: dict[str, Any], split: str) -> list[str]:
    """The clinical sections of a report: flow, unit of analysis, analyses, participants, misses, figures."""
    unit, flow = clinical["unit_of_analysis"], clinical["flow"]
    lines = ["## Flow of images (STARD)", ""]
    data = flow.get("dataset")
    if data:
        lines += [f"- Listed in the data set: {data['listed']}; unreadable (rejects.csv, in no split): {data['unreadable']}"
                  + (f" ({', '.join(f'{k} {v}' for k, v in data['reasons'].items())})" if data.get("reasons") else ""),
                  f"- Readable, in the cache: {data['readable']}"]  # fmt: skip
    lines += [
        f"- In the {split} split: {flow['split_images']}",
        f"- Ungradable by the reference standard: {flow['ungradable_by_reference']} (of them rejected by the OOD gate: {flow['gate_rejected_ungradable']})",
        f"- Gradable: {flow['gradable']}; rejected by the quality/OOD gate: {flow['gate_rejected']}",
        f"- Analysed: {flow['analysed_intention_to_screen']} (intention to screen: gate rejects count as referrals), "
        f"{flow['analysed_accepted_only']} (accepted images only)",
        "",
        *md_table(["Class", "Gradable", "Gate-rejected", "Analysed (ITS)", "Analysed (accepted only)"],
                  [[c, str(v["gradable"]), str(v["gate_rejected"]), str(v["analysed_intention_to_screen"]), str(v["analysed_accepted_only"])]
                   for c, v in flow["per_class"].items()]),  # fmt: skip
        "## Unit of analysis",
        "",
        f"Unit: the {unit['unit']}; intervals resample **{unit['resampled']}** ({unit['clusters']}); {unit['why']}. "
        f"{unit['bootstrap']['resamples']} {unit['bootstrap']['method']} bootstrap resamples, seed {unit['bootstrap']['seed']}. {unit['wilson']}.",
        "",
    ]
    if "prevalence" in clinical:
        prev = clinical["prevalence"]
        lines += [f"Prevalence of the positive class in the {split} split: {pct(prev['value'])} ({prev['positives']} / {prev['gradable']}; "
                  f"95% CI {ci(prev['ci_bootstrap'])}).", ""]  # fmt: skip
        intended = clinical.get("intended_use_prevalence")
        rows = []
        for key, title in (("intention_to_screen", "Intention to screen"), ("accepted_only", "Accepted only"), ("model", "Model alone")):
            a = clinical["analyses"][key]
            for name, label in (("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("ppv", "PPV (split prevalence)"), ("npv", "NPV (split prevalence)")):
                rows.append([f"{title}: {label}", *_row("", a[name])[1:]])
            if intended is not None:
                for name, label in (("ppv_at_prevalence", f"PPV at {pct(intended)}"), ("npv_at_prevalence", f"NPV at {pct(intended)}")):
                    rows.append([f"{title}: {label}", pct(a[name]["value"]), "", ci(a[name]["ci_bootstrap"]), ""])
        lines += [
            "## Screening performance: intention to screen and accepted only",
            "",
            "Intention to screen: every gradable image, and an image the quality/OOD gate rejects counts as a referral (an app "
            "sends it to a human grader). Accepted only: the gradable images the gate accepts.",
            "",
            *md_table(["Analysis: measure", "Estimate", "n / N", f"95% CI (cluster bootstrap, {unit['resampled']})", "95% CI (Wilson)"], rows),
        ]
        participants = clinical["per_participant"]
        if "not_available" in participants:
            lines += [f"Per participant: {participants['not_available']}.", ""]
        else:
            rows = []
            for key, title in (("intention_to_screen", "Intention to screen"), ("model", "Model alone")):
                for name in ("sensitivity", "specificity"):
                    rows.append([f"{title}: {name}", *_row("", participants[key][name])[1:]])
            lines += ["## Per participant", "", f"{participants['rule'].capitalize()}; {participants['intention_to_screen']['participants']} participants.", "",
                      *md_table(["Analysis: measure", "Estimate", "n / N", "95% CI (bootstrap of participants)", "95% CI (Wilson)"], rows)]  # fmt: skip
        rows = [[m["grade"], str(m["positives"]), str(m["missed"]), pct(m["missed_rate"])] for m in clinical["analyses"]["intention_to_screen"]["misses_by_grade"]]
        lines += ["## Misses by true grade (intention to screen)", "", *md_table(["True grade", "Positives", "Missed", "Missed rate"], rows)]
    figures = clinical["figures"]
    rows = [
        ["ROC-AUC", num(figures["roc_auc"]["value"]), ci(figures["roc_auc"]["ci_bootstrap"], num)],
        ["PR-AUC (average precision)", num(figures["pr_auc"]["value"]), ci(figures["pr_auc"]["ci_bootstrap"], num)],
        [f"Kappa ({figures['kappa']['weights']})", num(figures["kappa"]["value"]), ci(figures["kappa"]["ci_bootstrap"], num)],
        ["ECE (calibrated)", num(figures["ece"]["value"]), ci(figures["ece"]["ci_bootstrap"], num)],
        ["System gradable rate (OOD gate accepts)", f"{pct(figures['system_gradable_rate']['value'])} ({figures['system_gradable_rate']['accepted']} / "
         f"{figures['system_gradable_rate']['images']})", ci(figures["system_gradable_rate"]["ci_bootstrap"])],
        ["Reference gradable rate (annotation)", pct(figures["reference_gradable_rate"]["value"]), ci(figures["reference_gradable_rate"]["ci_bootstrap"])],
    ]  # fmt: skip
    lines += ["## Figures with intervals", "", *md_table(["Figure", "Estimate", f"95% CI (cluster bootstrap, {unit['resampled']})"], rows)]
    return lines
