"""``mobiledr evaluate``: clinical evaluation of a checkpoint, or of a bundle's artifacts, on one split."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mobiledr.errors import MobiledrError
from mobiledr.progress import stderr

console = Console()


def _prevalence(value: float | None) -> float | None:
    if value is not None and not 0 < value < 1:
        raise MobiledrError(f"--prevalence is the intended-use prevalence as a fraction (0.05 = 5%), got {value}")
    return value


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by mobiledr train (RUN/best.pt), or a bundle folder from mobiledr export."),
    split: str = typer.Option("test", "--split", help="Split to evaluate: train, val or test."),
    data: Path = typer.Option(None, "--data", help="Prepared cache folder (default: the one the checkpoint was trained on)."),
    splits: Path = typer.Option(None, "--splits", help="Split file (default: the one the checkpoint was trained on; its sha256 must match)."),
    ood: Path = typer.Option(None, "--ood", help="Folder of images to screen with the quality and OOD gates (e.g. non-fundus photos; checkpoints only)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/eval-<split>/, or BUNDLE/evaluation/<split>/)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the confidence intervals (0: Wilson only)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Inference batch size (checkpoints)."),
    prevalence: float = typer.Option(None, "--prevalence", help="Intended-use prevalence (fraction): PPV and NPV are also given at it."),
    artifact: list[str] = typer.Option([], "--artifact", help="Bundle only: the artifact file(s) to evaluate (default: every artifact that runs here)."),
    tolerances: Path = typer.Option(None, "--tolerances", help="Bundle only: tolerance policy for the gate verdicts (default: mobiledr/parity/tolerances.yaml)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Bundle only: threads per runtime."),
) -> None:
    """Sensitivity/specificity at the locked threshold with 95% CIs (patients resampled), the flow of images,
    intention to screen and accepted-only results, per participant, misses by grade, AUCs, calibration, OOD."""
    prevalence = _prevalence(prevalence)
    if (checkpoint / "manifest.json").is_file():
        from mobiledr.parity.policy import Policy
        from mobiledr.train.artifact_eval import evaluate_bundle

        if ood is not None:
            raise MobiledrError("--ood screens a folder with a checkpoint; with a bundle use mobiledr parity --images")
        summary, folder = evaluate_bundle(checkpoint, artifact or None, split, data, splits, out, bootstrap, seed, prevalence, threads,
                                          Policy.load(tolerances))  # fmt: skip
        for warning in summary["warnings"]:
            stderr.print(f"[yellow]warning:[/yellow] {warning}")
        for name, head in summary["artifacts"].items():
            its = head.get("intention_to_screen")
            text = (f"ITS sensitivity {100 * its['sensitivity']['value']:.1f}%, specificity {100 * its['specificity']['value']:.1f}%"
                    if its and its["sensitivity"]["value"] is not None and its["specificity"]["value"] is not None else "")  # fmt: skip
            console.print(f"{name}: {text} gate {head.get('gate_verdict', '-')}", highlight=False)
        for name, why in summary["skipped"].items():
            console.print(f"{name}: skipped ({why})", highlight=False)
        console.print(f"wrote {folder / 'summary.md'}, summary.json and <artifact>/report.{{md,json}}")
        return
    if artifact or tolerances is not None or threads is not None:
        raise MobiledrError("--artifact, --tolerances and --threads apply to a bundle folder, not a checkpoint")
    from mobiledr.train.report import evaluate_checkpoint, summary_table

    report, folder = evaluate_checkpoint(checkpoint, split, data, splits, ood, out, bootstrap, seed, batch_size, prevalence)
    for warning in report["warnings"]:
        stderr.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(summary_table(report))
    console.print(f"wrote {folder / 'report.md'}, report.json, roc.png, confusion.png, reliability.png")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
