"""``mobiledr data prepare`` throughput on APTOS-sized JPEGs (about 2400x1700), 1 and 2 workers.

    python benchmarks/prepare_throughput.py [--n 48] [--size 512]

Writes ``benchmarks/results/prepare_throughput.{json,md}`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.cache import prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus

RESULTS = Path(__file__).parent / "results"


def make_corpus(root: Path, n: int) -> tuple[int, int]:
    """n camera-sized JPEG frames (height 1700, width 2267) in an image-folder layout."""
    rng = np.random.default_rng(0)
    for i in range(n):
        grade = i % 5
        image, _ = generate_fundus(grade, 1700, rng, eye="left" if i % 2 else "right")
        folder = root / f"grade{grade}"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"img{i:04d}.jpeg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return image.shape[1], image.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mobiledr-prepare-bench-"))
    try:
        width, height = make_corpus(work / "data", args.n)
        megabytes = sum(p.stat().st_size for p in (work / "data").rglob("*.jpeg")) / 1e6
        rows = []
        for workers in (1, 2):
            report = prepare(work / "data", "folder", PreprocessSpec(size=args.size), work / f"cache{workers}", workers=workers)
            assert len(report.cache.entries) == args.n and not report.rejected
            rows.append({"workers": workers, "seconds": round(report.seconds, 2), "images_per_s": round(args.n / report.seconds, 2)})
            print(rows[-1])
        rerun = prepare(work / "data", "folder", PreprocessSpec(size=args.size), work / "cache2", workers=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "images": args.n,
        "frame": f"{width}x{height} JPEG q92",
        "corpus_mb": round(megabytes, 1),
        "output_size": args.size,
        "rows": rows,
        "rerun_unchanged_seconds": round(rerun.seconds, 2),
        "machine": machine_facts(),
    }
    lines = [
        f"# prepare throughput: {args.n} frames of {result['frame']} ({result['corpus_mb']} MB) -> {args.size}px cache",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores",
        "",
        "| workers | seconds | images/s |",
        "|---|---|---|",
        *[f"| {r['workers']} | {r['seconds']} | {r['images_per_s']} |" for r in rows],
        "",
        f"Re-run with nothing changed: {result['rerun_unchanged_seconds']} s (index check only).",
    ]
    write_result(RESULTS, "prepare_throughput", result, lines)


if __name__ == "__main__":
    main()
