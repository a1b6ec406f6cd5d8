"""The parity report: JSON (everything), Markdown (for a reviewer) and the terminal table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from mobiledr.io import atomic_write_json, atomic_write_text
from mobiledr.reporting import ci, json_safe, md_table, num, pct

FOLDER = "parity"  # inside the bundle, next to the manifest
FLIPS_SHOWN = 20
VERDICT_STYLE = {"PASS": "green", "FAIL": "red", "SKIPPED": "yellow"}


def _sci(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "exact" if value > 0 else "-inf"
    return f"{value:.3g}"


def worst_error(artifact: dict[str, Any]) -> str:
    """The headline element-wise error: max |error| of probs (or the first output)."""
    errors = artifact.get("errors")
    if not errors:
        return "-"
    name = "probs" if "probs" in errors else next(iter(errors))
    return f"{name} {_sci(errors[name]['max_abs'])}"


def _signed(measure: str) -> Any:
    if measure == "auc":
        return lambda v: "n/a" if v is None else f"{v:+.4f}"
    return lambda v: "n/a" if v is None else f"{100 * v:+.1f} pp"


def _delta(artifact: dict[str, Any], measure: str) -> str:
    """artifact - reference for ``measure`` with its paired bootstrap CI."""
    outcome = artifact.get("clinical")
    if not outcome or not outcome.get("defined") or measure not in outcome["measures"]:
        return "n/a"
    delta, show = outcome["measures"][measure]["delta"], _signed(measure)
    return show(delta["value"]) + (f" ({ci(delta['ci'], show)})" if delta["ci"] else "")


def _agreement(artifact: dict[str, Any]) -> str:
    value = artifact.get("agreement", {}).get("decision")
    return "-" if value is None else pct(value) if value < 0.9995 or value == 1 else f"{100 * value:.2f}%"


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [a["file"], a["format"], a["precision"], f"{a['runtime']}/{a['backend']}", worst_error(a), _agreement(a), _delta(a, "auc"), a["verdict"]]
        for a in report["artifacts"]
    ]


SUMMARY_HEADER = ["artifact", "format", "precision", "runtime", "worst error", "decision agreement", "delta AUC (95% CI)", "verdict"]


def terminal_table(report: dict[str, Any]) -> Table:
    """The summary for the terminal (the format column left out: the file names say it)."""
    table = Table("artifact", "precision", "runtime", "worst error", "decision agr.", "delta AUC (95% CI)", "verdict",
                  title=f"parity: {report['inputs']['images']} images from {report['inputs']['source']}")  # fmt: skip
    for row, artifact in zip(summary_rows(report), report["artifacts"], strict=True):
        table.add_row(row[0], *row[2:-1], f"[{VERDICT_STYLE[artifact['verdict']]}]{row[-1]}[/]")
    return table


def reasons(report: dict[str, Any]) -> list[str]:
    """One line per reason an artifact failed or was skipped, and per bundle-level problem."""
    lines = [f"{a['verdict']} {a['file']}: {reason}" for a in report["artifacts"] for reason in a["reasons"]]
    return lines + [f"FAIL bundle: {problem}" for problem in report["bundle_checks"]["problems"]]


def _clinical_rows(outcome: dict[str, Any]) -> list[list[str]]:
    rows = []
    for measure, sides in outcome["measures"].items():
        show = num if measure == "auc" else pct
        rows.append([measure] + [f"{show(sides[s]['value'])} ({ci(sides[s]['ci'], show)})" if sides[s]["ci"] else show(sides[s]["value"]) for s in ("reference", "artifact")]
                    + [_delta({"clinical": outcome}, measure)])  # fmt: skip
    return rows


def _artifact_section(a: dict[str, Any], labels: list[str]) -> list[str]:
    lines = [f"### {a['file']}: {a['verdict']}", "", f"{a['format']}, {a['precision']}, {a['runtime']}/{a['backend']}, {a['size_bytes'] / 1e6:.2f} MB", ""]
    if a["reasons"]:
        lines += ["Why:", "", *(f"- {r}" for r in a["reasons"]), ""]
    if "errors" not in a:
        return lines
    lines += md_table(["output", "max abs", "mean abs", "max rel", "cosine", "SQNR dB"],
                      [[n, _sci(e["max_abs"]), _sci(e["mean_abs"]), _sci(e["max_rel"]), f"{e['cosine']:.6f}", _sci(e["sqnr_db"])] for n, e in a["errors"].items()])  # fmt: skip
    ag = a["agreement"]
    parts = [f"top-1 {pct(ag['top1'])}" if "top1" in ag else "", f"decision {pct(ag['decision'])}" if "decision" in ag else "",
             f"OOD gate {pct(ag['ood'])}" if "ood" in ag else "",
             f"heatmap correlation mean {ag['heatmap_correlation']['mean']:.4f} (min {ag['heatmap_correlation']['min']:.4f})" if "heatmap_correlation" in ag else ""]  # fmt: skip
    lines += ["Agreement with the reference: " + ", ".join(p for p in parts if p), ""]
    if a["clinical"] and a["clinical"].get("defined"):
        lines += md_table(["measure", "reference (95% CI)", "artifact (95% CI)", "artifact - reference (paired 95% CI)"], _clinical_rows(a["clinical"]))
    lines += md_table(["rule", "limit", "value", "result"],
                      [[c["rule"], c["limit"], _sci(c["value"]), {True: "ok", False: "**FAIL**", None: f"not evaluated: {c['note']}"}[c["ok"]]]
                       for c in a["checks"] + [{**g, "rule": f"golden {g['rule']}"} for g in a["golden"]["checks"]]])  # fmt: skip
    if a["flipped"]:
        shown = sorted(a["flipped"], key=lambda f: abs(f["reference_margin"]))[:FLIPS_SHOWN]
        lines += [f"Flipped decisions: {len(a['flipped'])} (closest to the threshold first{', first ' + str(FLIPS_SHOWN) if len(a['flipped']) > FLIPS_SHOWN else ''})", ""]
        lines += md_table(["image", "label", "reference", "artifact", "reference margin", "artifact margin"],
                          [[f["image"], "-" if f["label"] is None else labels[f["label"]], labels[f["reference"]], labels[f["artifact"]],
                            f"{f['reference_margin']:+.4f}", f"{f['artifact_margin']:+.4f}"] for f in shown])  # fmt: skip
    if a.get("localization"):
        loc = a["localization"]
        lines += [f"Localization ({loc['method']}): {loc['summary']}", ""]
        if loc.get("layers"):
            lines += md_table(list(loc["layers"][0].keys()), [[str(v if not isinstance(v, float) else f"{v:.3g}") for v in row.values()] for row in loc["layers"]])
    return lines


def markdown(report: dict[str, Any]) -> str:
    inputs, labels = report["inputs"], report["model"]["labels"]
    decision = report["model"]["decision"]
    lines = [
        f"# Parity report: {Path(report['bundle']).name} ({report['target']})",
        "",
        f"**Verdict: {report['verdict']}**" + (f" (failed: {', '.join(report['failed'])})" if report["failed"] else ""),
        "",
        f"- Bundle: `{report['bundle']}` (manifest sha256 `{report['manifest_sha256'][:16]}...`), created {report['created']}, mobiledr {report['mobiledr_version']}",
        f"- Reference: PyTorch eager float32 from `{report['checkpoint']}`",
        f"- Model: {report['model']['name']} at {report['model']['input_size']} px; decision: {decision['rule']}"
        + (f" (threshold {decision['threshold']:.4f})" if decision.get("threshold") is not None else ""),
        f"- Inputs: {inputs['images']} images from {inputs['source']}"
        + (f"; classes {', '.join(f'{labels[i]} {n}' for i, n in enumerate(inputs['class_counts']))}" if inputs["class_counts"] else "; unlabelled")
        + (f"; {len(inputs['skipped'])} skipped (first: {inputs['skipped'][0]})" if inputs["skipped"] else ""),
        f"- Policy: `{report['policy']['source']}`; paired bootstrap {report['bootstrap']['resamples']} resamples of "
        f"{report['bootstrap'].get('unit', 'images')} ({report['bootstrap'].get('clusters', '?')}), seed {report['bootstrap']['seed']}",
        *([f"- Machine: {report['machine']['cpu']} ({report['machine']['cores']} cores), {report['machine']['system']}; {report['seconds']} s"]
          if "machine" in report else []),
        "",
        *md_table(SUMMARY_HEADER, summary_rows(report)),
    ]
    ref = report["reference"]["clinical"]
    if ref and ref.get("defined"):
        lines += ["## Reference screening performance", ""]
        lines += md_table(["measure", "reference (95% CI)"], [[m, f"{(num if m == 'auc' else pct)(s['reference']['value'])} ({ci(s['reference']['ci'], num if m == 'auc' else pct)})"] for m, s in ref["measures"].items()])
    checks = report["bundle_checks"]
    geo = checks["geometric_pairs"]
    lines += [
        "## Bundle checks",
        "",
        f"- Integrity (manifest sha256 of every file): {'ok' if not checks['integrity'] else '; '.join(checks['integrity'])}",
        f"- Golden geometric pairs: {geo['pairs']} photographs, max difference {geo['max_abs_difference']} grey levels (limit {geo['limit']})",
        "- Reference reproduces the golden vectors: " + ("ok" if all(c["ok"] is not False for c in report["reference"]["golden"]) else "**no**"),
        *(f"- **Problem**: {p}" for p in checks["problems"]),
        "",
        "## Artifacts",
        "",
    ]
    for artifact in report["artifacts"]:
        lines += _artifact_section(artifact, labels)
    lines += ["## Tolerance policy", "", "```yaml", yaml.safe_dump(report["policy"]["tables"], sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], paths: list[Path]) -> list[Path]:
    """Write ``X.json`` and ``X.md`` for every ``X`` in ``paths`` (suffix replaced); return what was written."""
    data, text = json_safe(report), markdown(report)
    written = []
    for path in paths:
        atomic_write_json(path.with_suffix(".json"), data)
        atomic_write_text(path.with_suffix(".md"), text)
        written += [path.with_suffix(".json"), path.with_suffix(".md")]
    return written
