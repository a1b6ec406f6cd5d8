"""``mobiledr explain``: saliency, Grad-CAM and the exported model's heatmap for photographs, side by side.

For CBAM presets (a hidden head layer) the exported heatmap is the spatial attention gate: the same map
for every class, not Grad-CAM; the panel and explanations.json say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from mobiledr.errors import MobiledrError
from mobiledr.progress import progress_bar, stderr

console = Console()


def _class_index(labels: list[str], name: str | None) -> int | None:
    if name is None:
        return None
    if name not in labels:
        raise MobiledrError(f"--class {name!r} is not one of the checkpoint's classes: {', '.join(labels)}")
    return labels.index(name)


def _correlation(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def explain(
    checkpoint: Path = typer.Argument(..., help="A training run's checkpoint (RUN/best.pt)."),
    images: list[Path] = typer.Argument(..., help="Photographs to explain."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <stem>_explain.png panels and explanations.json."),
    class_name: str = typer.Option(
        None, "--class", help="Class to explain (default: the positive class of binary models, else each image's predicted class)."
    ),
) -> None:
    """Per image: geometric stage | saliency | Grad-CAM | the heatmap an exported model computes, with the
    calibrated prediction; unreadable images are listed with their reason and make the exit code 1."""
    import torch

    from mobiledr.data.geometry import ImageRejected, load_geometric
    from mobiledr.data.photometric import Photometric
    from mobiledr.io import atomic_write_json
    from mobiledr.train.checkpoint import Checkpoint
    from mobiledr.train.explain import CLASS_SPECIFIC, DESCRIPTIONS, METHODS, heatmap_method, overlay, save_panel, to_batch
    from mobiledr.train.explain import explain as explain_images
    from mobiledr.train.inference import Classifier

    ckpt = Checkpoint.load(checkpoint)
    labels = ckpt.labels
    class_index = _class_index(labels, class_name)
    classifier = Classifier(ckpt.build_model(), Photometric(ckpt.preprocess)).eval()
    binary = len(labels) == 2
    threshold = ckpt.threshold if ckpt.threshold is not None else 0.5  # binary argmax
    fundus = ckpt.preprocess.mode == "fundus"
    entries: list[dict[str, Any]] = []
    with progress_bar("explaining", total=len(images)) as bar:
        for path in images:
            bar.advance()
            try:
                rgb = load_geometric(path, ckpt.preprocess).image
            except ImageRejected as exc:
                entries.append({"source": str(path), "error": str(exc)})
                continue
            result = explain_images(classifier, to_batch([rgb]), class_index)
            probabilities = torch.softmax(result.logits[0] / ckpt.temperature, dim=0).tolist()
            predicted = labels[int(result.logits[0].argmax())]
            decision = labels[int(probabilities[1] >= threshold)] if binary else predicted
            explained = labels[class_index] if class_index is not None else labels[1] if binary else predicted
            correlation = result.correlations[0]
            probability = f"p({labels[1]}) = {probabilities[1]:.3f}, threshold {threshold:.2f}" if binary else f"p = {max(probabilities):.3f}"
            title = (
                f"{decision} ({probability}, T = {ckpt.temperature:.2f}); explaining {explained}; "
                f"exported {result.method} vs Grad-CAM r = {_correlation(correlation)}"
            )
            output = out / f"{path.stem}_explain.png"
            save_panel(
                output,
                [
                    ("geometric stage", rgb),
                    ("saliency", overlay(rgb, result.saliency[0], disc_only=fundus)),
                    ("Grad-CAM", overlay(rgb, result.grad_cam[0], disc_only=fundus)),
                    (
                        f"exported: {METHODS[result.method]}" + ("" if CLASS_SPECIFIC[result.method] else "\n(same for every class; not Grad-CAM)"),
                        overlay(rgb, result.heatmap[0], disc_only=fundus),
                    ),
                ],
                title,
            )
            entries.append(
                {
                    "source": str(path),
                    "output": str(output),
                    "predicted_class": predicted,
                    "decision": decision,
                    "probabilities": dict(zip(labels, probabilities)),
                    "explained_class": explained,
                    "heatmap_correlation": correlation,
                }
            )
    atomic_write_json(
        out / "explanations.json",
        {
            "checkpoint": str(checkpoint),
            "labels": labels,
            "threshold": ckpt.threshold,
            "temperature": ckpt.temperature,
            "heatmap": heatmap_method(classifier.network),
            "heatmap_description": DESCRIPTIONS[heatmap_method(classifier.network)],
            "heatmap_class_specific": CLASS_SPECIFIC[heatmap_method(classifier.network)],
            "images": entries,
        },
    )
    _report(entries, out)
    if any("error" in entry for entry in entries):
        raise typer.Exit(1)


def _report(entries: list[dict[str, Any]], out: Path) -> None:
    """The results as a table on stdout, each rejected image as one error line on stderr."""
    table = Table(title=f"explanations ({out / 'explanations.json'})")
    for column, justify in [("image", "left"), ("decision", "left"), ("probabilities", "left"), ("r (exported vs Grad-CAM)", "right"), ("panel", "left")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for entry in entries:
        if "error" not in entry:
            probabilities = ", ".join(f"{name} {p:.3f}" for name, p in entry["probabilities"].items())
            table.add_row(Path(entry["source"]).name, entry["decision"], probabilities, _correlation(entry["heatmap_correlation"]), entry["output"])
    console.print(table)
    for entry in entries:
        if "error" in entry:
            stderr.print(f"error: {entry['source']}: {entry['error']}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(explain)
