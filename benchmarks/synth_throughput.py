"""Images per second of the synthetic fundus generator, on one core.

    python benchmarks/synth_throughput.py [--sizes 256 512 1024] [--seconds 8]

Times ``generate_fundus`` (grades 0-4 in turn, both eyes) at each size, single process with OpenCV
held to one thread, and ``make_dataset`` (which adds PNG encoding and atomic writes) at 512.
Writes ``benchmarks/results/synth_throughput.{json,md}`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mobiledr import __version__
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.synth import generate_fundus, make_dataset

RESULTS = Path(__file__).parent / "results"


def time_generator(size: int, seconds: float, min_images: int) -> dict[str, float | int]:
    """Generate images at ``size`` for about ``seconds`` (at least ``min_images``); wall and CPU time."""
    rng = np.random.default_rng(size)
    generate_fundus(2, size, rng)  # warm-up
    times, cpu_start, wall_start = [], time.process_time(), time.perf_counter()
    i = 0
    while i < min_images or time.perf_counter() - wall_start < seconds:
        start = time.perf_counter()
        generate_fundus(i % 5, size, rng, eye=("left", "right")[i % 2])
        times.append(time.perf_counter() - start)
        i += 1
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "size": size,
        "frame": f"{round(size * 4 / 3)}x{size}",
        "images": i,
        "images_per_s": round(i / wall, 2),
        "images_per_cpu_s": round(i / cpu, 2),
        "ms_p50": round(statistics.median(times) * 1e3, 1),
        "ms_p90": round(sorted(times)[int(0.9 * (len(times) - 1))] * 1e3, 1),
    }


def time_dataset(size: int, n: int) -> dict[str, float | int]:
    """``make_dataset`` of ``n`` images at ``size`` into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_dataset(Path(tmp), n=n, size=size, seed=0)
        wall = time.perf_counter() - start
    return {"size": size, "images": n, "images_per_s": round(n / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--seconds", type=float, default=8.0, help="time spent per size")
    parser.add_argument("--min-images", type=int, default=10)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows = []
    for size in args.sizes:
        rows.append(time_generator(size, args.seconds, args.min_images))
        print(rows[-1])
    dataset = time_dataset(512, 40)
    print("make_dataset", dataset)
    report = {
        "mobiledr": __version__,
        "what": "generate_fundus, one process, cv2.setNumThreads(1)",
        "machine": machine_facts(),
        "generate_fundus": rows,
        "make_dataset": dataset,
    }
    m = report["machine"]
    lines = [
        "# Synthetic fundus generator throughput (one process, OpenCV on one thread)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, numpy {m['numpy']}, OpenCV {m['opencv']} "
        f"(1-minute load average at the end: {m['load_average_1min']}; other jobs share the machine)",
        "",
        "| size | frame (WxH) | images | images/s (wall) | images per CPU-second | ms p50 | ms p90 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['size']} | {r['frame']} | {r['images']} | {r['images_per_s']} | {r['images_per_cpu_s']} | {r['ms_p50']} | {r['ms_p90']} |"
        for r in rows
    ]
    lines += ["", f"`make_dataset` at {dataset['size']} (PNG encoding and atomic writes included): {dataset['images_per_s']} images/s.", ""]
    write_result(RESULTS, "synth_throughput", report, lines)


if __name__ == "__main__":
    main()
