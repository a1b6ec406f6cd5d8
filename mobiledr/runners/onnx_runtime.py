"""``.onnx`` and ``.ort`` models through ONNX Runtime's CPU execution provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobiledr.export.manifest import INPUT_NAME
from mobiledr.runners.base import Runner


class OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, output_names: tuple[str, ...], threads: int | None = None) -> None:
        super().__init__(output_names, threads)
        self.path = Path(path)
        self.session = None

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        assert self.session is not None, "load() first"
        values = self.session.run(list(self.output_names), {INPUT_NAME: image})
        return dict(zip(self.output_names, values, strict=True))

    def close(self) -> None:
        self.session = None
