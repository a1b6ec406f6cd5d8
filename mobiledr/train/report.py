"""Clinical evaluation of a checkpoint on one split, reported as screening studies report it.

``evaluate_checkpoint`` runs the model over the split and writes, into one folder, ``report.json``
(everything, machine-readable), ``report.md`` (tables for a reader), ``roc.png``, ``confusion.png``
and ``reliability.png``. Binary schemes are judged at the checkpoint's locked threshold, chosen on
validation by ``mobiledr train`` and never re-chosen here. The screening analysis (flow, unit of
analysis, intention to screen, per participant) is :mod:`mobiledr.train.clinical`'s.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.table import Table
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve
from torch.utils.data import Dataset, TensorDataset

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import CachedDataset
from mobiledr.data.geometry import load_folder
from mobiledr.data.labels import case_definition, get_scheme
from mobiledr.data.photometric import Photometric
from mobiledr.data.splits import SPLITS, SplitFile
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_json, atomic_write_text
from mobiledr.plots import save_figure
from mobiledr.progress import progress_bar
from mobiledr.reporting import ci, json_safe, md_table, num, pct
from mobiledr.train.checkpoint import Checkpoint, OODStats
from mobiledr.train.clinical import SplitOutputs, analyse
from mobiledr.train.clinical import markdown as clinical_markdown
from mobiledr.train.inference import Classifier, Predictions, predict
from mobiledr.train.metrics import (
    Reliability,
    auc_scores,
    bootstrap_binary,
    operating_point,
    per_class,
    quadratic_kappa,
    reliability,
    wilson_interval,
)
from mobiledr.train.ood import stats_score

ECE_BINS = 15
LEVEL = 0.95
#: Published screening results: name, sensitivity, specificity, setting.
REFERENCES = (
    ("IDx-DR", 0.872, 0.907, "n=900"),
    ("EyeArt", 0.96, 0.88, ""),
    ("Google (Gulshan 2016)", 0.903, 0.981, "EyePACS-1"),
    ("Medios offline smartphone AI (Natarajan 2019)", 1.00, 0.884, "referable DR, Remidio Fundus-on-Phone"),
)


def _unlabelled(images: list[np.ndarray]) -> TensorDataset:
    """Geometric-stage images (H, W, 3) as a dataset of CHW float tensors with label -1."""
    stacked = torch.from_numpy(np.stack(images).astype(np.float32)).permute(0, 3, 1, 2)
    return TensorDataset(stacked, torch.full((len(images),), -1))


def _predict(classifier: Classifier, dataset: Dataset, batch_size: int, device: str, description: str) -> Predictions:
    """``predict`` with a progress bar."""
    with progress_bar(description, total=len(dataset)) as bar:  # type: ignore[arg-type]
        return predict(classifier, dataset, batch_size, device, on_batch=bar.advance)


def _existing(given: Path | None, checkpoint: Checkpoint, key: str, what: str, option: str) -> Path:
    path = given if given is not None else checkpoint.provenance.get(key)
    if path is None:
        raise MobiledrError(f"the checkpoint does not record its {what}; pass {option}")
    path = Path(path)
    if not path.exists():
        raise MobiledrError(f"{path}: {what} not found (pass {option})")
    return path


def _gate(features: torch.Tensor, ood: OODStats) -> np.ndarray:
    """Mahalanobis scores of the features (an image is rejected when its score < ood.threshold)."""
    return stats_score(features, ood).numpy()


def _rejected(scores: np.ndarray, ood: OODStats) -> dict[str, Any]:
    rejected = int((scores < ood.threshold).sum())
    return {"images": len(scores), "rejected": rejected, "rejected_rate": rejected / len(scores) if len(scores) else math.nan}


def _screen_folder(folder: Path, classifier: Classifier, checkpoint: Checkpoint, batch_size: int, device: str) -> dict[str, Any]:
    """Every file in ``folder`` through the geometric stage (the quality gate) and the OOD gate.

    Accepted images are held in memory until scored: meant for a folder of probe images, not a data set."""
    assert checkpoint.ood is not None
    with progress_bar("quality gate") as bar:
        accepted, rejected = load_folder(folder, checkpoint.preprocess, bar.set)
    files = len(accepted) + len(rejected)
    outcomes: dict[str, dict[str, Any]] = {name: {"stage": "quality", "rejected": True, "reason": reason} for name, reason in rejected.items()}
    if accepted:
        images = _unlabelled([image for _, image in accepted])
        scores = _gate(_predict(classifier, images, batch_size, device, "OOD gate").features, checkpoint.ood)
        for (name, _), score in zip(accepted, scores):
            rejected = bool(score < checkpoint.ood.threshold)
            reason = f"OOD score {score:.1f} {'<' if rejected else '>='} threshold {checkpoint.ood.threshold:.1f}"
            outcomes[name] = {"stage": "gate", "rejected": rejected, "reason": reason, "score": float(score)}
    quality = sum(o["stage"] == "quality" for o in outcomes.values())
    gate = sum(o["stage"] == "gate" and o["rejected"] for o in outcomes.values())
    return {
        "folder": str(folder.resolve()),
        "files": files,
        "quality_rejected": quality,
        "gate_rejected": gate,
        "rejected": quality + gate,
        "accepted": files - quality - gate,
        "outcomes": {name: outcomes[name] for name in sorted(outcomes)},
    }


def _binary_section(y: np.ndarray, p: np.ndarray, threshold: float, resamples: int, seed: int, groups: np.ndarray | None = None) -> dict[str, Any]:
    """The operating point at the locked threshold with (cluster, with ``groups``) bootstrap and Wilson intervals."""
    point = operating_point(y, p, threshold)
    boot = bootstrap_binary(y, p, threshold, resamples, seed, LEVEL, groups) if resamples else {}
    section: dict[str, Any] = {"threshold": threshold, "tp": point.tp, "fp": point.fp, "tn": point.tn, "fn": point.fn}
    rates = point.rates()
    for name, (successes, trials) in point.fractions().items():
        section[name] = {
            "value": rates[name],
            "successes": successes,
            "trials": trials,
            "ci_bootstrap": boot.get(name),
            "ci_wilson": wilson_interval(successes, trials, LEVEL),
        }
    section["roc_auc_ci_bootstrap"] = boot.get("roc_auc")
    return section


def _threshold_section(checkpoint: Checkpoint) -> dict[str, Any]:
    config = checkpoint.train_config
    method = config.get("threshold_method")
    if checkpoint.threshold is None:
        chosen = "none locked in the checkpoint: the most probable class is predicted (0.5)"
    elif method == "sensitivity":
        chosen = f"the highest threshold reaching sensitivity >= {config.get('target_sensitivity')} on the validation split"
    elif method == "youden":
        chosen = "the threshold maximising sensitivity + specificity - 1 on the validation split"
    else:
        chosen = "recorded in the checkpoint (method unknown)"
    return {
        "value": checkpoint.threshold,
        "locked": checkpoint.threshold is not None,
        "method": method,
        "target_sensitivity": config.get("target_sensitivity"),
        "chosen": chosen,
    }


def _inputs(
    checkpoint_path: Path, split: str, data: Path | None, splits: Path | None, ood_dir: Path | None
) -> tuple[Checkpoint, Cache, SplitFile, Path, Path]:
    """Load and cross-check the checkpoint, cache and split file before any work (one-line errors);
    also returns the cache and split file paths used."""
    if split not in SPLITS:
        raise MobiledrError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    checkpoint = Checkpoint.load(checkpoint_path)
    cache_path = _existing(data, checkpoint, "cache", "cache", "--data")
    split_path = _existing(splits, checkpoint, "split_file", "split file", "--splits")
    cache, split_file = Cache.open(cache_path), SplitFile.read(split_path, checkpoint.provenance.get("split_sha256"))
    if split_file.scheme != checkpoint.scheme:
        raise MobiledrError(f"{split_path}: split file uses scheme {split_file.scheme}, the checkpoint {checkpoint.scheme}")
    if split_file.positive is not None and checkpoint.positive is not None and split_file.positive != checkpoint.positive:
        raise MobiledrError(f"{split_path}: split file's positive class is {split_file.positive!r}, the checkpoint's {checkpoint.positive!r}")
    if cache.spec.geometric_key != checkpoint.preprocess.geometric_key:
        have, need = cache.spec, checkpoint.preprocess
        raise MobiledrError(f"{cache_path}: cache prepared at size {have.size} ({have.mode}), the checkpoint needs {need.size} ({need.mode})")
    if ood_dir is not None and not ood_dir.is_dir():
        raise MobiledrError(f"{ood_dir}: --ood folder not found")
    if ood_dir is not None and checkpoint.ood is None:
        raise MobiledrError(f"{checkpoint_path}: the checkpoint has no OOD statistics, so --ood cannot be screened")
    return checkpoint, cache, split_file, cache_path, split_path


def _ood_section(
    classifier: Classifier, checkpoint: Checkpoint, ungradable: Predictions | None, split_features: torch.Tensor,
    ood_dir: Path | None, batch_size: int, device: str,
) -> dict[str, Any]:  # fmt: skip
    """How many images the Mahalanobis gate rejects: of the split, of its ungradable images, of ``ood_dir``."""
    assert checkpoint.ood is not None
    ood: dict[str, Any] = {"threshold": checkpoint.ood.threshold, "split": _rejected(_gate(split_features, checkpoint.ood), checkpoint.ood)}
    if ungradable is not None:
        ood["ungradable"] = _rejected(_gate(ungradable.features, checkpoint.ood), checkpoint.ood)
    if ood_dir is not None:
        ood["folder"] = _screen_folder(ood_dir, classifier, checkpoint, batch_size, device)
    return ood


def _patient_groups(split_file: SplitFile, dataset: CachedDataset) -> np.ndarray | None:
    """The cluster of each evaluated image (its patient; the image itself without an id); None when no image has a patient id."""
    patients = {r.key: r.patient_id for r in split_file.rows}
    keys = [entry.key for entry, _ in dataset.items]
    if not any(patients.get(k) for k in keys):
        return None
    return np.array([f"patient:{patients[k]}" if patients.get(k) else f"image:{k}" for k in keys], dtype=object)


def _bootstrap_method(split_file: SplitFile, dataset: CachedDataset) -> str:
    groups = _patient_groups(split_file, dataset)
    if groups is None:
        return "percentile, images resampled with replacement (no patient ids: every image its own patient)"
    return f"percentile cluster bootstrap: patients resampled with replacement ({len(set(groups))} clusters), all their images with them"


def grade_name(record: Any) -> str:
    """The data set's own grade of a record, for misses by grade ('grade 3', a class name, 'ungradable')."""
    if record.grade is None:
        return "ungradable"
    if record.classes is not None:
        return record.classes[record.grade]
    return f"grade {record.grade}" + (" + DME" if getattr(record, "dme", None) else "")


