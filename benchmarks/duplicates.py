"""False pairs and recall of the near-duplicate gate, per frame size and kind of copy.

    python benchmarks/duplicates.py [--n 400] [--sizes 128 256 512] [--cache-size 224]

For each frame size, ``--n`` fresh synthetic photographs (every one a different eye) go through the
same path as ``data prepare`` (geometric stage to ``--cache-size``, fingerprint at 256 px) and then
through ``find_near_duplicates``: every flagged pair among them is a false pair. Each photograph then
gets a copy per kind of transformation, made on the camera frame as a user's augmentation script
would save it (rotated about the disc centre by any angle, mirrored, re-exposed, re-compressed,
rescaled, all of these at once, and the thesis's pipeline: the circle crop rotated), and the gate
runs on originals + copies: recall is the share of (original, copy) pairs flagged, and any other
flagged pair is a false one. Real photographs: the ones the installed packages ship (scikit-learn's
and matplotlib's sample photographs), cut into non-overlapping tiles shown in a fundus-like circular
field. Writes ``benchmarks/results/duplicates.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data import duplicates as dup
from mobiledr.data.geometry import geometric, resample
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus

RESULTS = Path(__file__).parent / "results"


def rotate(rgb: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray:
    return cv2.warpAffine(rgb, cv2.getRotationMatrix2D(centre, angle, 1.0), (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR)


def mirror(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def expose(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gain of 0.7-1.3 and a gamma of 0.8-1.25."""
    scaled = (rgb.astype(np.float32) / 255) ** rng.uniform(0.8, 1.25) * rng.uniform(0.7, 1.3)
    return np.clip(scaled * 255, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-compression at quality 50-95."""
    _, data = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def rescale(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resized by 0.5-2x (a copy saved at another resolution)."""
    factor = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    size = (max(32, round(rgb.shape[1] * factor)), max(32, round(rgb.shape[0] * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


Transform = Callable[[np.ndarray, tuple[float, float], np.ndarray, np.random.Generator], np.ndarray]


def _all(frame: np.ndarray, centre: tuple[float, float], crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = rotate(frame, rng.uniform(-180, 180), centre)
    out = mirror(out) if rng.random() < 0.5 else out
    return jpeg(rescale(expose(out, rng), rng), rng)


TRANSFORMS: dict[str, Transform] = {
    "rotated (any angle)": lambda frame, centre, crop, rng: rotate(frame, rng.uniform(-180, 180), centre),
    "mirrored": lambda frame, centre, crop, rng: mirror(frame),
    "re-exposed": lambda frame, centre, crop, rng: expose(frame, rng),
    "re-compressed (JPEG 50-95)": lambda frame, centre, crop, rng: jpeg(frame, rng),
    "rescaled (0.5-2x)": lambda frame, centre, crop, rng: rescale(frame, rng),
    "all of these at once": _all,
    "crop rotated (thesis pipeline)": lambda frame, centre, crop, rng: jpeg(
        rotate(crop, rng.uniform(-180, 180), ((crop.shape[1] - 1) / 2, (crop.shape[0] - 1) / 2)), rng
    ),
}


class Prepared:
    """Images as ``data prepare`` caches them: the geometric stage's output and the fingerprint."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec, self.images, self.fingerprints = spec, [], []

    def add(self, frame: np.ndarray) -> np.ndarray:
        result = geometric(frame, self.spec)
        self.images.append(result.image)
        self.fingerprints.append(dup.fingerprint(resample(result, frame, dup.FINGERPRINT_SIZE)))
        return result.image


class Subset:
    """A keypoint cache for a search over some of the prepared images (local index -> global)."""

    def __init__(self, shared: dup.KeypointCache, ids: list[int]) -> None:
        self.shared, self.ids = shared, ids

    @property
    def computed(self) -> int:
        return self.shared.computed

    def get(self, index: int, mirrored: bool = False) -> dup.Keypoints:
        return self.shared.get(self.ids[index], mirrored)


def evaluate(prepared: Prepared, n: int, originals: list[int], copies: dict[str, list[int]]) -> dict:
    """False pairs among the originals (timed, keypoints computed from scratch), then recall per kind of copy."""
    start, cpu = time.perf_counter(), time.process_time()
    alone = dup.find_near_duplicates([prepared.fingerprints[i] for i in originals], lambda i: prepared.images[originals[i]])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    shared = dup.KeypointCache(lambda i: prepared.images[i], capacity=10**9)
    rejected = [c.match.inliers for c in alone.candidates if not c.verified and c.match.plausible]
    out = {
        "images": n,
        "distinct_pairs": n * (n - 1) // 2,
        "false_pairs": len(alone.pairs),
        "candidates": len(alone.candidates),
        "candidate_inliers_max": max(rejected, default=0),  # under a plausible transform (scale, centre)
        "seconds_per_1000_images": round(seconds / n * 1000, 1),
        "cpu_seconds_per_1000_images": round(cpu / n * 1000, 1),  # all threads; less sensitive to other jobs
        "copies": {},
    }
    detailed = np.array([len(shared.get(i).points) >= dup.FEW_KEYPOINTS for i in originals])
    out["detailed_images"] = int(detailed.sum())  # with enough keypoints to be verified by them
    for name, ids in copies.items():
        every = originals + ids
        search = dup.find_near_duplicates([prepared.fingerprints[i] for i in every], lambda i: prepared.images[every[i]], keypoint_cache=Subset(shared, every))
        by_pair = {(c.i, c.j): c for c in search.candidates}
        found = [by_pair.get((i, n + i)) for i in range(n)]
        inliers = np.array([c.match.inliers if c else 0 for c in found])
        out["copies"][name] = {
            "recall": round(float(np.mean([bool(c and c.verified) for c in found])), 4),
            "recall_detailed": round(float(np.mean([bool(c and c.verified) for c, d in zip(found, detailed) if d])), 4) if detailed.any() else None,
            "candidate_recall": round(float(np.mean([c is not None for c in found])), 4),
            "missed": int(sum(not (c and c.verified) for c in found)),
            "false_pairs": sum(1 for c in search.pairs if c.j != n + c.i),
            "inliers_min": int(inliers.min()),
            "inliers_p05": float(np.quantile(inliers, 0.05)),
            "inliers_median": float(np.median(inliers)),
        }
    return out


def synthetic(n: int, size: int, cache_size: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, size])
    prepared = Prepared(PreprocessSpec(size=cache_size))
    frames = []
    for i in range(n):
        frame, info = generate_fundus(int(rng.integers(0, 5)), size, rng, eye="left" if i % 2 else "right")
        frames.append((frame, info.disc_center, prepared.add(frame)))
    copies = add_copies(prepared, frames, rng)
    return {"frame_size": size, "cache_size": cache_size, **evaluate(prepared, n, list(range(n)), copies)}


def add_copies(prepared: Prepared, frames: list, rng: np.random.Generator) -> dict[str, list[int]]:
    """Every transformation of every (frame, disc centre, crop) added to ``prepared``: the copies' indices per transformation."""
    copies: dict[str, list[int]] = {}
    for name, transform in TRANSFORMS.items():
        copies[name] = []
        for frame, centre, crop in frames:
            prepared.add(transform(frame, centre, crop, rng))
            copies[name].append(len(prepared.images) - 1)
    return copies


def real_photographs(side: int = 256) -> list[np.ndarray]:
    """Non-overlapping square tiles of the sample photographs shipped by scikit-learn and matplotlib,
    each in a circular field on black (so the geometric stage crops it as it crops a fundus)."""
    from sklearn.datasets import load_sample_images

    from mobiledr.data.samples import sample_photographs

    photos = list(load_sample_images().images) + [rgb for name, rgb in sample_photographs() if name == "grace_hopper"]
    tiles = []
    for photo in photos:
        tile = min(photo.shape[:2]) // 3
        for y in range(0, photo.shape[0] - tile + 1, tile):
            for x in range(0, photo.shape[1] - tile + 1, tile):
                square = cv2.resize(photo[y : y + tile, x : x + tile], (side, side), interpolation=cv2.INTER_AREA)
                frame = np.zeros((side, round(side * 4 / 3), 3), np.uint8)
                field = np.zeros((side, side), np.uint8)
                cv2.circle(field, (side // 2, side // 2), int(side * 0.47), 255, -1)
                offset = (frame.shape[1] - side) // 2
                frame[:, offset : offset + side][field > 0] = square[field > 0]
                tiles.append(frame)
    return tiles


def real(cache_size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    prepared = Prepared(PreprocessSpec(size=cache_size))
    frames = [(frame, ((frame.shape[1] - 1) / 2, (frame.shape[0] - 1) / 2), prepared.add(frame)) for frame in real_photographs()]
    n = len(frames)
    copies = add_copies(prepared, frames, rng)
    return {"frame_size": 256, "cache_size": cache_size, **evaluate(prepared, n, list(range(n)), copies)}


def _rows(label: str, result: dict) -> list[str]:
    head = (
        f"| {label} | all {result['distinct_pairs']:,} pairs of distinct photographs | {result['false_pairs']} false pairs | "
        f"{result['candidates']:,} candidates, most inliers {result['candidate_inliers_max']} | {result['seconds_per_1000_images']} s / 1000 images"
        + (f" ({result['cpu_seconds_per_1000_images']} s of CPU)" if "cpu_seconds_per_1000_images" in result else "")
        + " |"
    )
    rows = [head]
    for name, copy in result["copies"].items():
        detailed = result.get("detailed_images", result["images"])
        extra = f"; {copy['recall_detailed']:.1%} of the {detailed} with >= {dup.FEW_KEYPOINTS} keypoints" if detailed < result["images"] else ""
        rows.append(
            f"| {label} | {name} | recall {copy['recall']:.1%} ({copy['missed']} missed{extra}, {copy['false_pairs']} false pairs) | "
            f"candidates {copy['candidate_recall']:.1%} | inliers min {copy['inliers_min']}, p05 {copy['inliers_p05']:.0f}, median {copy['inliers_median']:.0f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="Synthetic photographs per frame size.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512], help="Frame heights in pixels.")
    parser.add_argument("--cache-size", type=int, default=224, help="The cache's image size (data prepare --size).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", action="store_true", help="Only rewrite the Markdown from the recorded JSON.")
    args = parser.parse_args()
    if args.render:
        result = json.loads((RESULTS / "duplicates.json").read_text())
        write_result(RESULTS, "duplicates", result, markdown(result, result.get("arguments", vars(args))))
        return
    result: dict = {
        "arguments": {"n": args.n, "sizes": args.sizes, "cache_size": args.cache_size, "seed": args.seed},
        "settings": {
            "candidates": {
                "phash_max_distance": dup.PHASH_MAX_DISTANCE,
                "polar_min_correlation": dup.POLAR_MIN_CORRELATION,
                "polar_top_k": dup.POLAR_TOP_K,
                "polar_floor": dup.POLAR_FLOOR,
                "shortlist": dup.SHORTLIST,
                "shortlist_frequencies": dup.SHORTLIST_FREQUENCIES,
            },
            "verification": {
                "side": dup.VERIFY_SIDE,
                "sift_features": dup.SIFT_FEATURES,
                "ratio": dup.RATIO,
                "ransac_pixels": dup.RANSAC_PIXELS,
                "min_inliers": dup.MIN_INLIERS,
                "scale_range": list(dup.SCALE_RANGE),
                "max_centre_shift": dup.MAX_CENTRE_SHIFT,
            },
        },
        "synthetic": [],
        "machine": machine_facts(),
    }
    for size in args.sizes:
        result["synthetic"].append(synthetic(args.n, size, args.cache_size, args.seed))
        print(json.dumps(result["synthetic"][-1], indent=2), flush=True)
    result["real"] = real(args.cache_size, args.seed)
    print(json.dumps(result["real"], indent=2))
    result["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    write_result(RESULTS, "duplicates", result, markdown(result, result["arguments"]))


def markdown(result: dict, args: dict) -> list[str]:
    machine = result["machine"]
    load = f"load average {machine['load_average_1min']} at the start" + (f", {machine['load_average_1min_end']} at the end" if "load_average_1min_end" in machine else "")
    lines = [
        f"# Near-duplicate gate: false pairs and recall ({args['n']} synthetic photographs per frame size, cached at {args['cache_size']} px)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({load}: the times are those of a shared machine). Reproduce: "
        f"`python benchmarks/duplicates.py --n {args['n']} --sizes {' '.join(map(str, args['sizes']))} --cache-size {args['cache_size']}`.",
        "",
        f"Candidates: pHash distance <= {dup.PHASH_MAX_DISTANCE}, or, among each image's {dup.SHORTLIST} most similar rotation-invariant "
        f"spectra, polar correlation >= {dup.POLAR_MIN_CORRELATION} or one of an image's {dup.POLAR_TOP_K} best polar matches (>= {dup.POLAR_FLOOR}). Verified: SIFT "
        f"({dup.SIFT_FEATURES} keypoints at {dup.VERIFY_SIDE} px), ratio test {dup.RATIO}, similarity transform by RANSAC ({dup.RANSAC_PIXELS} px), "
        f">= {dup.MIN_INLIERS} inliers, scale {dup.SCALE_RANGE[0]}-{dup.SCALE_RANGE[1]}, centre moved <= {dup.MAX_CENTRE_SHIFT:.0%} of the side.",
        "",
        "| set | photographs | result | candidates | keypoint inliers / time |",
        "|---|---|---|---|---|",
    ]
    for entry in result["synthetic"]:
        lines += _rows(f"synthetic, {entry['frame_size']} px frames", entry)
    lines += _rows(f"real photographs ({result['real']['images']} tiles)", result["real"])
    lines += [
        "",
        "Time per 1000 images: the whole check on the distinct photographs (candidates, keypoints of every image "
        "in a candidate pair, matching each pair straight and mirrored), fingerprints excluded (data prepare computes them). "
        "The real photographs are tiles of the sample photographs scikit-learn and matplotlib ship (no fundus "
        "photographs are on this machine); featureless tiles (sky, a blurred background) cannot be verified by keypoints.",
    ]
    return lines


if __name__ == "__main__":
    main()
