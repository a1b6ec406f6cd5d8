"""``mobiledr parity``: every artifact of a bundle against the PyTorch reference; exit 1 on any failure."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mobiledr.errors import GateFailed, MobiledrError

console = Console()
DEFAULT_SYNTHETIC = 200


def parity(
    bundle: Path = typer.Argument(..., help="Bundle folder written by mobiledr export."),
    data: Path = typer.Option(None, "--data", help="Prepared cache to take labelled images from (default: the checkpoint's, when it exists)."),
    split: str = typer.Option("test", "--split", help="Split of --data: train, val or test."),
    splits: Path = typer.Option(None, "--splits", help="Split file for --data (default: the checkpoint's)."),
    images: Path = typer.Option(None, "--images", help="Folder of photographs (unlabelled) instead of a cache."),
    synthetic: int = typer.Option(None, "--synthetic", min=2, help="Generate N labelled synthetic fundus photographs instead."),
    synthetic_seed: int = typer.Option(2026, "--synthetic-seed", help="Seed of the synthetic photographs (held out from 'data synth' sets with other seeds)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Reference checkpoint (default: the manifest's source; its sha256 must match)."),
    tolerances: Path = typer.Option(None, "--tolerances", help="Tolerance policy YAML (default: mobiledr/parity/tolerances.yaml)."),
    artifacts: str = typer.Option(None, "--artifacts", help="Comma-separated artifact files or format ids (default: all)."),
    report: Path = typer.Option(None, "--report", help="Also write the report here (FILE.json and FILE.md)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the confidence intervals."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (the same seed gives the same intervals)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Threads per runtime (default: each runtime's own)."),
    localize: bool = typer.Option(False, "--localize", help="For failing int8 artifacts, find the layers where the error appears."),
    require_all: bool = typer.Option(False, "--require-all", help="Count artifacts that cannot run here (SKIPPED) as failures."),
) -> None:
    """Compare every artifact with the PyTorch reference on the same images: errors, agreement, delta AUC."""
    from mobiledr.data.spec import PreprocessSpec
    from mobiledr.export.manifest import Manifest
    from mobiledr.parity import inputs as parity_inputs
    from mobiledr.parity.policy import Policy
    from mobiledr.parity.report import FOLDER, reasons, terminal_table, write_report
    from mobiledr.parity.suite import FAIL, SKIPPED, ParityOptions, run_parity
    from mobiledr.runners import reference_checkpoint

    if sum(x is not None for x in (data, images, synthetic)) > 1:
        raise MobiledrError("pass one of --data, --images or --synthetic")
    policy = Policy.load(tolerances)
    manifest = Manifest.load(bundle)
    reference = reference_checkpoint(manifest, checkpoint)
    spec = PreprocessSpec.from_dict(manifest.preprocessing["photometric"]["spec"])
    if images is not None:
        chosen = parity_inputs.from_folder(images, spec)
    elif synthetic is not None:
        chosen = parity_inputs.synthetic(synthetic, spec, manifest.label_scheme, synthetic_seed)
    else:
        chosen = parity_inputs.from_training_data(reference, spec, manifest.label_scheme, data, splits, split, DEFAULT_SYNTHETIC, synthetic_seed)
    for line in chosen.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
    options = ParityOptions(
        bundle=bundle, policy=policy, checkpoint=reference, seed=seed, resamples=bootstrap, threads=threads, localize=localize,
        artifacts=[a.strip() for a in artifacts.split(",") if a.strip()] if artifacts else None,
    )
    result = run_parity(options, chosen)
    targets = [bundle / FOLDER / "report"] + ([report] if report is not None else [])
    written = write_report(result, targets)
    console.print(terminal_table(result))
    for line in reasons(result):
        console.print(line, style="red" if line.startswith(FAIL) else "yellow", highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    skipped = [a["file"] for a in result["artifacts"] if a["verdict"] == SKIPPED]
    if result["verdict"] == FAIL:
        problems = result["failed"] or result["bundle_checks"]["problems"]
        raise GateFailed(f"parity FAILED: {', '.join(problems)}")
    if require_all and skipped:
        raise MobiledrError(f"parity incomplete: {len(skipped)} artifact(s) could not run here ({', '.join(skipped)}) and --require-all is set")
    console.print(f"parity PASSED ({len(result['artifacts']) - len(skipped)} artifacts" + (f"; {len(skipped)} skipped" if skipped else "") + ")")


def register(app: typer.Typer) -> None:
    app.command()(parity)
