"""``mobiledr bench`` on this machine: every artifact (and the PyTorch eager baseline) x thread count,
each measurement in a fresh process (``mobiledr.bench.worker``), optionally pinned with ``taskset``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobiledr import __version__
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.native import artifact_args, built_runner, inputs_npy, parse_runner_output
from mobiledr.bench.worker import REFERENCE
from mobiledr.errors import DeviceLost, MobiledrError
from mobiledr.export.manifest import MANIFEST, Manifest
from mobiledr.io import file_sha256

SCHEMA = "mobiledr-bench/1"
NOISY_CV = 0.10  # a coefficient of variation above this is reported as noisy
RUNTIMES = ("pytorch", "executorch", "native", "onnxruntime", "coreml")
NATIVE = "native"  # XNNPACK .pte programs through the C++ runner (android_harness/native/)


@dataclass
class BenchOptions:
    bundle: Path
    runtimes: list[str] | None = None  # default: all
    threads: list[int] = field(default_factory=lambda: [1])
    warmup: int = 10
    iters: int = 50
    min_time: float = 0.0
    pin: str | None = None  # a taskset CPU list, e.g. "0" or "0-1"
    checkpoint: Path | None = None
    timeout: float = 600.0


def targets(manifest: Manifest, runtimes: list[str] | None) -> list[dict[str, Any]]:
    """What to measure: the eager reference, every artifact on its runtime, and every XNNPACK ``.pte``
    again on the native runner; filtered by runtime (a name matches its variants: onnxruntime covers
    onnxruntime-mobile)."""
    wanted = runtimes or list(RUNTIMES)
    unknown = [r for r in wanted if r not in RUNTIMES]
    if unknown:
        raise MobiledrError(f"unknown runtime {unknown[0]!r}; use some of {', '.join(RUNTIMES)}")
    model = manifest.model
    rows = [{"artifact": REFERENCE, "format": "pytorch-eager", "precision": "fp32", "runtime": "pytorch", "backend": "cpu",
             "size_bytes": None, "params": model["params"], "macs": model["macs"]}]  # fmt: skip
    for a in manifest.artifacts:
        row = {key: a[key] for key in ("format", "precision", "runtime", "backend", "size_bytes", "params", "macs")} | {"artifact": a["file"]}
        rows.append(row)
        if a["kind"] == "pte" and a["backend"] == "xnnpack":
            rows.append(row | {"runtime": NATIVE})
    return [r for r in rows if any(r["runtime"].startswith(w) for w in wanted)]


def _worker_command(options: BenchOptions, artifact: str, threads: int) -> list[str]:
    command = [sys.executable, "-m", "mobiledr.bench.worker", str(options.bundle), artifact, "--threads", str(threads),
               "--warmup", str(options.warmup), "--iters", str(options.iters), "--min-time", str(options.min_time)]  # fmt: skip
    if options.checkpoint is not None:
        command += ["--checkpoint", str(options.checkpoint)]
    return command


def _native_command(options: BenchOptions, manifest: Manifest, artifact: str, threads: int, inputs: Path) -> list[str] | str:
    """The native runner's command line, or why it cannot run (not built)."""
    binary = built_runner()
    if binary is None:
        return "the native runner is not built: mobiledr bench --build-native"
    return [str(binary), *artifact_args(manifest.artifact(artifact), str(options.bundle), str(inputs), threads=threads, warmup=options.warmup,
                                        iters=options.iters, min_time=options.min_time, output_names=manifest.output_names)]  # fmt: skip


def _pinned(options: BenchOptions, command: list[str]) -> list[str]:
    if not options.pin:
        return command
    taskset = shutil.which("taskset")
    if taskset is None:
        raise MobiledrError("--pin needs taskset (util-linux), which is not installed")
    return [taskset, "-c", options.pin, *command]


def _parse_worker(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    if returncode != 0:
        tail = " | ".join(line for line in stderr.strip().splitlines()[-3:])
        return {"status": "failed", "error": f"worker exited with code {returncode}: {tail}"}
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"status": "failed", "error": f"worker printed no result: {stdout.strip()[-200:]!r}"}


