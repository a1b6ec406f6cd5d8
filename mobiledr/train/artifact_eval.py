"""``mobiledr evaluate BUNDLE``: the clinical report of the artifacts that ship, from their own outputs.

Every readable image of the split (the one the bundle's checkpoint was trained with, its sha256
verified) goes through each artifact as a phone runs it: the decision is the manifest's (``probs``
at the locked threshold), the OOD gate the manifest's (``ood_score`` below its threshold rejects),
and the analysis is :func:`mobiledr.train.clinical.analyse`'s: flow, intention to screen next to
accepted only, per participant, misses by grade, intervals that resample patients. The PyTorch
reference runs on the same images, and each artifact's gate verdicts (the tolerance policy's
non-inferiority and OOD-agreement rules on the paired deltas) are reported with it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import CachedDataset
from mobiledr.data.geometry import resize_square
from mobiledr.data.splits import SPLITS, SplitFile
from mobiledr.errors import MobiledrError, one_line
from mobiledr.export.manifest import Manifest
from mobiledr.io import atomic_write_json, atomic_write_text
from mobiledr.parity.compare import Decision, agreements, clinical
from mobiledr.parity.policy import Policy
from mobiledr.progress import progress_bar
from mobiledr.reporting import ci, json_safe, md_table, pct
from mobiledr.runners import RunnerUnavailable, artifact_runner, reference_checkpoint, reference_runner
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.clinical import SplitOutputs, analyse
from mobiledr.train.clinical import markdown as clinical_markdown
from mobiledr.train.report import dataset_flow, grade_name
from mobiledr.train.report import split_warnings

log = logging.getLogger(__name__)
REFERENCE = "pytorch-reference"


@dataclasses.dataclass
class _Split:
    keys: list[str]
    labels: np.ndarray
    grades: list[str]
    patients: list[str]
    images: np.ndarray  # (N, 3, S, S) float32 0-255, geometric stage


def _read_split(checkpoint: Checkpoint, split: str, data: Path | None, splits: Path | None, size: int) -> tuple[_Split, Cache, SplitFile, Path, Path]:
    if split not in SPLITS:
        raise MobiledrError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    cache_path = Path(data) if data is not None else Path(checkpoint.provenance.get("cache") or "")
    split_path = Path(splits) if splits is not None else Path(checkpoint.provenance.get("split_file") or "")
    if not str(cache_path) or not cache_path.exists():
        raise MobiledrError(f"{cache_path}: the checkpoint's cache not found (pass --data)")
    cache = Cache.open(cache_path)
    split_file = SplitFile.read(split_path, checkpoint.provenance.get("split_sha256"))
    if split_file.scheme != checkpoint.scheme:
        raise MobiledrError(f"{split_path}: split file uses scheme {split_file.scheme}, the bundle's model {checkpoint.scheme}")
    if cache.spec.mode != checkpoint.preprocess.mode:
        raise MobiledrError(f"{cache_path}: a {cache.spec.mode} cache cannot feed a {checkpoint.preprocess.mode} model")
    dataset = CachedDataset(cache, split_file, split)  # checks the split against the cache
    by_key = {e.key: e for e in cache.entries}
    entries = [entry for entry, _ in dataset.items] + [by_key[r.key] for r in split_file.rows_of(split) if r.label is None and r.key in by_key]
    labels = np.r_[np.array(dataset.labels, dtype=np.int64), -np.ones(len(entries) - len(dataset.items), dtype=np.int64)]
    patients = {r.key: r.patient_id for r in split_file.rows}
    images = []
    with progress_bar(f"reading the {split} split", len(entries)) as bar:
        for entry in entries:
            image = cache.image(entry)
            images.append(image if image.shape[0] == size else resize_square(image, size))
            bar.advance()
    chw = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32)
    result = _Split([e.key for e in entries], labels, [grade_name(e.record) for e in entries], [patients.get(e.key, "") for e in entries], chw)
    return result, cache, split_file, cache_path, split_path


def _outputs(split: _Split, produced: dict[str, np.ndarray], ood_threshold: float | None) -> SplitOutputs:
    if "probs" not in produced:
        raise MobiledrError("the artifact has no 'probs' output: there is no decision to evaluate")
    scores = produced.get("ood_score")
    accepted = (scores.reshape(len(split.keys)) >= ood_threshold) if scores is not None and ood_threshold is not None else np.ones(len(split.keys), bool)
    return SplitOutputs(split.keys, split.labels, produced["probs"].reshape(len(split.keys), -1).astype(np.float64), accepted,
                        split.grades, split.patients)  # fmt: skip


def _gates(policy: Policy, precision: str, split: _Split, reference: dict[str, np.ndarray], produced: dict[str, np.ndarray], decision: Decision,
           ood_threshold: float | None, resamples: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """The policy's decision-level rules on the analysed (gradable) images, paired with the reference,
    patients resampled: non-inferiority of sensitivity and specificity, agreements."""
    gradable = split.labels >= 0
    groups = [f"patient:{p}" if p else f"image:{k}" for p, k in zip(split.patients, split.keys)] if any(split.patients) else None
    ref = {k: v[gradable] for k, v in reference.items()}
    act = {k: v[gradable] for k, v in produced.items()}
    outcome = clinical(split.labels[gradable], ref["probs"], act["probs"], decision, resamples, seed,
                       groups=np.array(groups, dtype=object)[gradable] if groups else None)  # fmt: skip
    agreement = agreements(ref, act, decision, ood_threshold)
    if not policy.has(precision):
        return {"verdict": "FAIL", "reasons": [f"the tolerance policy {policy.source} has no rules for precision {precision}"], "checks": []}
    checks = policy.check(precision, {}, agreement, outcome)  # no element-wise errors: the decision-level rules only
    failed = [f"{c.rule} = {c.value if c.value is None else round(c.value, 4)} (limit {c.limit})" + (f"; {c.note}" if c.note else "")
              for c in checks if c.ok is False]  # fmt: skip
    return {"verdict": "FAIL" if failed else "PASS", "reasons": failed, "checks": [dataclasses.asdict(c) for c in checks],
            "paired": outcome, "agreement": agreement, "policy": policy.source}  # fmt: skip


def evaluate_bundle(
    bundle: Path, artifacts: list[str] | None = None, split: str = "test", data: Path | None = None, splits: Path | None = None,
    out: Path | None = None, resamples: int = 1000, seed: int = 0, prevalence: float | None = None, threads: int | None = None,
    policy: Policy | None = None,
) -> tuple[dict[str, Any], Path]:  # fmt: skip
    """Evaluate every selected artifact (default: all that run here) on ``split``; writes
    ``out/<artifact>/report.{json,md}`` and ``out/summary.{json,md}``; returns the summary and ``out``."""
    bundle = Path(bundle)
    manifest = Manifest.load(bundle)
    policy = policy or Policy.load()
    wanted = manifest.artifacts if not artifacts else [manifest.artifact(a) for a in artifacts]
    checkpoint_path = reference_checkpoint(manifest, None)
    checkpoint = Checkpoint.load(checkpoint_path)
    size = manifest.model["input_size"]
    data_split, cache, split_file, cache_path, split_path = _read_split(checkpoint, split, data, splits, size)
    out = Path(out) if out is not None else bundle / "evaluation" / split
    decision = Decision.from_manifest(manifest.decision)
    ood_threshold = manifest.ood["threshold"] if manifest.ood else None
    labels = list(manifest.labels)
    common = {
        "bundle": str(bundle.resolve()), "split": split, "cache": str(Path(cache_path).resolve()), "split_file": str(Path(split_path).resolve()),
        "split_sha256": split_file.sha256, "scheme": manifest.label_scheme, "classes": labels, "decision": manifest.decision,
        "ood_gate": manifest.ood, "warnings": split_warnings(split, split_file),
    }  # fmt: skip
    flow = dataset_flow(cache)

    def report_for(name: str, info: dict[str, Any], produced: dict[str, np.ndarray]) -> dict[str, Any]:
        analysis = analyse(_outputs(data_split, produced, ood_threshold), labels, decision.threshold if decision.binary else None,
                           manifest.label_scheme, resamples, seed, prevalence, flow)  # fmt: skip
        return {**common, "artifact": name, **info, "clinical": analysis}

    with reference_runner(manifest, checkpoint_path, threads) as runner:
        with progress_bar("PyTorch reference", len(data_split.images)) as bar:
            reference = runner.run(data_split.images, bar.advance)
    reports = {REFERENCE: report_for(REFERENCE, {"format": "pytorch-eager", "precision": "fp32", "checkpoint": str(checkpoint_path)}, reference)}
    skipped: dict[str, str] = {}
    for entry in wanted:
        info = {key: entry[key] for key in ("file", "format", "precision", "runtime", "backend") if key in entry}
        try:
            runner = artifact_runner(bundle, manifest, entry, threads)
        except RunnerUnavailable as exc:
            if artifacts:  # asked for by name: it must run
                raise MobiledrError(f"{entry['file']}: cannot run here: {one_line(exc)}") from None
            skipped[entry["file"]] = one_line(exc)
            continue
        try:
            with runner, progress_bar(entry["file"], len(data_split.images)) as bar:
                produced = runner.run(data_split.images, bar.advance)
        except Exception as exc:  # a crash or a misshapen output: reported, the other artifacts still run
            if artifacts:
                raise MobiledrError(f"{entry['file']}: runtime error: {one_line(exc)}") from None
            log.debug("runner for %s failed", entry["file"], exc_info=True)
            skipped[entry["file"]] = f"runtime error: {one_line(exc)}"
            continue
        report = report_for(entry["file"], info, produced)
        report["gates"] = _gates(policy, entry["precision"], data_split, reference, produced, decision, ood_threshold, resamples, seed)
        reports[entry["file"]] = report
    for name, report in reports.items():
        folder = out / name
        safe = json_safe(report)
        atomic_write_json(folder / "report.json", safe)
        atomic_write_text(folder / "report.md", markdown(safe))
    summary = json_safe({**common, "artifacts": {name: _headline(r) for name, r in reports.items()}, "skipped": skipped})
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return summary, out


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures a summary table shows for one artifact."""
    c = report["clinical"]
    head: dict[str, Any] = {"precision": report.get("precision"), "format": report.get("format"),
                            "system_gradable_rate": c["figures"]["system_gradable_rate"], "roc_auc": c["figures"]["roc_auc"],
                            "resampled": c["unit_of_analysis"]["resampled"]}  # fmt: skip
    if "analyses" in c:
        for key in ("intention_to_screen", "accepted_only"):
            head[key] = {m: {"value": c["analyses"][key][m]["value"], "ci": c["analyses"][key][m]["ci_bootstrap"]} for m in ("sensitivity", "specificity")}
    if "gates" in report:
        head["gate_verdict"], head["gate_reasons"] = report["gates"]["verdict"], report["gates"]["reasons"]
    return head


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Clinical evaluation of `{report['artifact']}`: {report['split']} split",
        "",
        f"- Bundle: `{report['bundle']}`; artifact format {report.get('format')}, precision {report.get('precision')}",
        f"- Data: cache `{report['cache']}`, split file `{report['split_file']}` (sha256 verified against the checkpoint)",
        f"- Decision (the manifest's): {report['decision']['rule']}"
        + (f", threshold {report['decision']['threshold']:.4f}" if report["decision"].get("threshold") is not None else ""),
        f"- OOD gate (the manifest's): {report['ood_gate']['rule'] if report['ood_gate'] else 'none in this bundle: every image accepted'}",
        "",
        *[f"> **Warning**: {w}." for w in report["warnings"]],
        "",
    ]
    gates = report.get("gates")
    if gates:
        rows = [[c["rule"], c["limit"], "-" if c["value"] is None else f"{c['value']:.4g}", {True: "ok", False: "**FAIL**", None: "not evaluated"}[c["ok"]],
                 c["note"]] for c in gates["checks"]]  # fmt: skip
        lines += [f"## Gate verdict against the PyTorch reference: **{gates['verdict']}**", "",
                  f"Paired on the same gradable images, {gates.get('paired', {}).get('unit', 'images')} resampled; policy `{gates.get('policy')}`.", "",
                  *md_table(["Rule", "Limit", "Value", "Result", "Note"], rows)]  # fmt: skip
    lines += clinical_markdown(report["clinical"], report["split"])
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any]) -> str:
    """Every artifact's headline next to the reference's."""
    rows = []
    for name, head in summary["artifacts"].items():
        its, acc = head.get("intention_to_screen"), head.get("accepted_only")

        def cell(part: dict[str, Any] | None, measure: str) -> str:
            return "n/a" if part is None else f"{pct(part[measure]['value'])} ({ci(part[measure]['ci'])})"

        gate = head.get("gate_verdict", "reference")
        rows.append([f"`{name}`", str(head["precision"]), cell(its, "sensitivity"), cell(its, "specificity"), cell(acc, "sensitivity"),
                     cell(acc, "specificity"), pct(head["system_gradable_rate"]["value"]), gate])  # fmt: skip
    lines = [
        f"# Clinical evaluation of `{Path(summary['bundle']).name}`: {summary['split']} split",
        "",
        *[f"> **Warning**: {w}." for w in summary["warnings"]],
        "",
        "Intention to screen (ITS): every gradable image, gate rejects count as referrals. Accepted: only images the OOD gate accepts. "
        "95% CIs resample patients where the split file has patient ids.",
        "",
        *md_table(["Artifact", "Precision", "ITS sensitivity", "ITS specificity", "Accepted sensitivity", "Accepted specificity",
                   "System gradable rate", "Gate"], rows),  # fmt: skip
    ]
    lines += [f"- `{name}`: skipped, {why}" for name, why in summary["skipped"].items()]
    return "\n".join(lines) + "\n"