def dataset_flow(cache: Cache) -> dict[str, Any]:
    """The top of the flow: images listed in the data set, unreadable ones (rejects.csv, in no split), readable ones."""
    reasons: dict[str, int] = {}
    for reject in cache.rejects:
        reason = reject.reason.split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return {"listed": len(cache.entries) + len(cache.rejects), "unreadable": len(cache.rejects), "reasons": reasons, "readable": len(cache.entries)}


def _split_outputs(checkpoint: Checkpoint, split_file: SplitFile, dataset: CachedDataset, ungradable_entries: list, preds: Predictions,
                   ungradable: Predictions | None) -> SplitOutputs:  # fmt: skip
    """Every readable image of the split with the checkpoint's calibrated probabilities and OOD verdict."""
    patients = {r.key: r.patient_id for r in split_file.rows}
    entries = [entry for entry, _ in dataset.items] + list(ungradable_entries)
    logits = preds.logits if ungradable is None else torch.cat([preds.logits, ungradable.logits])
    features = preds.features if ungradable is None else torch.cat([preds.features, ungradable.features])
    labels = np.r_[preds.labels.numpy(), -np.ones(len(ungradable_entries), dtype=np.int64)]
    probs = torch.softmax(logits / checkpoint.temperature, dim=1).numpy()
    accepted = _gate(features, checkpoint.ood) >= checkpoint.ood.threshold if checkpoint.ood is not None else np.ones(len(entries), bool)
    return SplitOutputs([e.key for e in entries], labels.astype(np.int64), probs, np.asarray(accepted, bool),
                        [grade_name(e.record) for e in entries], [patients.get(e.key, "") for e in entries])  # fmt: skip


