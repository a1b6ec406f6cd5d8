"""``mobiledr bench``: latency, load time, memory and size per artifact and runtime on this machine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from mobiledr.errors import GateFailed, MobiledrError
from mobiledr.progress import Bar, progress_bar, stderr

if TYPE_CHECKING:
    from mobiledr.bench.android import AndroidOptions
    from mobiledr.bench.desktop import BenchOptions
    from mobiledr.bench.ios import IosOptions
    from mobiledr.export.manifest import Manifest

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
    runtimes: str = typer.Option(None, "--runtimes", help="Comma-separated: pytorch, executorch, native, onnxruntime, coreml (default: all)."),
    threads: str = typer.Option("1", "--threads", help="Comma-separated thread counts, e.g. 1,2,4."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed inferences after the first."),
    iters: int = typer.Option(50, "--iters", min=1, help="Timed inferences (at least)."),
    min_time: float = typer.Option(0.0, "--min-time", min=0.0, help="Keep timing until this many seconds have passed."),
    pin: str = typer.Option(None, "--pin", help="Pin every measurement to these CPUs (taskset -c), e.g. 0 or 0-1."),
    out: Path = typer.Option(None, "--out", "-o", help="Results folder (default: BUNDLE/bench/)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint for the PyTorch baseline (default: the manifest's)."),
    compare: bool = typer.Option(False, "--compare", help="Compare two results files (ratios per row) instead of measuring."),
    device: str = typer.Option("desktop", "--device", help="desktop, android (the only phone adb sees), android:SERIAL, all-android, or on macOS ios (the only iPhone/iPad devicectl sees) or ios:UDID."),
    adb: str = typer.Option(None, "--adb", help="On phones: the adb executable (default: $ADB, else adb on PATH)."),
    mode: str = typer.Option(None, "--mode", help="On phones: native (the C++ runner over adb shell; default) or app (the installed harness app)."),
    build_native: bool = typer.Option(False, "--build-native", help="Build the native runner (android_harness/native/) for this machine first; alone, only build it."),
    abi: str = typer.Option("host", "--abi", help="With --build-native: host (this machine) or arm64 (linux-aarch64, cross-built against the aarch64 executorch wheel; run under qemu for parity, never timed)."),
    compute_units: str = typer.Option(None, "--compute-units", help="On iOS: Core ML compute units, comma-separated: cpu, gpu, ane, all (default: all)."),
) -> None:
    """Measure every artifact (and the PyTorch eager baseline) per runtime and thread count, each in its own
    process, on this machine or on Android phones over adb (--device; --pin is then a CPU list, e.g. 4-7)."""
    from mobiledr.bench import report as results

    paths = paths or []
    if abi != "host" and (not build_native or paths):
        raise MobiledrError("--abi arm64 only builds the runner (with --build-native): timings under emulation say nothing about a phone; "
                            "benchmarks/arm64_parity.py checks its outputs")  # fmt: skip
    if build_native:
        from mobiledr.bench.native import build_native as build

        with console.status(f"building the native runner (CMake{'' if abi == 'host' else ', ' + abi})"):
            console.print(f"native runner: {build(abi)}")
        if not paths:
            return
    if compare:
        if len(paths) != 2:
            raise MobiledrError("--compare takes two results files: mobiledr bench --compare BEFORE.json AFTER.json")
        _compare(results.load_results(paths[0]), results.load_results(paths[1]), (paths[0], paths[1]))
        return
    if len(paths) != 1:
        raise MobiledrError("pass one BUNDLE folder (or --compare BEFORE.json AFTER.json)")
    bundle = paths[0]
    from mobiledr.bench.android import AndroidOptions, parse_device, results_name
    from mobiledr.bench.desktop import BenchOptions
    from mobiledr.export.manifest import Manifest

    manifest = Manifest.load(bundle)  # a one-line error before any work
    kind = "ios" if device == "ios" or device.startswith("ios:") else parse_device(device)[0]
    if kind == "desktop" and (adb or mode):
        raise MobiledrError("--adb and --mode apply to phones: add --device android (or android:SERIAL, all-android)")
    if kind == "ios" and (adb or mode or pin or _ints(threads, "--threads") != [1]):
        raise MobiledrError("--adb, --mode, --pin and --threads do not apply to --device ios (Core ML and ExecuTorch size their own thread pools)")
    if kind != "ios" and compute_units:
        raise MobiledrError("--compute-units applies to --device ios (Core ML)")
    settings = (bundle, [r.strip() for r in runtimes.split(",") if r.strip()] if runtimes else None, _ints(threads, "--threads"),
                warmup, iters, min_time, pin, checkpoint)  # fmt: skip
    if kind == "desktop":
        report = _desktop(manifest, BenchOptions(*settings))
    elif kind == "ios":
        from mobiledr.bench.ios import IosOptions, parse_compute_units

        report = _ios(manifest, IosOptions(*settings, device=device, compute_units=parse_compute_units(compute_units)))
    else:
        report = _android(manifest, AndroidOptions(*settings, device=device, adb=adb, mode=mode or "native"))
    if kind == "ios":
        from mobiledr.bench.ios import results_name as ios_name

        name = ios_name(report)
    else:
        name = "bench" if kind == "desktop" else results_name(report)
    written = results.write_results(report, out or Path(bundle) / "bench", name)
    console.print(results.terminal_table(report))
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    _fail_on(report, written[0])


def _show(bar: Bar, several: bool) -> Callable[[dict], None]:
    """One line per measurement above the progress bar (prefixed by the device when there are several)."""

    def show(row: dict) -> None:
        what = f"{row['artifact']} ({row['runtime']}, {row['threads']} thread{'s' if row['threads'] > 1 else ''})"
        what = f"{row['device']}: {what}" if several else what
        if row["status"] == "ok":
            stderr.print(f"{what}: p50 {row['latency_ms']['p50']:.2f} ms, load {row['load_ms']:.0f} ms" + (f" [yellow]{row['warning']}" if row.get("warning") else ""))
        else:
            stderr.print(f"{what}: [{'yellow' if row['status'] == 'skipped' else 'red'}]{row['status']}: {row['error']}", highlight=False)
        bar.advance()

    return show


def _desktop(manifest: Manifest, options: BenchOptions) -> dict:
    from mobiledr.bench.desktop import run_desktop, targets

    with progress_bar("benchmarking", len(targets(manifest, options.runtimes)) * len(options.threads)) as bar:
        return run_desktop(options, _show(bar, several=False))


def _android(manifest: Manifest, options: AndroidOptions) -> dict:
    from mobiledr.bench.android import connect, plan, run_android

    phones = connect(options)  # adb, the devices, boot, facts, the runner's ABI or the app: one-line errors before any work
    for phone in phones:
        facts = phone.facts
        stderr.print(f"{phone.name}: {facts['manufacturer']} {facts['model']}, {facts['soc']}, {facts['abi']}, Android {facts['android']}, {facts['cores']} CPUs", highlight=False)
    with progress_bar(f"benchmarking on {len(phones)} phone{'s' if len(phones) > 1 else ''}", len(phones) * len(plan(manifest, options))) as bar:
        return run_android(options, phones, _show(bar, several=len(phones) > 1))


def _ios(manifest: Manifest, options: IosOptions) -> dict:
    from mobiledr.bench.ios import connect, plan, run_ios

    device = connect(options)  # macOS, xcrun, the device, the app: one-line errors before any work
    facts = device.facts
    stderr.print(f"{device.name}: {facts['model']} ({facts['machine']}), {facts['os']}, harness app {facts['harness_app_version']}", highlight=False)
    with progress_bar(f"benchmarking on {device.name}", len(plan(manifest, options))) as bar:
        return run_ios(options, device, _show(bar, several=False))


def _fail_on(report: dict, written: Path) -> None:
    """Exit 1 (a one-line error) when a device disconnected or a measurement failed; the results are written first."""
    from mobiledr.bench.android import disconnected

    failed = [r for r in report["rows"] if r["status"] == "failed"]
    lost = disconnected(report)
    if lost:
        raise MobiledrError(f"device {', '.join(lost)} disconnected during the run: {sum(lost.values())} measurement(s) not done; the results so far are in {written}")
    if failed:
        raise GateFailed(f"{len(failed)} measurement(s) failed; first: {failed[0]['artifact']} ({failed[0]['runtime']}): {failed[0]['error']}")


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
