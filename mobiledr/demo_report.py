"""The demo's report: one self-contained HTML page over everything ``mobiledr demo`` wrote into OUT.

Every image is embedded as a base64 PNG data URI and the CSS is inline: no JavaScript, no external
URL, so the file can be mailed or attached to a ticket. Each section reads its own files; a file
that a failed (or skipped) stage did not write becomes a "missing" note naming the stage, never an
exception. ``browser_check`` and ``render_screenshot`` load the page in headless Chromium.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobiledr.errors import MobiledrError, one_line
from mobiledr.io import atomic_write_text
from mobiledr.reporting import ci, num, pct

REPORT = "report.html"
BUNDLES = ("android", "ios")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATES = {"sensitivity": "Sensitivity", "specificity": "Specificity", "ppv": "PPV", "npv": "NPV"}
NATIVE = "native"  # mobiledr.bench.desktop.NATIVE: XNNPACK .pte programs through the C++ runner

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       max-width: 1240px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #e3e7ee; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #5a6478; font-size: 13px; margin: 0 0 16px; }
.summary { background: #f4f7fb; border-left: 4px solid #3b6fd8; padding: 12px 16px; }
figure { margin: 12px 0 20px; } figcaption { color: #5a6478; font-size: 13px; margin-top: 4px; }
img { max-width: 100%; height: auto; border: 1px solid #e3e7ee; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13.5px; }
th, td { border: 1px solid #d8dde6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f8; } table.wide td { white-space: nowrap; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; } .PASS { color: #17803d; } .FAIL { color: #c62828; } .SKIPPED { color: #a86b00; }
.why { display: block; font-weight: normal; color: #5a6478; font-size: 12px; max-width: 320px; white-space: normal; text-align: left; }
.missing { background: #fff6e5; border-left: 4px solid #e0a100; padding: 8px 12px; }
pre { background: #f4f6f9; padding: 10px 12px; overflow-x: auto; font-size: 13px; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
"""


def stage_of(rel: str) -> str | None:
    """The demo stage that writes ``rel`` (a path relative to OUT), for the "missing" notes."""
    if rel.startswith(("contact_sheet", "data", "splits", "cache")):
        return "data"
    if rel.startswith("bundle/"):
        return "parity" if "/parity/" in rel else "bench" if "/bench/" in rel else "export"
    if rel.startswith("run/"):
        return "evaluate" if rel.startswith("run/eval-") else "explain" if rel.startswith("run/explain") else "train"
    return None


def e(value: Any) -> str:
    """Text escaped for HTML (quotes too, so it can go into attributes)."""
    return html.escape(str(value), quote=True)


@dataclass
class Bundle:
    name: str
    manifest: dict[str, Any] | None
    parity: dict[str, Any] | None
    bench: dict[str, Any] | None
    problems: dict[str, str] = field(default_factory=dict)  # relative path -> why it could not be read


@dataclass
class Inputs:
    """Everything the report reads from OUT, loaded once; a JSON file that cannot be read is None and
    its reason is in ``problems``."""

    out: Path
    timings: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    summary: dict[str, Any] | None
    explanations: dict[str, Any] | None
    bundles: dict[str, Bundle]
    problems: dict[str, str]

    @classmethod
    def load(cls, out: Path) -> Inputs:
        problems: dict[str, str] = {}

        def read(rel: str) -> Any:
            data, problem = _read_json(out / rel)
            if problem:
                problems[rel] = problem
            return data

        bundles = {}
        for name in BUNDLES:
            base = f"bundle/{name}"
            bundles[name] = Bundle(name, read(f"{base}/manifest.json"), read(f"{base}/parity/report.json"), read(f"{base}/bench/bench.json"))
        return cls(out, read("timings.json"), read("run/eval-test/report.json"), read("run/summary.json"), read("run/explain/explanations.json"),
                   bundles, problems)  # fmt: skip

    def stage(self, name: str) -> dict[str, Any] | None:
        stages = (self.timings or {}).get("stages") or []
        return next((s for s in stages if isinstance(s, dict) and s.get("name") == name), None)

    def missing(self, rel: str, what: str = "") -> str:
        """A note for a file the report needs and could not read: which stage writes it and what became of that stage."""
        stage = stage_of(rel)
        record = self.stage(stage) if stage else None
        if stage is None:
            why = ""
        elif record is not None and record.get("error"):
            why = f"the {stage} stage failed: {record['error']}"
        elif record is not None:
            why = f"the {stage} stage finished without writing it"
        elif self.timings is not None:
            why = f"the {stage} stage did not run"
        else:
            why = f"written by the {stage} stage"
        problem = self.problems.get(rel, "missing")
        label = "Missing" if problem == "missing" else f"Unreadable ({e(problem)})"
        return f'<p class="missing">{label}: <code>{e(rel)}</code>{f" ({e(what)})" if what else ""}{f"; {e(why)}" if why else ""}.</p>'


