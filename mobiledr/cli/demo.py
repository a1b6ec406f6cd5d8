"""``mobiledr demo``: the whole pipeline on generated data, then one HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mobiledr.errors import MobiledrError

console = Console()


def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for everything the demo writes."),
    preset: str = typer.Option("demo", "--preset", "-p", help="Training preset (demo: MobileNetV3-Small + CBAM at 128 px, minutes on a CPU)."),
    fast: bool = typer.Option(False, "--fast", help="Fewer images, epochs and iterations: about 3 minutes instead of about 10."),
) -> None:
    """Generate data, train, evaluate, explain, export android and ios bundles, check parity, benchmark, report."""
    from mobiledr.demo import run_demo

    timings = run_demo(out, console.print, preset, fast)
    failed = [s for s in timings["stages"] if "error" in s]
    console.print(f"\n[bold]demo finished in {timings['total_seconds'] / 60:.1f} min[/]: report {out / 'report.html'}; bundles {out / 'bundle' / 'android'}, {out / 'bundle' / 'ios'}")
    console.print("next, with an Android phone attached (USB debugging on):")
    console.print(f"  mobiledr bench {out / 'bundle' / 'android'} --device android --threads 1,4")
    console.print(f"  mobiledr parity {out / 'bundle' / 'android'} --images YOUR_FUNDUS_PHOTOS/")
    if failed:
        raise MobiledrError(f"demo stage {failed[0]['name']} failed: {failed[0]['error']} (what completed is in {out})")


def register(app: typer.Typer) -> None:
    app.command()(demo)
