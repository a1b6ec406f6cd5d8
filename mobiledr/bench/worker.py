"""One latency measurement in a process of its own, so load time and peak memory are the artifact's:

    python -m mobiledr.bench.worker BUNDLE ARTIFACT --threads N --warmup W --iters I [--min-time S] [--checkpoint CKPT]

ARTIFACT is a bundle file or ``pytorch`` (the eager reference). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = "pytorch"


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak so far)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return _peak_rss_mb()


def latency_stats(seconds: list[float]) -> dict[str, float]:
    """Milliseconds: mean, std, min, p50, p90, p99, max, and the coefficient of variation."""
    ms = np.asarray(seconds) * 1e3
    mean = float(ms.mean())
    return {
        "mean": mean, "std": float(ms.std()), "min": float(ms.min()), "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
        "cv": float(ms.std() / mean) if mean > 0 else 0.0,
    }  # fmt: skip


def latency_fields(milliseconds: list[float]) -> dict[str, Any]:
    """A row's latency fields from raw per-inference times in milliseconds (what the native runner and
    the harness apps report): ``latency_ms`` (``latency_stats``), ``iterations``, ``throughput_ips``."""
    stats = latency_stats([v / 1e3 for v in milliseconds])
    return {"latency_ms": stats, "iterations": len(milliseconds), "throughput_ips": 1e3 / stats["mean"] if stats["mean"] > 0 else 0.0}


def measure(bundle: Path, artifact: str, threads: int, warmup: int, iters: int, min_time: float, checkpoint: Path | None) -> dict[str, Any]:
    """Load the artifact, time the first inference, warm up, then time ``iters`` inferences (and keep
    going until ``min_time`` seconds have passed)."""
    from mobiledr.export.manifest import Manifest
    from mobiledr.runners import RunnerUnavailable, artifact_runner, reference_checkpoint, reference_runner

    manifest = Manifest.load(bundle)
    with np.load(bundle / manifest.golden["vectors"]) as vectors:  # numpy only: a runtime's process imports just that runtime
        image = np.ascontiguousarray(vectors["image"][:1], dtype=np.float32)
    baseline = _rss_mb()
    try:
        if artifact == REFERENCE:
            runner = reference_runner(manifest, reference_checkpoint(manifest, checkpoint), threads)
        else:
            runner = artifact_runner(bundle, manifest, manifest.artifact(artifact), threads)
    except RunnerUnavailable as exc:
        return {"status": "skipped", "error": str(exc)}
    start = time.perf_counter()
    runner.load()
    load = time.perf_counter() - start
    start = time.perf_counter()
    runner.infer(image)
    first = time.perf_counter() - start
    for _ in range(warmup):
        runner.infer(image)
    latencies: list[float] = []
    began = time.perf_counter()
    while len(latencies) < iters or time.perf_counter() - began < min_time:
        start = time.perf_counter()
        runner.infer(image)
        latencies.append(time.perf_counter() - start)
    stats = latency_stats(latencies)
    runner.close()
    return {
        "status": "ok", "load_ms": load * 1e3, "first_ms": first * 1e3, "latency_ms": stats, "iterations": len(latencies),
        "throughput_ips": 1e3 / stats["mean"], "baseline_rss_mb": baseline, "rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("artifact")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--min-time", type=float, default=0.0)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.bundle, args.artifact, args.threads, args.warmup, args.iters, args.min_time, args.checkpoint)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