def _read_json(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, one_line(exc)


# -- small pieces ------------------------------------------------------------------------------------
def image(inputs: Inputs, rel: str, alt: str, caption: str = "") -> str:
    """A PNG under OUT as a figure with an embedded data URI, or a missing note."""
    path = inputs.out / rel
    try:
        data = path.read_bytes()
    except OSError:
        return inputs.missing(rel, alt)
    if not data.startswith(PNG_SIGNATURE):
        inputs.problems[rel] = "not a PNG file"
        return inputs.missing(rel, alt)
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    figcaption = f"<figcaption>{e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{e(alt)}">{figcaption}</figure>'


def table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = (), css: str = "") -> str:
    """An HTML table; cells are already HTML (escape text before passing it); columns in ``numeric`` align right."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{f' class={css!r}' if css else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _model(inputs: Inputs) -> dict[str, Any] | None:
    for bundle in inputs.bundles.values():
        if isinstance(bundle.manifest, dict) and isinstance(bundle.manifest.get("model"), dict):
            return bundle.manifest["model"]
    return None


def _split_counts(out: Path) -> tuple[Counter[str], int, Counter[str]] | None:
    """Images per split, patients, images per class name, from OUT/splits.csv."""
    try:
        with (out / "splits.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, ValueError):
        return None
    return Counter(r.get("split") or "?" for r in rows), len({r.get("patient_id") for r in rows}), Counter(r.get("class_name") or "ungradable" for r in rows)


def _all_parity(inputs: Inputs) -> list[dict[str, Any]]:
    return [a for b in inputs.bundles.values() if isinstance(b.parity, dict) for a in b.parity.get("artifacts") or []]


# -- sections ----------------------------------------------------------------------------------------
def summary_section(inputs: Inputs) -> str:
    """One paragraph: model, data, decision threshold, test performance, parity and stages."""
    parts = []
    model, preset = _model(inputs), (inputs.timings or {}).get("preset")
    if model:
        config = model.get("config") or {}
        arch = f"MobileNetV3-{str(config.get('arch', '')).capitalize()}".rstrip("-") + (" + CBAM" if config.get("cbam") else "")
        name = f"<code>{e(model['name'])}</code>" if preset in (None, model["name"]) else f"<code>{e(model['name'])}</code>, preset <code>{e(preset)}</code>"
        parts.append(f"The model is {arch} ({name}): "
                     f"{model['params'] / 1e6:.2f} M parameters, {model['macs'] / 1e6:.1f} M MACs at {model['input_size']} px.")  # fmt: skip
    counts = _split_counts(inputs.out)
    if counts:
        splits, patients, classes = counts
        per_split = ", ".join(f"{splits[s]} {s}" for s in ("train", "val", "test") if s in splits)
        per_class = ", ".join(f"{n} {e(c)}" for c, n in sorted(classes.items()))
        parts.append(f"It was trained on {sum(splits.values())} synthetic fundus photographs of {patients} fake patients ({per_split}; {per_class}), generated by <code>mobiledr data synth</code>.")
    report = inputs.evaluation
    if isinstance(report, dict):
        threshold, point = report.get("threshold"), report.get("operating_point")
        if threshold and threshold.get("value") is not None:
            positive = report["classes"][1]
            parts.append(f"It refers (<em>{e(positive)}</em>) when the calibrated probability is at least {threshold['value']:.3f}: {e(threshold['chosen'])}.")
        if point:
            sens, spec = point["sensitivity"], point["specificity"]
            parts.append(f"On the {e(report['split'])} split ({report['images']} images): sensitivity {pct(sens['value'])} (95% CI {ci(sens['ci_bootstrap'])}), "
                         f"specificity {pct(spec['value'])} (95% CI {ci(spec['ci_bootstrap'])}), ROC-AUC {num(report['roc_auc'])}.")  # fmt: skip
        else:
            parts.append(f"On the {e(report['split'])} split ({report['images']} images): ROC-AUC {num(report['roc_auc'])}, accuracy {pct(report['accuracy'])}.")
    verdicts = Counter(a.get("verdict") for a in _all_parity(inputs))
    if verdicts:
        failed = [a["file"] for a in _all_parity(inputs) if a.get("verdict") == "FAIL"]
        text = f"Parity against PyTorch: {verdicts['PASS']} of {sum(verdicts.values())} artifacts PASS"
        text += f", {verdicts['FAIL']} FAIL ({e(', '.join(failed))})" if failed else ""
        text += f", {verdicts['SKIPPED']} SKIPPED (their runtime cannot run on this machine)" if verdicts["SKIPPED"] else ""
        parts.append(text + ".")
    stages = (inputs.timings or {}).get("stages") or []
    if stages:
        failed_stages = [s["name"] for s in stages if s.get("error")]
        status = f"{len(stages) - len(failed_stages)} of {len(stages)} stages completed" + (f" ({e(', '.join(failed_stages))} failed)" if failed_stages else "")
        total = inputs.timings.get("total_seconds")  # type: ignore[union-attr]
        mode = " with <code>--fast</code>" if inputs.timings.get("fast") else ""  # type: ignore[union-attr]
        parts.append(f"{status}{f' in {total / 60:.1f} min' if isinstance(total, int | float) else ''}{mode}.")
    if not parts:
        return '<p class="missing">Nothing to summarise: the demo wrote none of the files this report reads.</p>'
    return f'<p class="summary">{" ".join(parts)}</p>'


def data_section(inputs: Inputs) -> str:
    return image(inputs, "contact_sheet.png", "data contact sheet", "Samples per class of the synthetic data set (mobiledr data inspect).")


def training_section(inputs: Inputs) -> str:
    summary = inputs.summary if isinstance(inputs.summary, dict) else {}
    caption = "Loss and validation metrics per epoch (mobiledr train)."
    if "best_epoch" in summary:
        caption += f" Best epoch {summary['best_epoch']}" + (f", validation AUC {num(summary['val_auc'])}" if summary.get("val_auc") is not None else "") + "."
    return image(inputs, "run/curves.png", "training curves", caption)


def evaluation_section(inputs: Inputs) -> str:
    report = inputs.evaluation
    if not isinstance(report, dict):
        return inputs.missing("run/eval-test/report.json", "the clinical evaluation")
    parts = [f"<p>{e(report['split'].capitalize())} split: {report['images']} images, scheme <code>{e(report['scheme'])}</code> ({e(', '.join(report['classes']))}).</p>"]
    threshold, point = report.get("threshold"), report.get("operating_point")
    if threshold:
        value = "0.5 (argmax, none locked)" if threshold["value"] is None else f"{threshold['value']:.4f}"
        parts.append(f"<p>Decision threshold {value} on the calibrated probability of <em>{e(report['classes'][1])}</em>: {e(threshold['chosen'])}. "
                     "It was locked by training on the validation split, not re-chosen here.</p>")  # fmt: skip
    if point:
        rows = [[RATES[k], pct(point[k]["value"]), f"{point[k]['successes']} / {point[k]['trials']}", ci(point[k]["ci_bootstrap"]), ci(point[k]["ci_wilson"])] for k in RATES]
        parts.append(table(["Measure", "Estimate", "n / N", "95% CI (bootstrap)", "95% CI (Wilson)"], rows, (1, 2, 3, 4)))
        parts.append(f"<p>TP {point['tp']}, FP {point['fp']}, TN {point['tn']}, FN {point['fn']}.</p>")
    auc_ci = point.get("roc_auc_ci_bootstrap") if point else None
    facts = [f"ROC-AUC {num(report['roc_auc'])}" + (f" (95% CI {ci(auc_ci, num)})" if auc_ci else ""), f"PR-AUC {num(report['pr_auc'])}", f"accuracy {pct(report['accuracy'])}"]
    if report.get("qwk") is not None:
        facts.append(f"quadratic weighted kappa {num(report['qwk'])}")
    calibration = report.get("calibration") or {}
    if "ece_calibrated" in calibration:
        facts.append(f"expected calibration error {num(calibration.get('ece_uncalibrated'))} before and {num(calibration['ece_calibrated'])} after temperature scaling")
    parts.append(f"<p>{'; '.join(facts)}.</p>")
    parts.append(image(inputs, "run/eval-test/roc.png", "ROC curve with the operating point", "ROC and precision-recall curves; the red dot is the locked operating point."))
    parts.append(image(inputs, "run/eval-test/confusion.png", "confusion matrix", "Rows: true class; columns: predicted class, at the locked threshold."))
    parts.append(image(inputs, "run/eval-test/reliability.png", "reliability diagram", "Calibration before and after temperature scaling."))
    parts.append(shipped_table(inputs))
    return "".join(parts)


SHIPPED = "bundle/android/evaluation/test/summary.json"  # written by 'mobiledr evaluate BUNDLE' in the parity stage


def shipped_table(inputs: Inputs) -> str:
    """The shipped artifacts' clinical table (their own outputs, the manifest's decision and OOD gate)
    next to the PyTorch reference's; nothing when the demo did not get that far."""
    summary, _ = _read_json(inputs.out / SHIPPED)
    if not isinstance(summary, dict) or not isinstance(summary.get("artifacts"), dict):
        return ""

    def cell(head: dict[str, Any], part: str, measure: str) -> str:
        entry = (head.get(part) or {}).get(measure) or {}
        return f"{pct(entry.get('value'))} ({ci(entry.get('ci'))})" if entry else "n/a"

    rows = [
        [f"<code>{e(name)}</code>", e(head.get("precision")), cell(head, "intention_to_screen", "sensitivity"), cell(head, "intention_to_screen", "specificity"),
         cell(head, "accepted_only", "sensitivity"), cell(head, "accepted_only", "specificity"),
         pct((head.get("system_gradable_rate") or {}).get("value")), e(head.get("gate_verdict", "reference"))]
        for name, head in summary["artifacts"].items()
    ]  # fmt: skip
    unit = next((h.get("resampled") for h in summary["artifacts"].values()), "images")
    return (
        "<h3>The artifacts that ship, on the same test split</h3>"
        "<p>Each artifact's own outputs at the manifest's threshold, with its own OOD gate; intention to screen (ITS) counts a gate "
        f"reject as a referral, accepted-only analyses the images the gate accepts; 95% CIs resample {e(unit)}. The gate is the "
        "tolerance policy's verdict on the paired differences from the PyTorch reference.</p>"
        + table(["Artifact", "Precision", "ITS sensitivity", "ITS specificity", "Accepted sensitivity", "Accepted specificity", "System gradable rate", "Gate"],
                rows)  # fmt: skip
    )


