"""``mobiledr bench`` on this machine: every artifact (and the PyTorch eager baseline) x thread count,
each measurement in a fresh process (``mobiledr.bench.worker``), optionally pinned with ``taskset``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobiledr import __version__
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.worker import REFERENCE
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import MANIFEST, Manifest
from mobiledr.io import file_sha256

SCHEMA = "mobiledr-bench/1"
NOISY_CV = 0.10  # a coefficient of variation above this is reported as noisy
RUNTIMES = ("pytorch", "executorch", "onnxruntime", "coreml")


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
    """What to measure: the eager reference and every artifact, filtered by runtime (a runtime name
    matches its variants: onnxruntime covers onnxruntime-mobile)."""
    wanted = runtimes or list(RUNTIMES)
    unknown = [r for r in wanted if r not in RUNTIMES]
    if unknown:
        raise MobiledrError(f"unknown runtime {unknown[0]!r}; use some of {', '.join(RUNTIMES)}")
    model = manifest.model
    rows = [{"artifact": REFERENCE, "format": "pytorch-eager", "precision": "fp32", "runtime": "pytorch", "backend": "cpu",
             "size_bytes": None, "params": model["params"], "macs": model["macs"]}]  # fmt: skip
    rows += [{key: a[key] for key in ("format", "precision", "runtime", "backend", "size_bytes", "params", "macs")} | {"artifact": a["file"]}
             for a in manifest.artifacts]  # fmt: skip
    return [r for r in rows if any(r["runtime"].startswith(w) for w in wanted)]


def _command(options: BenchOptions, artifact: str, threads: int) -> list[str]:
    command = [sys.executable, "-m", "mobiledr.bench.worker", str(options.bundle), artifact, "--threads", str(threads),
               "--warmup", str(options.warmup), "--iters", str(options.iters), "--min-time", str(options.min_time)]  # fmt: skip
    if options.checkpoint is not None:
        command += ["--checkpoint", str(options.checkpoint)]
    if options.pin:
        taskset = shutil.which("taskset")
        if taskset is None:
            raise MobiledrError("--pin needs taskset (util-linux), which is not installed")
        command = [taskset, "-c", options.pin, *command]
    return command


def measure_one(options: BenchOptions, artifact: str, threads: int) -> dict[str, Any]:
    """Run the worker; a crash or timeout becomes a failed row with the last lines of its stderr."""
    try:
        done = subprocess.run(_command(options, artifact, threads), capture_output=True, text=True, timeout=options.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {options.timeout:g} s"}
    if done.returncode != 0:
        tail = " | ".join(line for line in done.stderr.strip().splitlines()[-3:])
        return {"status": "failed", "error": f"worker exited with code {done.returncode}: {tail}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"status": "failed", "error": f"worker printed no result: {done.stdout.strip()[-200:]!r}"}


def run_desktop(options: BenchOptions, on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure every target at every thread count; returns the report (the shared bench schema)."""
    manifest = Manifest.load(options.bundle)
    rows = []
    for target in targets(manifest, options.runtimes):
        for threads in options.threads:
            row = {"device": "desktop", **target, "threads": threads, **measure_one(options, target["artifact"], threads)}
            if row["status"] == "ok" and row["latency_ms"]["cv"] > NOISY_CV:
                row["warning"] = f"noisy: coefficient of variation {row['latency_ms']['cv']:.0%} > {NOISY_CV:.0%}"
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mobiledr_version": __version__,
        "bundle": str(Path(options.bundle).resolve()),
        "manifest_sha256": file_sha256(Path(options.bundle) / MANIFEST),
        "model": {"name": manifest.model["name"], "input_size": manifest.model["input_size"]},
        "devices": [{"device": "desktop", "kind": "desktop", **machine_facts()}],
        "settings": {"warmup": options.warmup, "iters": options.iters, "min_time_s": options.min_time, "pin": options.pin, "threads": options.threads},
        "rows": rows,
    }
