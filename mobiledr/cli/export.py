"""``mobiledr export`` (checkpoint -> deployment bundle) and ``mobiledr bundle verify``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from mobiledr.errors import GateFailed, MobiledrError

if TYPE_CHECKING:
    from mobiledr.export.bundle import ExportOptions
    from mobiledr.export.manifest import Manifest

console = Console()
bundle_app = typer.Typer(help="Inspect and check deployment bundles.", no_args_is_help=True)


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.2f} MB"


def export(
    checkpoint: Path = typer.Argument(None, help="A checkpoint written by mobiledr train (RUN/best.pt)."),
    out: Path = typer.Option(None, "--out", "-o", help="Bundle folder to write (replaced atomically if it is a bundle)."),
    target: str = typer.Option(None, "--target", "-t", help="android | ios | desktop | all."),
    formats: str = typer.Option(None, "--formats", help="Comma-separated format ids instead of a target's (see --list-formats)."),
    outputs: str = typer.Option(None, "--outputs", help="Comma-separated outputs: probs, logits, heatmap, ood_score (default: all the checkpoint supports)."),
    input_size: int = typer.Option(None, "--input-size", min=32, help="Model input side in pixels (default: the checkpoint's)."),
    calibration_data: Path = typer.Option(None, "--calibration-data", help="Prepared cache for int8 calibration (default: the training cache)."),
    calibration_samples: int = typer.Option(32, "--calibration-samples", min=1, help="Calibration images (from the training split when known)."),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="Worker processes (default: min(2, CPUs)); 1 exports in this process."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Write the formats that succeed and list the failures in the manifest; accept an int8 artifact that fails the gate."),
    int8: str = typer.Option("auto", "--int8", help="int8 recipe: auto (the first of ptq, ptq-float-attention that passes the int8 gate on the validation split), or one of them."),
    list_formats: bool = typer.Option(False, "--list-formats", help="List the formats and targets, then exit."),
) -> None:
    """Export a checkpoint to every format of a target, with golden vectors and a verified manifest."""
    from mobiledr.export.formats import FORMATS, TARGETS, select_formats

    if list_formats:
        table = Table("format", "description", "targets")
        for fmt in FORMATS.values():
            table.add_row(fmt.id, fmt.description, ", ".join(t for t, ids in TARGETS.items() if fmt.id in ids and t != "all"))
        console.print(table)
        return
    if checkpoint is None or out is None:
        raise MobiledrError("pass a CHECKPOINT and --out BUNDLE (or --list-formats)")
    chosen = select_formats(target, formats)
    from mobiledr.export.bundle import ExportOptions

    options = ExportOptions(
        checkpoint=checkpoint, out=out, formats=chosen, target=target or "custom",
        outputs=[o.strip() for o in outputs.split(",") if o.strip()] if outputs else None,
        input_size=input_size, calibration_data=calibration_data, calibration_samples=calibration_samples,
        jobs=jobs, keep_going=keep_going, int8=int8,
    )
    manifest, folder = _with_progress(options, [f.id for f in chosen])
    table = Table("file", "format", "precision", "runtime/backend", "size", "MACs", "export s", "status", title=f"bundle {folder}")
    for entry in manifest.artifacts:
        table.add_row(entry["file"], entry["format"], entry["precision"], f"{entry['runtime']}/{entry['backend']}",
                      _size(entry["size_bytes"]), f"{entry['macs'] / 1e6:.1f} M", f"{entry['export_seconds']:.1f}", "[green]ok")
    for failure in manifest.failures:
        table.add_row("-", failure["format"], "-", "-", "-", "-", "-", f"[red]failed: {failure['error']}")
    console.print(table)
    for line in _program_lines(manifest):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wrote {folder / 'manifest.json'}; check it with: mobiledr bundle verify {folder}")
    if manifest.failures:
        raise typer.Exit(1)
    from mobiledr.export.bundle import gate_failures

    failing = gate_failures(manifest)
    if failing and not keep_going:
        raise GateFailed(f"{folder}: written, but {failing[0]} (--keep-going accepts it)")


def _program_lines(manifest: Manifest) -> list[str]:
    """Per ExecuTorch program: its delegation summary; per int8 artifact: the recipes tried and the gate."""
    lines = []
    for entry in manifest.artifacts:
        if (delegation := entry.get("delegation")) is not None:
            outside = ", ".join(f"{op} x{n}" for op, n in delegation["outside"].items()) or "nothing"
            lines.append(f"{entry['file']}: {delegation['delegates']} {entry['backend']} delegate(s), {delegation['ops_delegated']} ops inside, "
                         f"{delegation['ops_outside']} outside ({outside})")  # fmt: skip
        if (gate := entry.get("int8_gate")) is not None:
            tried = "; ".join(
                f"{a['recipe']}: " + (f"{a['verdict']} (decision agreement {a['decision_agreement']:.4f}, OOD agreement {a['ood_agreement'] if a['ood_agreement'] is None else round(a['ood_agreement'], 4)})"
                                      if a.get("verdict") else "not judged")
                for a in gate["attempts"]
            )  # fmt: skip
            split = gate.get("split") or {}
            lines.append(f"{entry['file']}: int8 recipe {gate['chosen']} ({gate['verdict'] or 'unjudged'} on {split.get('images', 0)} validation images): {tried}")
    return lines


def _with_progress(options: ExportOptions, format_ids: list[str]) -> tuple[Manifest, Path]:
    """Run the export with one progress row per format (queued, running, done in N s, failed)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mobiledr.export.bundle import export_bundle
    from mobiledr.progress import stderr

    columns = (SpinnerColumn(finished_text="-"), TextColumn("[bold]{task.description:<18}"), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=stderr) as progress:
        rows = {fid: progress.add_task(fid, total=1, start=False, status="queued") for fid in format_ids}

        def on_event(event: str, fid: str, seconds: float, error: str | None) -> None:
            if event == "start":
                progress.start_task(rows[fid])
                progress.update(rows[fid], status="running")
            else:
                status = f"[green]done in {seconds:.1f} s" if event == "done" else f"[red]failed: {error}"
                progress.update(rows[fid], completed=1, status=status)
                progress.stop_task(rows[fid])

        return export_bundle(options, on_event)


@bundle_app.command("verify")
def verify(bundle: Path = typer.Argument(..., help="Bundle folder written by mobiledr export.")) -> None:
    """Check the manifest against its schema and every file against its size and sha256."""
    from mobiledr.export.bundle import verify_bundle
    from mobiledr.export.manifest import Manifest

    problems = verify_bundle(bundle)
    if problems:
        for problem in problems:
            console.print(f"[red]{bundle / problem.split(':')[0]}[/]: {problem.split(': ', 1)[1]}", highlight=False, soft_wrap=True)
        raise MobiledrError(f"{bundle}: {len(problems)} problem(s); first: {problems[0]}")
    manifest = Manifest.load(bundle)
    console.print(f"{bundle}: ok ({len(manifest.artifacts)} artifacts, {len(manifest.files)} other files, schema version {manifest.schema_version})")
    for line in _program_lines(manifest):
        console.print(line, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.add_typer(bundle_app, name="bundle")