def _explanation_caption(entry: dict[str, Any] | None, labels: list[str], threshold: float | None) -> str:
    if entry is None:
        return "(no entry in explanations.json)"
    probabilities = entry.get("probabilities") or {}
    if len(labels) == 2 and labels[1] in probabilities:
        rule = f"p({labels[1]}) = {probabilities[labels[1]]:.3f}, threshold {threshold if threshold is not None else 0.5:.3f}"
    else:
        rule = ", ".join(f"p({name}) = {p:.3f}" for name, p in probabilities.items())
    r = entry.get("heatmap_correlation")
    return (f"{Path(str(entry.get('source', ''))).name}: decision {entry.get('decision')} ({rule}); explaining {entry.get('explained_class')}; "
            f"exported heatmap vs Grad-CAM r = {num(r)}")  # fmt: skip


def explanations_section(inputs: Inputs) -> str:
    folder = inputs.out / "run" / "explain"
    panels = sorted(folder.glob("*_explain.png")) if folder.is_dir() else []
    info = inputs.explanations if isinstance(inputs.explanations, dict) else {}
    entries = [x for x in info.get("images") or [] if isinstance(x, dict)]
    by_name = {Path(str(x["output"])).name: x for x in entries if x.get("output")}
    labels, threshold = list(info.get("labels") or []), info.get("threshold")
    parts = ["<p>Per photograph: the geometric stage, saliency, Grad-CAM and the heatmap the exported model computes.</p>"] if panels else []
    if not panels:
        parts.append(inputs.missing("run/explain", "no *_explain.png panels"))
    elif not info:
        parts.append(inputs.missing("run/explain/explanations.json", "decisions and probabilities"))
    for panel in panels:
        parts.append(image(inputs, f"run/explain/{panel.name}", f"explanation {panel.stem}", _explanation_caption(by_name.get(panel.name), labels, threshold)))
    errors = [f"<li><code>{e(x.get('source'))}</code>: {e(x['error'])}</li>" for x in entries if x.get("error")]
    if errors:
        parts.append(f"<p>Photographs that could not be explained:</p><ul>{''.join(errors)}</ul>")
    return "".join(parts)


