"""``mobiledr bench``: latency, load time, memory and size per artifact and runtime on this machine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mobiledr.errors import MobiledrError

console = Console()


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MobiledrError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise MobiledrError(f"{option} takes positive integers, got {text!r}")
    return values


def bench(
    paths: list[Path] = typer.Argument(None, help="BUNDLE (a folder written by mobiledr export), or with --compare: BEFORE.json AFTER.json."),
    runtimes: str = typer.Option(None, "--runtimes", help="Comma-separated: pytorch, executorch, onnxruntime, coreml (default: all)."),
    threads: str = typer.Option("1", "--threads", help="Comma-separated thread counts, e.g. 1,2,4."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed inferences after the first."),
    iters: int = typer.Option(50, "--iters", min=1, help="Timed inferences (at least)."),
    min_time: float = typer.Option(0.0, "--min-time", min=0.0, help="Keep timing until this many seconds have passed."),
    pin: str = typer.Option(None, "--pin", help="Pin every measurement to these CPUs (taskset -c), e.g. 0 or 0-1."),
    out: Path = typer.Option(None, "--out", "-o", help="Results folder (default: BUNDLE/bench/)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint for the PyTorch baseline (default: the manifest's)."),
    compare: bool = typer.Option(False, "--compare", help="Compare two results files (ratios per row) instead of measuring."),
) -> None:
    """Measure every artifact (and the PyTorch eager baseline) per runtime and thread count, each in its own process."""
    from mobiledr.bench import report as results

    paths = paths or []
    if compare:
        if len(paths) != 2:
            raise MobiledrError("--compare takes two results files: mobiledr bench --compare BEFORE.json AFTER.json")
        _compare(results.load_results(paths[0]), results.load_results(paths[1]), (paths[0], paths[1]))
        return
    if len(paths) != 1:
        raise MobiledrError("pass one BUNDLE folder (or --compare BEFORE.json AFTER.json)")
    bundle = paths[0]
    from mobiledr.bench.desktop import BenchOptions, run_desktop, targets
    from mobiledr.export.manifest import Manifest
    from mobiledr.progress import progress_bar, stderr

    manifest = Manifest.load(bundle)  # a one-line error before any work
    options = BenchOptions(bundle, [r.strip() for r in runtimes.split(",") if r.strip()] if runtimes else None, _ints(threads, "--threads"),
                           warmup, iters, min_time, pin, checkpoint)  # fmt: skip

    with progress_bar("benchmarking", len(targets(manifest, options.runtimes)) * len(options.threads)) as bar:

        def show(row: dict) -> None:  # one line per measurement above the bar
            what = f"{row['artifact']} ({row['runtime']}, {row['threads']} thread{'s' if row['threads'] > 1 else ''})"
            if row["status"] == "ok":
                stderr.print(f"{what}: p50 {row['latency_ms']['p50']:.2f} ms, load {row['load_ms']:.0f} ms" + (f" [yellow]{row['warning']}" if row.get("warning") else ""))
            else:
                stderr.print(f"{what}: [{'yellow' if row['status'] == 'skipped' else 'red'}]{row['status']}: {row['error']}", highlight=False)
            bar.advance()

        report = run_desktop(options, show)
    written = results.write_results(report, out or Path(bundle) / "bench")
    console.print(results.terminal_table(report))
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    failed = [r for r in report["rows"] if r["status"] == "failed"]
    if failed:
        raise MobiledrError(f"{len(failed)} measurement(s) failed; first: {failed[0]['artifact']} ({failed[0]['runtime']}): {failed[0]['error']}")


def _compare(before: dict, after: dict, paths: tuple[Path, Path]) -> None:
    from mobiledr.bench.report import compare

    rows = compare(before, after)
    if not rows:
        raise MobiledrError(f"{paths[0]} and {paths[1]} have no measured rows in common")
    table = Table("device", "artifact", "runtime", "threads", "p50 before ms", "p50 after ms", "p50 ratio", "mean ratio", "load ratio",
                  title=f"{paths[1]} / {paths[0]} (ratio > 1: slower)")  # fmt: skip
    for r in rows:
        style = "red" if r["p50_ratio"] > 1.1 else "green" if r["p50_ratio"] < 0.9 else ""
        table.add_row(r["device"], r["artifact"], r["runtime"], str(r["threads"]), f"{r['p50_before']:.2f}", f"{r['p50_after']:.2f}",
                      f"[{style}]{r['p50_ratio']:.2f}x[/]" if style else f"{r['p50_ratio']:.2f}x", f"{r['mean_ratio']:.2f}x", f"{r['load_ratio']:.2f}x")  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(bench)
