"""How far the deployed photometric stage's blur is from the exact Gaussian.

    python benchmarks/photometric_error.py [--n 24]

The Ben Graham blur inside every artifact runs at reduced resolution (a stride-2 binomial pyramid, a
short Gaussian, bilinear upsampling by octaves) so XNNPACK runs it cheaply. This compares its Ben
Graham output with OpenCV's full-resolution ``GaussianBlur`` (``mobiledr.data.photometric.opencv_reference``)
inside the mask circle, at 128, 256 and 512 px, on synthetic fundus photographs of every grade through the
geometric stage and on the real photographs matplotlib ships. Limits: mean |difference| <= 0.5 and
max <= 3 grey levels (0-255). Writes ``benchmarks/results/photometric_error.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.geometry import geometric, resize_square
from mobiledr.data.photometric import Photometric, opencv_reference
from mobiledr.data.samples import sample_photographs
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus

RESULTS = Path(__file__).parent / "results"
MEAN_LIMIT, MAX_LIMIT = 0.5, 3.0


def errors(stage: Photometric, image: np.ndarray) -> tuple[float, float]:
    expected, inside = opencv_reference(image, stage.spec)
    ours = stage.enhance(torch.from_numpy(image).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    difference = np.abs(ours - expected)[inside]
    return float(difference.mean()), float(difference.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="synthetic photographs per size")
    args = parser.parse_args()
    rows = []
    for size in (128, 256, 512):
        spec = PreprocessSpec(size=size)
        stage = Photometric(spec)
        rng = np.random.default_rng(size)
        sets = {
            "synthetic fundus": [geometric(generate_fundus(i % 5, max(400, size + 100), rng)[0], spec).image for i in range(args.n)],
            "real photographs (matplotlib samples)": [resize_square(rgb, size) for _, rgb in sample_photographs()],
        }
        for name, images in sets.items():
            measured = np.array([errors(stage, image) for image in images])
            rows.append({
                "size": size, "images": name, "count": len(images), "factor": stage.factor, "low_sigma": round(stage.low_sigma, 3),
                "exact_sigma": round(spec.blur_sigma, 3), "mean_abs_worst": round(float(measured[:, 0].max()), 3),
                "max_abs_worst": round(float(measured[:, 1].max()), 3),
                "ok": bool(measured[:, 0].max() <= MEAN_LIMIT and measured[:, 1].max() <= MAX_LIMIT),
            })  # fmt: skip
    machine = machine_facts()
    md = [
        "# Photometric stage: reduced-resolution blur vs the exact Gaussian (Ben Graham output, grey levels, inside the mask)",
        "",
        f"Command: `python benchmarks/photometric_error.py --n {args.n}`. Machine: {machine['cpu']} ({machine['cores']} cores).",
        f"Limits: mean |difference| <= {MEAN_LIMIT}, max <= {MAX_LIMIT} (worst image of each set shown).",
        "",
        "| size | images | n | pyramid factor | low-res sigma | exact sigma | mean abs (worst image) | max abs (worst image) | within limits |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['size']} | {r['images']} | {r['count']} | {r['factor']} | {r['low_sigma']} | {r['exact_sigma']} | {r['mean_abs_worst']} | "
          f"{r['max_abs_worst']} | {'yes' if r['ok'] else 'NO'} |" for r in rows],
    ]  # fmt: skip
    write_result(RESULTS, "photometric_error", {"limits": {"mean_abs": MEAN_LIMIT, "max_abs": MAX_LIMIT}, "rows": rows, "machine": machine}, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