def _bench_row(rows: list[dict[str, Any]], artifact: str, runtime: str) -> dict[str, Any] | None:
    """The artifact's row on ``runtime``: at 1 thread if measured, measured rows first, the desktop first."""
    candidates = [r for r in rows if r.get("artifact") == artifact and r.get("runtime") == runtime]
    return min(candidates, key=lambda r: (r.get("threads") != 1, r.get("status") != "ok", r.get("device") != "desktop", r.get("threads", 0)), default=None)


def _latency(row: dict[str, Any] | None, measured: bool) -> str:
    if row is None:
        return "-" if measured else "not measured"
    if row.get("status") != "ok":
        error = str(row.get("error", ""))
        return f'<span title="{e(error)}">{e(row.get("status"))}</span><span class="why">{e(error if len(error) <= 90 else error[:87] + "...")}</span>'
    latency = row["latency_ms"]
    threads = "" if row.get("threads") == 1 else f" ({row['threads']} threads)"
    return f"{latency['p50']:.2f} / {latency['p90']:.2f}{threads}"


def _verdict(artifact: dict[str, Any] | None, bundle: Bundle) -> str:
    if bundle.parity is None:
        return "missing"
    if artifact is None:
        return "not checked"
    verdict = str(artifact.get("verdict"))
    reasons = artifact.get("reasons") or []
    why = f'<span class="why">{e(reasons[0])}{" (+%d more)" % (len(reasons) - 1) if len(reasons) > 1 else ""}</span>' if reasons and verdict != "PASS" else ""
    return f'<span class="verdict {e(verdict)}" title="{e("; ".join(reasons))}">{e(verdict)}</span>{why}'