def split_warnings(split: str, split_file: SplitFile) -> list[str]:
    """Where the results mislead unless read with care."""
    warnings = []
    if split != "test":
        warnings.append(
            f"the {split} split is in-sample: the model was {'fitted' if split == 'train' else 'selected, calibrated and thresholded'} on it, "
            "so these results are optimistic; report the test split"
        )
    if not any(r.patient_id for r in split_file.rows):
        warnings.append("the split file has no patient ids: every image is its own patient, so one person's eyes may be on both sides "
                        "of a split and intervals may be too narrow")  # fmt: skip
    return warnings


def evaluate_checkpoint(
    checkpoint_path: Path,
    split: str = "test",
    data: Path | None = None,
    splits: Path | None = None,
    ood_dir: Path | None = None,
    out: Path | None = None,
    resamples: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    prevalence: float | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a checkpoint on ``split``; returns the report (as in report.json) and the folder written."""
    checkpoint_path = Path(checkpoint_path)
    ood_dir = Path(ood_dir) if ood_dir is not None else None
    checkpoint, cache, split_file, cache_path, split_path = _inputs(checkpoint_path, split, data, splits, ood_dir)
    out = Path(out) if out is not None else checkpoint_path.parent / f"eval-{split}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    classifier = Classifier(checkpoint.build_model(), Photometric(checkpoint.preprocess)).to(device)

    dataset = CachedDataset(cache, split_file, split)
    preds = _predict(classifier, dataset, batch_size, device, f"evaluating {split}")
    by_key = {e.key: e for e in cache.entries}
    ungradable_entries = [by_key[r.key] for r in split_file.rows_of(split) if r.label is None and r.key in by_key]
    ungradable = (
        _predict(classifier, _unlabelled([cache.image(e) for e in ungradable_entries]), batch_size, device, "ungradable images")
        if ungradable_entries else None
    )  # fmt: skip
    y = preds.labels.numpy()
    raw, probs = preds.probabilities(1.0).numpy(), preds.probabilities(checkpoint.temperature).numpy()
    classes = list(checkpoint.labels)
    binary = len(classes) == 2
    threshold = checkpoint.threshold if checkpoint.threshold is not None else 0.5
    y_pred = (probs[:, 1] >= threshold).astype(int) if binary else probs.argmax(axis=1)
    aucs, table = auc_scores(y, probs), per_class(y, y_pred, len(classes))
    rows = split_file.rows_of(split)
    gradable = sum(r.label is not None for r in rows)
    confusion = confusion_matrix(y, y_pred, labels=list(range(len(classes))))
    before, after = reliability(y, raw, ECE_BINS), reliability(y, probs, ECE_BINS)

    report: dict[str, Any] = {
        "checkpoint": str(checkpoint_path.resolve()),
        "epoch": checkpoint.epoch,
        "split": split,
        "cache": str(cache_path.resolve()),
        "split_file": str(split_path.resolve()),
        "scheme": checkpoint.scheme,
        "classes": classes,
        "images": len(y),
        "gradable": {"gradable": gradable, "ungradable": len(rows) - gradable, "total": len(rows), "rate": gradable / len(rows)},
        "temperature": checkpoint.temperature,
        "threshold": _threshold_section(checkpoint) if binary else None,
        "accuracy": float((y_pred == y).mean()),
        "per_class": [
            {"class": name, "precision": table.precision[c], "recall": table.recall[c], "f1": table.f1[c], "support": table.support[c],
             "roc_auc": aucs.per_class_roc_auc[c], "pr_auc": aucs.per_class_pr_auc[c]}
            for c, name in enumerate(classes)
        ],
        "confusion_matrix": confusion.tolist(),
        "roc_auc": aucs.roc_auc,
        "pr_auc": aucs.pr_auc,
        "qwk": quadratic_kappa(y, y_pred) if checkpoint.scheme == "icdr-5" else None,
        "operating_point": _binary_section(y, probs[:, 1], threshold, resamples, seed, _patient_groups(split_file, dataset)) if binary else None,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": LEVEL, "method": _bootstrap_method(split_file, dataset)},
        "calibration": {
            "bins": ECE_BINS,
            "ece_uncalibrated": before.ece,
            "ece_calibrated": after.ece,
            "reliability_uncalibrated": asdict(before),
            "reliability_calibrated": asdict(after),
        },
        "ood": None,
        "references": [{"name": n, "sensitivity": s, "specificity": p, "note": note} for n, s, p, note in REFERENCES] if binary else [],
    }
    if checkpoint.ood is not None:
        report["ood"] = _ood_section(classifier, checkpoint, ungradable, preds.features, ood_dir, batch_size, device)
    outputs = _split_outputs(checkpoint, split_file, dataset, ungradable_entries, preds, ungradable)
    report["warnings"] = split_warnings(split, split_file)
    report["case_definition"] = case_definition(get_scheme("referable-dr"), cache.records) if checkpoint.scheme == "referable-dr" else None
    report["clinical"] = analyse(outputs, classes, checkpoint.threshold if binary else None, checkpoint.scheme, resamples, seed,
                                 prevalence, dataset_flow(cache))  # fmt: skip
    report = json_safe(report)

    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    _plot_roc(y, probs, classes, report["operating_point"], out / "roc.png")
    _plot_confusion(confusion, classes, out / "confusion.png")
    _plot_reliability(before, after, checkpoint.temperature, out / "reliability.png")
    return report, out


# -- Markdown --------------------------------------------------------------------------------------
RATE_NAMES = {"sensitivity": "Sensitivity", "specificity": "Specificity", "ppv": "PPV", "npv": "NPV"}


def markdown(report: dict[str, Any]) -> str:
    """The readable report: data, threshold, screening performance, tables, calibration, OOD, references."""
    g, classes = report["gradable"], report["classes"]
    lines = [
        f"# Evaluation: {report['split']} split",
        "",
        f"- Checkpoint: `{report['checkpoint']}` (epoch {report['epoch']})",
        f"- Data: cache `{report['cache']}`, split file `{report['split_file']}`",
        f"- Scheme: {report['scheme']} ({', '.join(classes)})" + (f"; {report['case_definition']}" if report.get("case_definition") else ""),
        f"- Images evaluated: {report['images']}; gradable rate {pct(g['rate'])} ({g['gradable']} of {g['total']}, {g['ungradable']} ungradable)",
        f"- Temperature: {report['temperature']:.3f} (probabilities below are temperature-scaled)",
        "",
        *[f"> **Warning**: {w}." for w in report.get("warnings", [])],
        *([""] if report.get("warnings") else []),
    ]
    threshold, point = report["threshold"], report["operating_point"]
    if threshold is not None:
        value = "0.5 (argmax)" if threshold["value"] is None else f"{threshold['value']:.4f}"
        lines += [
            "## Operating threshold",
            "",
            f"Threshold {value} on the calibrated probability of *{classes[1]}*: {threshold['chosen']}.",
            "It was locked into the checkpoint by training and is not re-chosen on this split.",
            "",
        ]
    if point is not None:
        boot = report["bootstrap"]
        lines += [
            "## Screening performance at the locked threshold",
            "",
            *md_table(
                ["Measure", "Estimate", "n / N", f"{boot['level']:.0%} CI (bootstrap)", f"{boot['level']:.0%} CI (Wilson)"],
                [
                    [RATE_NAMES[name], pct(point[name]["value"]), f"{point[name]['successes']} / {point[name]['trials']}", ci(point[name]["ci_bootstrap"]), ci(point[name]["ci_wilson"])]
                    for name in RATE_NAMES
                ],
            ),
            (
                f"TP {point['tp']}, FP {point['fp']}, TN {point['tn']}, FN {point['fn']}. "
                f"Bootstrap: {boot['resamples']} resamples ({boot['method']}), seed {boot['seed']}."
            ),
            "",
        ]
    if report.get("clinical"):
        lines += clinical_markdown(report["clinical"], report["split"])
    auc_ci = f" (95% CI {ci(point['roc_auc_ci_bootstrap'], num)})" if point is not None and point["roc_auc_ci_bootstrap"] else ""
    ovr = "" if len(classes) == 2 else " (one-vs-rest macro)"
    lines += [
        "## Discrimination",
        "",
        f"- ROC-AUC{ovr}: {num(report['roc_auc'])}{auc_ci}",
        f"- PR-AUC, average precision{ovr}: {num(report['pr_auc'])}",
    ]
    lines += [f"- Accuracy: {pct(report['accuracy'])}"]
    if report["qwk"] is not None:
        lines += [f"- Quadratic weighted kappa: {num(report['qwk'])}"]
    lines += [
        "",
        "## Per-class results",
        "",
        *md_table(
            ["Class", "Precision", "Recall", "F1", "Support", "ROC-AUC (one-vs-rest)"],
            [[r["class"], num(r["precision"]), num(r["recall"]), num(r["f1"]), str(r["support"]), num(r["roc_auc"])] for r in report["per_class"]],
        ),
        "## Confusion matrix",
        "",
        "Rows: true class; columns: predicted class.",
        "",
        *md_table(["true / predicted", *classes], [[name, *map(str, row)] for name, row in zip(classes, report["confusion_matrix"])]),
        "![confusion matrix](confusion.png)",
        "",
        "![ROC and precision-recall curves](roc.png)",
        "",
        "## Calibration",
        "",
        (
            f"Expected calibration error ({report['calibration']['bins']} equal-width bins of the top-class confidence): "
            f"{num(report['calibration']['ece_uncalibrated'])} before and {num(report['calibration']['ece_calibrated'])} after temperature scaling."
        ),
        "",
        "![reliability diagram](reliability.png)",
        "",
    ]
    ood = report["ood"]
    if ood is not None:
        split_gate = ood["split"]
        lines += [
            "## Out-of-distribution gate",
            "",
            f"Mahalanobis score on pooled features (Lee et al. 2018); images scoring below {ood['threshold']:.1f} are rejected.",
            "",
            f"- {report['split']} split: {split_gate['rejected']} of {split_gate['images']} images rejected ({pct(split_gate['rejected_rate'])})",
        ]
        if "ungradable" in ood:
            lines += [f"- ungradable images of the split: {ood['ungradable']['rejected']} of {ood['ungradable']['images']} rejected"]
        if "folder" in ood:
            folder = ood["folder"]
            lines += [
                (
                    f"- `{folder['folder']}`: {folder['rejected']} of {folder['files']} files rejected "
                    f"({folder['quality_rejected']} by the quality gate, {folder['gate_rejected']} by the OOD gate)"
                ),
                "",
                *md_table(["File", "Stage", "Rejected", "Reason"], [[f"`{n}`", o["stage"], "yes" if o["rejected"] else "no", o["reason"]] for n, o in folder["outcomes"].items()]),
            ]
        lines += [""]
    if point is not None:
        this_model = ["**this model**", pct(point["sensitivity"]["value"]), pct(point["specificity"]["value"]), f"{report['split']} split, n={report['images']}"]
        lines += [
            "## Reference points",
            "",
            "Published results on other populations, cameras and case definitions: for orientation, not a head-to-head comparison.",
            "",
            *md_table(
                ["System", "Sensitivity", "Specificity", "Setting"],
                [*([r["name"], pct(r["sensitivity"]), pct(r["specificity"]), r["note"]] for r in report["references"]), this_model],
            ),
        ]
    return "\n".join(lines)


def summary_table(report: dict[str, Any]) -> Table:
    """The headline numbers of a report: what a screening study's abstract states."""
    unit = report.get("clinical", {}).get("unit_of_analysis", {}).get("resampled", "images")
    table = Table(title=f"{report['scheme']}: {report['split']} split, {report['images']} images; intervals resample {unit}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("95% CI (bootstrap)", justify="right")
    point = report["operating_point"]
    if point is not None:
        locked = "locked" if report["threshold"]["locked"] else "none locked: argmax"
        table.add_row(f"threshold ({locked})", f"{point['threshold']:.4f}", "")
        for name, title in RATE_NAMES.items():
            table.add_row(title, pct(point[name]["value"]), ci(point[name]["ci_bootstrap"]))
    clinical = report.get("clinical")
    if clinical and "analyses" in clinical:
        for key, title in (("intention_to_screen", "intention to screen"), ("accepted_only", "accepted only")):
            for name in ("sensitivity", "specificity"):
                entry = clinical["analyses"][key][name]
                table.add_row(f"{name.capitalize()} ({title})", pct(entry["value"]), ci(entry["ci_bootstrap"]))
    table.add_row("ROC-AUC", num(report["roc_auc"]), ci(point["roc_auc_ci_bootstrap"], num) if point else "")
    pr_ci = clinical["figures"]["pr_auc"]["ci_bootstrap"] if clinical else None
    table.add_row("PR-AUC", num(report["pr_auc"]), ci(pr_ci, num) if pr_ci else "")
    table.add_row("accuracy", pct(report["accuracy"]), "")
    if report["qwk"] is not None:
        table.add_row("quadratic weighted kappa", num(report["qwk"]), "")
    calibration = report["calibration"]
    table.add_row("ECE (T=1 -> calibrated)", f"{num(calibration['ece_uncalibrated'])} -> {num(calibration['ece_calibrated'])}", "")
    gradable = report["gradable"]
    table.add_row("gradable rate", f"{pct(gradable['rate'])} ({gradable['gradable']}/{gradable['total']})", "")
    ood = report["ood"]
    if ood is not None:
        table.add_row("OOD gate rejects (split)", f"{ood['split']['rejected']}/{ood['split']['images']}", "")
        if "folder" in ood:
            folder = ood["folder"]
            table.add_row("--ood folder rejected", f"{folder['rejected']}/{folder['files']} ({folder['quality_rejected']} quality, {folder['gate_rejected']} gate)", "")
    return table


# -- figures ---------------------------------------------------------------------------------------
def _plot_roc(y: np.ndarray, probs: np.ndarray, classes: list[str], point: dict[str, Any] | None, path: Path) -> None:
    """ROC and precision-recall curves; binary: of the positive class with the operating point marked."""
    fig = Figure(figsize=(10, 4.4))
    ax_roc, ax_pr = fig.subplots(1, 2)
    shown = [1] if len(classes) == 2 else range(len(classes))
    for c in shown:
        hits = y == c
        if not 0 < hits.sum() < len(hits):
            continue
        fpr, tpr, _ = roc_curve(hits, probs[:, c])
        precision, recall, _ = precision_recall_curve(hits, probs[:, c])
        label = classes[c] if len(classes) > 2 else f"{classes[c]} (positive)"
        ax_roc.plot(fpr, tpr, label=label)
        ax_pr.plot(recall, precision, label=label)
    if point is not None and point["sensitivity"]["value"] is not None:
        sens, spec, ppv = (point[k]["value"] for k in ("sensitivity", "specificity", "ppv"))
        text = f"locked threshold {point['threshold']:.3f}"
        if spec is not None:
            ax_roc.plot([1 - spec], [sens], "o", color="tab:red", label=text)
        if ppv is not None:
            ax_pr.plot([sens], [ppv], "o", color="tab:red", label=text)
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax_roc.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC" + (" (one-vs-rest)" if len(classes) > 2 else ""), xlim=(0, 1), ylim=(0, 1.02))
    ax_pr.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def _plot_confusion(confusion: np.ndarray, classes: list[str], path: Path) -> None:
    """Counts with the row (true class) percentage; colour by the row fraction."""
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    side = 2.2 + 0.9 * len(classes)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.subplots()
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, f"{count}\n{fraction[i, j]:.0%}", ha="center", va="center", color="white" if fraction[i, j] > 0.5 else "black", fontsize=9)
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=30, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    save_figure(fig, path)


def _plot_reliability(before: Reliability, after: Reliability, temperature: float, path: Path) -> None:
    """Accuracy against top-class confidence per bin, before and after temperature scaling."""
    fig = Figure(figsize=(10, 4.4))
    for ax, bins, title in zip(fig.subplots(1, 2), (before, after), ("uncalibrated (T = 1)", f"temperature-scaled (T = {temperature:.2f})")):
        edges = np.array(bins.edges)
        accuracy = np.nan_to_num(np.array(bins.accuracy))
        ax.bar(edges[:-1], accuracy, width=np.diff(edges), align="edge", edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
        ax.set(xlabel="confidence (top class)", ylabel="accuracy", title=f"{title}: ECE {bins.ece:.3f}", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)

