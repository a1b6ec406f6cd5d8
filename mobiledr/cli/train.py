"""``mobiledr train``: one process, or a rank of ``torchrun --nproc_per_node=N -m mobiledr train ...``."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from mobiledr.errors import MobiledrError
from mobiledr.train.config import TRAIN_PRESETS, load_train_config

console = Console()


def train(
    data: Path = typer.Option(None, "--data", help="Prepared cache folder (mobiledr data prepare)."),
    splits: Path = typer.Option(None, "--splits", help="Split file (mobiledr data split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: config, logs, curves, last.pt, best.pt."),
    preset: str = typer.Option("thesis-dr", "--preset", "-p", help=f"Training preset: {', '.join(TRAIN_PRESETS)}."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file overriding the preset (same keys as config.yaml)."),
    overrides: list[str] = typer.Option([], "--set", help="key=value override, e.g. --set lr=3e-4 --set model.arch=small."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt (its saved config is used)."),
) -> None:
    """Train MobileNetV3 + CBAM: two-stage transfer learning, class weights, AMP, DDP; then calibrate."""
    from mobiledr.train.checkpoint import Checkpoint
    from mobiledr.train.loop import train as run_training

    if not resume and not (data and splits):
        raise MobiledrError("--data and --splits are required (unless --resume)")
    cfg = None if resume else load_train_config(preset, config, overrides)
    best = run_training(cfg, data, splits, out, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        checkpoint = Checkpoint.load(best)
        threshold = f"{checkpoint.threshold:.4f}" if checkpoint.threshold is not None else "argmax"
        console.print(
            f"{best}: epoch {checkpoint.epoch}, validation {checkpoint.metric.upper()} {checkpoint.score:.4f}, "
            f"temperature {checkpoint.temperature:.3f}, threshold {threshold}, OOD threshold {checkpoint.ood.threshold:.1f}"  # type: ignore[union-attr]
        )


def register(app: typer.Typer) -> None:
    app.command()(train)