def artifacts_section(inputs: Inputs) -> str:
    rows, notes = [], []
    for bundle in inputs.bundles.values():
        base = f"bundle/{bundle.name}"
        if not isinstance(bundle.manifest, dict):
            notes.append(inputs.missing(f"{base}/manifest.json", f"the {bundle.name} bundle"))
            continue
        if bundle.parity is None:
            notes.append(inputs.missing(f"{base}/parity/report.json", f"parity verdicts of the {bundle.name} bundle"))
        bench_rows = (bundle.bench.get("rows") or []) if isinstance(bundle.bench, dict) else []
        if bundle.name == "android" and bundle.bench is None:
            notes.append(inputs.missing(f"{base}/bench/bench.json", "latencies of the android bundle"))
        parity = {a.get("file"): a for a in (bundle.parity or {}).get("artifacts") or []} if isinstance(bundle.parity, dict) else {}
        for a in bundle.manifest.get("artifacts") or []:
            native = _bench_row(bench_rows, a["file"], NATIVE)
            rows.append([
                e(bundle.name), f"<code>{e(a['file'])}</code>", e(a.get("format", "")), e(a.get("precision", "")), e(a.get("runtime", "")),
                f"{a['size_bytes'] / 1e6:.2f}" if a.get("size_bytes") else "-", f"{a['macs'] / 1e6:.1f}" if a.get("macs") else "-",
                _latency(_bench_row(bench_rows, a["file"], a.get("runtime", "")), bool(bench_rows)),
                _latency(native, True) if bench_rows else "not measured",
                _verdict(parity.get(a["file"]), bundle),
            ])  # fmt: skip
        for failure in bundle.manifest.get("failures") or []:
            notes.append(f'<p class="missing">Export of {e(failure.get("format"))} into the {e(bundle.name)} bundle failed: {e(failure.get("error"))}</p>')
    header = ["Bundle", "File", "Format", "Precision", "Runtime", "Size (MB)", "MACs (M)", "Latency p50 / p90 (ms)", "Native runner p50 / p90 (ms)", "Parity"]
    parts = [table(header, rows, (5, 6, 7, 8), "wide")] if rows else []
    android = inputs.bundles["android"].bench
    if isinstance(android, dict):
        reference = _bench_row(android.get("rows") or [], "pytorch", "pytorch")
        settings = android.get("settings") or {}
        text = (f"Latencies: one image per inference on this machine, 1 thread, {settings.get('warmup', '?')} warm-up and {settings.get('iters', '?')} timed runs "
                "(mobiledr bench); the native runner is the C++ ExecuTorch program an Android app would embed.")  # fmt: skip
        if reference is not None and reference.get("status") == "ok":
            text += f" PyTorch eager reference: {reference['latency_ms']['p50']:.2f} / {reference['latency_ms']['p90']:.2f} ms."
        parts.append(f"<p>{e(text)} The ios bundle is measured on an iPhone with the harness app (Core ML prediction needs Apple hardware).</p>")
    sources = {str((b.parity.get("inputs") or {}).get("source")) for b in inputs.bundles.values() if isinstance(b.parity, dict) and isinstance(b.parity.get("inputs"), dict)}
    on = f" on {'; '.join(sorted(sources))}" if sources else ""
    parts.append(f"<p>Parity: each artifact's outputs against the PyTorch checkpoint{e(on)}, judged by the tolerances in "
                 "mobiledr/parity/tolerances.yaml (SKIPPED: the artifact's runtime does not run on this machine).</p>")  # fmt: skip
    return "".join(parts + notes)


