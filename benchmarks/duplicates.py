"""How well the near-duplicate gate separates augmented copies from distinct photographs.

    python benchmarks/duplicates.py [--n 200]

Copies are made as the thesis's pipeline made them (circle crop, rotation by any angle, maybe a
mirror, an exposure change, JPEG re-compression) and, harder, by rotating the whole camera frame
(which moves the sensor's cut-off edges across the disc). Writes ``benchmarks/results/duplicates.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data import duplicates as dup
from mobiledr.data.geometry import geometric
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus

RESULTS = Path(__file__).parent / "results"
SPEC = PreprocessSpec(size=256)


def jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.ascontiguousarray(rgb[:, ::-1]) if rng.random() < 0.5 else rgb
    out = np.clip(out.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 95))])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def rotate(rgb: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    originals, crop_copies, frame_copies = [], [], []
    for i in range(args.n):
        frame, info = generate_fundus(int(rng.integers(0, 5)), 480, rng, eye="left" if i % 2 else "right")
        crop = geometric(frame, SPEC).image
        originals.append(dup.fingerprint(crop))
        crop_copy = jitter(rotate(crop, rng.uniform(-180, 180), (127.5, 127.5)), rng)
        crop_copies.append(dup.fingerprint(geometric(crop_copy, SPEC).image))
        frame_copy = jitter(rotate(frame, rng.uniform(-180, 180), info.disc_center), rng)
        frame_copies.append(dup.fingerprint(geometric(frame_copy, SPEC).image))
    start = time.perf_counter()
    pairs = dup.near_duplicate_pairs(originals)
    pair_seconds = time.perf_counter() - start
    distinct = dup.polar_correlations(originals, originals)[np.triu_indices(args.n, k=1)]
    phash_distinct = np.bitwise_count(np.array([f.phash for f in originals], np.uint64)[:, None] ^ np.array([f.phash for f in originals], np.uint64)[None, :])[np.triu_indices(args.n, k=1)]
    result: dict = {
        "images": args.n,
        "threshold": dup.POLAR_MIN_CORRELATION,
        "phash_max_distance": dup.PHASH_MAX_DISTANCE,
        "distinct_pairs": int(distinct.size),
        "distinct_flagged": len(pairs),
        "distinct_correlation_max": round(float(distinct.max()), 3),
        "distinct_correlation_p999": round(float(np.quantile(distinct, 0.999)), 3),
        "distinct_phash_min_distance": int(phash_distinct.min()),
        "all_pairs_seconds": round(pair_seconds, 3),
        "copies": {},
        "machine": machine_facts(),
    }
    for name, copies in (("crop rotated (thesis pipeline)", crop_copies), ("camera frame rotated", frame_copies)):
        corr = np.diag(dup.polar_correlations(originals, copies))
        found = set(dup.near_duplicate_pairs(originals + copies))
        detected = np.array([(i, args.n + i) in found for i in range(args.n)])
        result["copies"][name] = {
            "recall": round(float(detected.mean()), 4),
            "correlation_min": round(float(corr.min()), 3),
            "correlation_p05": round(float(np.quantile(corr, 0.05)), 3),
            "correlation_median": round(float(np.median(corr)), 3),
        }
    print(json.dumps(result, indent=2))
    lines = [
        f"# Near-duplicate gate on {args.n} synthetic photographs (polar correlation >= {dup.POLAR_MIN_CORRELATION} with chromaticity within {dup.CHROMA_MAX_DISTANCE}, or pHash distance <= {dup.PHASH_MAX_DISTANCE})",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores",
        "",
        "| copies | recall | correlation min | p05 | median |",
        "|---|---|---|---|---|",
        *[f"| {k} | {v['recall']:.1%} | {v['correlation_min']} | {v['correlation_p05']} | {v['correlation_median']} |" for k, v in result["copies"].items()],
        "",
        f"Distinct photographs: {result['distinct_flagged']} of {result['distinct_pairs']:,} pairs flagged; "
        f"correlation max {result['distinct_correlation_max']}, 99.9th percentile {result['distinct_correlation_p999']}; "
        f"smallest pHash distance {result['distinct_phash_min_distance']}. All-pairs check: {result['all_pairs_seconds']} s.",
    ]
    write_result(RESULTS, "duplicates", result, lines)


if __name__ == "__main__":
    main()
