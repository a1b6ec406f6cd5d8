"""Core ML ``.mlpackage`` models through coremltools (prediction needs macOS)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mobiledr.export.manifest import INPUT_NAME
from mobiledr.runners.base import Runner, RunnerUnavailable

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLRunner(Runner):
    runtime = "coreml"

    def __init__(self, path: Path, output_names: tuple[str, ...], renamed: dict[str, str], labels: Sequence[str],
                 compute_units: str = "CPU_ONLY", threads: int | None = None) -> None:  # fmt: skip
        super().__init__(output_names, threads)
        if sys.platform != "darwin":
            raise RunnerUnavailable("Core ML runs only on macOS")
        if compute_units not in COMPUTE_UNITS:
            raise RunnerUnavailable(f"unknown Core ML compute units {compute_units!r}; use one of {', '.join(COMPUTE_UNITS)}")
        self.path, self.renamed, self.labels, self.compute_units = Path(path), renamed, list(labels), compute_units
        self.model = None

    def load(self) -> None:
        import coremltools as ct

        self.model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit[self.compute_units])

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        from PIL import Image

        assert self.model is not None, "load() first"
        rgb = np.clip(np.rint(image[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)  # the input is an image type
        result = self.model.predict({INPUT_NAME: Image.fromarray(rgb)})
        outputs = {}
        for name in self.output_names:
            value = result[self.renamed.get(name, name)]
            if isinstance(value, dict):  # the classifier's label -> probability dictionary
                value = [[value[label] for label in self.labels]]
            outputs[name] = np.asarray(value, dtype=np.float32)
        return outputs

    def close(self) -> None:
        self.model = None