def latency_section(inputs: Inputs) -> str:
    bench = inputs.bundles["android"].bench
    devices = "; ".join(f"{d.get('device')}: {d.get('cpu') or d.get('model') or d.get('kind')}" + (f", {d['cores']} cores" if d.get("cores") else "")
                        for d in bench.get("devices") or []) if isinstance(bench, dict) else ""  # fmt: skip
    caption = "p50 latency per artifact and runtime (whisker to p90), and latency against file size" + (f" ({devices})." if devices else ".")
    return image(inputs, "bundle/android/bench/bench.png", "latency chart", caption)


def timings_section(inputs: Inputs) -> str:
    if not isinstance(inputs.timings, dict):
        return inputs.missing("timings.json", "the stage timings")
    rows = [[e(s.get("name")), f"{s.get('seconds', 0):.1f}", "ok" if not s.get("error") else f'<span class="verdict FAIL">failed</span><span class="why">{e(s["error"])}</span>']
            for s in inputs.timings.get("stages") or []]  # fmt: skip
    total = inputs.timings.get("total_seconds")
    if isinstance(total, int | float):
        rows.append(["<strong>total</strong>", f"<strong>{total:.1f}</strong>", f"{total / 60:.1f} min"])
    mode = "--fast" if inputs.timings.get("fast") else "default settings"
    return f"<p>Wall-clock seconds per stage ({e(mode)}, preset {e(inputs.timings.get('preset', '?'))}).</p>" + table(["Stage", "Seconds", "Status"], rows, (1,))


def next_section(inputs: Inputs) -> str:
    android, ios = (shlex.quote(str(inputs.out / "bundle" / name)) for name in BUNDLES)
    commands = [
        ("With an Android phone attached (USB debugging on): latency on the phone, CPU and native runner", f"mobiledr bench {android} --device android --threads 1,4"),
        ("Parity on your own photographs (unlabelled) or on a prepared, labelled cache", f"mobiledr parity {android} --images YOUR_FUNDUS_PHOTOS/\nmobiledr parity {android} --data CACHE --splits splits.csv"),
        ("On a Mac: the Core ML artifacts' parity (skipped on Linux)", f"mobiledr parity {ios} --synthetic 200"),
        ("Train on a real data set (APTOS, EyePACS, Messidor...): see the README", "mobiledr train --preset thesis-dr --data CACHE --splits splits.csv --out runs/thesis-dr"),
    ]  # fmt: skip
    return "".join(f"<h3>{e(title)}</h3><pre><code>{e(command)}</code></pre>" for title, command in commands)


SECTIONS: list[tuple[str, str, Callable[[Inputs], str]]] = [
    ("data", "Data", data_section),
    ("training", "Training", training_section),
    ("evaluation", "Clinical evaluation", evaluation_section),
    ("explanations", "Explanations", explanations_section),
    ("artifacts", "Artifacts", artifacts_section),
    ("latency", "Latency", latency_section),
    ("timings", "Stage timings", timings_section),
    ("next", "What next", next_section),
]


