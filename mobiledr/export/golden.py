"""Golden vectors: reference inputs and outputs a phone (or `mobiledr parity`) checks itself against.

- Geometric pairs: synthetic fundus photographs in awkward framings (4:3 capture, disc clipped by the
  frame, off-centre on a large canvas) and the geometric stage's output for each, so harness apps can
  test their own crop-and-resize code.
- Model vectors: those outputs as the model's input (N, 3, S, S) float32 0-255, and the float32
  PyTorch reference outputs.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobiledr.data.geometry import geometric, write_png
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus
from mobiledr.export.graph import DeployModel
from mobiledr.io import atomic_write_bytes, atomic_write_json

FOLDER = "golden"
VECTORS = f"{FOLDER}/vectors.npz"
GEOMETRIC = f"{FOLDER}/geometric/geometric.json"
GEOMETRIC_TOLERANCE = 3  # max |difference| per 8-bit channel allowed to another bicubic implementation


def originals(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Three synthetic photographs (RGB uint8) in the framings real cameras produce."""
    first, second, third = np.random.default_rng(seed).spawn(3)
    capture, _ = generate_fundus(2, 480, first, eye="left")  # 480 x 640, the whole disc in frame
    clipped = generate_fundus(0, 600, second, eye="right")[0][70:-70]  # the disc runs off the top and bottom
    disc, _ = generate_fundus(3, 360, third, eye="left")
    canvas = np.zeros((520, 700, 3), np.uint8)
    canvas[130:490, 40:520] = disc  # off-centre on a larger black frame
    return [("capture", capture), ("clipped", clipped), ("offset", canvas)]


def write_geometric_pairs(folder: Path, spec: PreprocessSpec) -> np.ndarray:
    """Write the originals, the expected geometric outputs and ``geometric.json``; return the outputs
    as (N, S, S, 3) uint8."""
    entries: list[dict[str, Any]] = []
    outputs = []
    for name, rgb in originals():
        result = geometric(rgb, spec)
        write_png(folder / FOLDER / "geometric" / f"{name}.png", rgb)
        write_png(folder / FOLDER / "geometric" / f"{name}.expected.png", result.image)
        entries.append(
            {
                "name": name,
                "original": f"{name}.png",
                "expected": f"{name}.expected.png",
                "original_size": list(result.original_size),
                "circle": asdict(result.circle) if result.circle else None,
                "box": list(result.box),
            }
        )
        outputs.append(result.image)
    atomic_write_json(
        folder / GEOMETRIC,
        {"size": spec.size, "mode": spec.mode, "crop_tolerance": spec.crop_tolerance, "max_abs_difference": GEOMETRIC_TOLERANCE, "pairs": entries},
    )
    return np.stack(outputs)


@torch.no_grad()
def reference_outputs(model: DeployModel, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The float32 PyTorch outputs for (N, 3, S, S) inputs, one image at a time (as deployed)."""
    rows = [model(torch.from_numpy(inputs[i : i + 1])) for i in range(len(inputs))]
    return {name: torch.cat([row[k] for row in rows]).numpy() for k, name in enumerate(model.output_names)}


def write_vectors(folder: Path, inputs: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, image=inputs, **outputs)
    atomic_write_bytes(folder / VECTORS, buffer.getvalue())


def load_vectors(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with np.load(path) as data:
        return data["image"], {key: data[key] for key in data.files if key != "image"}