def measure_one(options: BenchOptions, manifest: Manifest, target: dict[str, Any], threads: int, inputs: Path) -> dict[str, Any]:
    """One measurement in a process of its own (the Python worker, or the native runner); a crash or
    timeout becomes a failed row with the last lines of its stderr."""
    if target["runtime"] == NATIVE:
        command, parse = _native_command(options, manifest, target["artifact"], threads, inputs), parse_runner_output
        if isinstance(command, str):
            return {"status": "skipped", "error": command}
    else:
        command, parse = _worker_command(options, target["artifact"], threads), _parse_worker
    try:
        done = subprocess.run(_pinned(options, command), capture_output=True, text=True, timeout=options.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {options.timeout:g} s"}
    return parse(done.returncode, done.stdout, done.stderr)


def finish_row(device: str, target: dict[str, Any], threads: int, fields: dict[str, Any]) -> dict[str, Any]:
    """A results row: the device, what was measured (a ``targets`` entry), the thread count and the
    measurement's fields, with a warning when the latency is noisy."""
    row = {"device": device, **target, "threads": threads, **fields}
    if row["status"] == "ok" and row["latency_ms"]["cv"] > NOISY_CV:  # kept after a warning of the measurement's own (an app's failed self-check)
        noisy = f"noisy: coefficient of variation {row['latency_ms']['cv']:.0%} > {NOISY_CV:.0%}"
        row["warning"] = f"{row['warning']}; {noisy}" if row.get("warning") else noisy
    return row


def measure_in_turn(device: str, plan: Sequence[tuple[dict[str, Any], Any]], measure: Callable[[dict[str, Any], Any], dict[str, Any]],
                    skip: Callable[[dict[str, Any]], str | None], row_of: Callable[[dict[str, Any], Any], tuple[dict[str, Any], int]] | None = None,
                    stop: str | None = None, on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], bool]:  # fmt: skip
    """A phone's planned measurements (target, setting) in turn, one row each: skipped when ``skip``
    gives a reason, failed with its one-line error when ``measure`` raises a MobiledrError, and once
    ``measure`` raises DeviceLost (or from the start, with ``stop``) every remaining row fails with that
    reason. ``row_of`` names a row's target and thread count (default: the setting is the thread
    count). Returns the rows and whether the device was lost."""
    rows, lost = [], False
    for target, setting in plan:
        reason = skip(target)
        if reason:
            fields: dict[str, Any] = {"status": "skipped", "error": reason}
        elif stop:
            fields = {"status": "failed", "error": stop}
        else:
            try:
                fields = measure(target, setting)
            except DeviceLost as exc:
                stop, lost = str(exc), True
                fields = {"status": "failed", "error": stop}
            except MobiledrError as exc:  # this measurement failed (a push, a shell step, a launch)
                fields = {"status": "failed", "error": str(exc)}
        rows.append(finish_row(device, *(row_of(target, setting) if row_of else (target, setting)), fields))
        if on_row is not None:
            on_row(rows[-1])
    return rows, lost


def make_report(options: BenchOptions, manifest: Manifest, devices: list[dict[str, Any]], rows: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """The results document (the shared bench schema) around some rows."""
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mobiledr_version": __version__,
        "bundle": str(Path(options.bundle).resolve()),
        "manifest_sha256": file_sha256(Path(options.bundle) / MANIFEST),
        "model": {"name": manifest.model["name"], "input_size": manifest.model["input_size"]},
        "devices": devices,
        "settings": {"warmup": options.warmup, "iters": options.iters, "min_time_s": options.min_time, "pin": options.pin, "threads": options.threads, **settings},
        "rows": rows,
    }


def run_desktop(options: BenchOptions, on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure every target at every thread count; returns the report (the shared bench schema)."""
    manifest = Manifest.load(options.bundle)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mobiledr-bench-") as tmp:
        inputs = inputs_npy(Path(options.bundle), manifest, Path(tmp) / "inputs.npy")
        for target in targets(manifest, options.runtimes):
            for threads in options.threads:
                rows.append(finish_row("desktop", target, threads, measure_one(options, manifest, target, threads, inputs)))
                if on_row is not None:
                    on_row(rows[-1])
    return make_report(options, manifest, [{"device": "desktop", "kind": "desktop", **machine_facts()}], rows)