def _safe(section: Callable[[Inputs], str], inputs: Inputs) -> str:
    """A section's HTML; an unexpected file content becomes a note instead of a crash."""
    try:
        return section(inputs)
    except Exception as exc:  # noqa: BLE001 - the report must be written whatever a stage left behind
        return f'<p class="missing">This section could not be shown: {e(one_line(exc))}.</p>'


def render(out: Path) -> str:
    """The report's HTML for the demo folder ``out``."""
    out = Path(out)
    inputs = Inputs.load(out)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>mobiledr demo report</h1><p class=\"meta\">{e(out.resolve())} &middot; {created}</p>", _safe(summary_section, inputs)]
    body += [f'<section id="{anchor}"><h2>{e(title)}</h2>{_safe(section, inputs)}</section>' for anchor, title, section in SECTIONS]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mobiledr demo report</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip


def write_report(out: Path) -> Path:
    """Write OUT/report.html (atomically) over what the demo wrote into ``out``; returns its path."""
    path = Path(out) / REPORT
    atomic_write_text(path, render(Path(out)))
    return path


# -- headless Chromium -------------------------------------------------------------------------------
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE_ID = "mobiledr-browser-probe"
#: Appended to a copy of the report (the report itself has no script): after the load event, counts
#: the images that decoded (naturalWidth > 0) and measures the page height.
PROBE = f"""<script>window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }}).map(function (i) {{ return i.alt; }});
  var pre = document.createElement("pre"); pre.id = "{PROBE_ID}";
  pre.textContent = JSON.stringify({{images: images.length, loaded: images.length - broken.length, broken: broken,
    height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth}});
  document.body.appendChild(pre);
}});</script>"""


def find_chromium() -> str | None:
    """A Chromium or Chrome executable: $CHROMIUM if set, else the first known name on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def _chromium(args: list[str], timeout: float) -> str:
    binary = find_chromium()
    if binary is None:
        raise MobiledrError("no Chromium found (install it: apt-get install -y chromium; or set $CHROMIUM to a Chrome executable)")
    with tempfile.TemporaryDirectory(prefix="mobiledr-chromium-") as profile:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
                   "--disable-extensions", f"--user-data-dir={profile}", *args]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise MobiledrError(f"{binary} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if "dbus" not in line][-3:]
        raise MobiledrError(f"{binary} exited with code {done.returncode}: {' | '.join(tail)}")
    return done.stdout


def browser_check(report: Path, width: int = 1200, timeout: float = 120.0) -> dict[str, Any]:
    """Load a copy of ``report`` with a probe script in headless Chromium; returns {"images": total,
    "loaded": decoded (naturalWidth > 0), "broken": [alt of each that did not], "height": px, "width": px}."""
    report = Path(report)
    text = report.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="mobiledr-report-") as folder:
        probe = Path(folder) / report.name
        probe.write_text(text.replace("</body>", PROBE + "</body>") if "</body>" in text else text + PROBE, encoding="utf-8")
        dom = _chromium([f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    start = dom.find(f'id="{PROBE_ID}">')
    if start < 0:
        raise MobiledrError(f"{report}: the page did not finish loading in Chromium (no probe result in the DOM)")
    payload = dom[start + len(f'id="{PROBE_ID}">') : dom.index("</pre>", start)]
    return json.loads(html.unescape(payload))


def render_screenshot(report: Path, png: Path, width: int = 1200, height: int | None = None, timeout: float = 120.0) -> None:
    """A PNG screenshot of ``report`` in headless Chromium, ``width`` px wide; ``height`` None: the
    whole page (measured first with ``browser_check``). MobiledrError when Chromium is missing or fails."""
    report, png = Path(report).resolve(), Path(png).resolve()
    if not report.is_file():
        raise MobiledrError(f"{report}: report not found")
    if height is None:
        height = min(int(browser_check(report, width, timeout)["height"]), 16000)  # Chromium caps a capture at 16384 px
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mobiledr-shot-", dir=png.parent) as folder:
        shot = Path(folder) / "shot.png"
        _chromium([f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={shot}", report.as_uri()], timeout)
        if not shot.is_file():
            raise MobiledrError(f"Chromium wrote no screenshot for {report}")
        os.replace(shot, png)
