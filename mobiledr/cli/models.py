"""``mobiledr summary`` and ``mobiledr weights``: the model family and its ImageNet checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from mobiledr.errors import MobiledrError
from mobiledr.models.config import PRESETS, ModelConfig, get_preset
from mobiledr.models.weights import load_registry, verify_registered

if TYPE_CHECKING:
    from mobiledr.models.summary import ModelSummary

console = Console()


def resolve_config(preset: str | None, config: Path | None) -> ModelConfig:
    """A preset by name, or a YAML/JSON config file; ``thesis-dr`` when neither is given."""
    if preset and config:
        raise MobiledrError("give --preset or --config, not both")
    if config:
        return ModelConfig.from_file(config)
    return get_preset(preset or "thesis-dr")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _render(summary: ModelSummary, config: ModelConfig) -> None:
    attention = "CBAM" if config.cbam else "no attention"
    table = Table(
        title=f"{config.name}: MobileNetV3-{config.arch.capitalize()} + {attention}, input 3x{summary.input_size}x{summary.input_size}",
        box=box.SIMPLE_HEAD,
    )
    for column, justify in [("module", "left"), ("layer", "left"), ("output", "right"), ("params", "right"), ("MACs", "right")]:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in summary.rows:
        table.add_row(row.name, f"{row.kind} {row.detail}".strip(), _shape(row.output_shape[1:]), f"{row.params:,}", f"{row.macs / 1e6:,.2f}M")
    console.print(table)
    mb = 1024 * 1024
    console.print(f"Trainable params:    {summary.trainable_params:,}")
    console.print(f"BN running stats:    {summary.bn_statistics:,} (non-trainable)")
    console.print(f"MACs:                {summary.macs:,} ({summary.macs / 1e9:.3f} G)")
    console.print(f"Weights fp32:        {summary.fp32_bytes / mb:.2f} MiB")
    console.print(f"Weights int8 (est.): {summary.int8_bytes / mb:.2f} MiB")


def summary(
    preset: str = typer.Option(None, "--preset", "-p", help=f"Model preset: {', '.join(PRESETS)} (default thesis-dr)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML/JSON file with ModelConfig fields."),
    input_size: int = typer.Option(None, "--input-size", min=32, help="Input side in pixels (default: the config's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per-module output shapes, parameters and MACs, then totals (like the thesis's model summary)."""
    from mobiledr.models import build_model
    from mobiledr.models.summary import summarize

    cfg = resolve_config(preset, config)
    if input_size:
        cfg = cfg.replace(input_size=input_size)
    result = summarize(build_model(cfg))
    if as_json:
        typer.echo(json.dumps({"config": cfg.to_dict(), **result.to_dict()}, indent=2))
    else:
        _render(result, cfg)


def weights(
    directory: Path = typer.Option(Path("weights"), "--dir", "-d", help="Folder holding downloaded checkpoints."),
) -> None:
    """List the known torchvision ImageNet checkpoints and verify those present in --dir."""
    table = Table(title=f"ImageNet checkpoints in {directory}")
    for column in ["file", "arch", "weights", "top-1", "status"]:
        table.add_column(column)
    bad = []
    for entry in load_registry().values():
        path = directory / entry.file
        if not path.is_file():
            status = "[dim]missing[/dim]"
        else:
            try:
                verify_registered(path)
                status = "[green]ok[/green]"
            except MobiledrError as exc:
                status = "[red]sha256 mismatch[/red]"
                bad.append(str(exc))
        table.add_row(entry.file, entry.arch, entry.weights, f"{entry.imagenet_top1:.1f}", status)
    console.print(table)
    if bad:
        raise MobiledrError(bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def register(app: typer.Typer) -> None:
    app.command()(summary)
    app.command()(weights)
