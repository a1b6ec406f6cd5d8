"""``mobiledr evaluate``: clinical evaluation of a checkpoint on one split (report.json, report.md, figures)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by mobiledr train (RUN/best.pt)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate: train, val or test."),
    data: Path = typer.Option(None, "--data", help="Prepared cache folder (default: the one the checkpoint was trained on)."),
    splits: Path = typer.Option(None, "--splits", help="Split file (default: the one the checkpoint was trained on)."),
    ood: Path = typer.Option(None, "--ood", help="Folder of images to screen with the quality and OOD gates (e.g. non-fundus photos)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/eval-<split>/)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the confidence intervals (0: Wilson only)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Inference batch size."),
) -> None:
    """Sensitivity/specificity at the locked threshold with 95% CIs, AUCs, per-class tables, calibration, OOD."""
    from mobiledr.train.report import evaluate_checkpoint, summary_table

    report, folder = evaluate_checkpoint(checkpoint, split, data, splits, ood, out, bootstrap, seed, batch_size)
    console.print(summary_table(report))
    console.print(f"wrote {folder / 'report.md'}, report.json, roc.png, confusion.png, reliability.png")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
