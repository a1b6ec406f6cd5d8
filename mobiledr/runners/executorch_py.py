"""ExecuTorch ``.pte`` programs through the ExecuTorch Python runtime."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mobiledr.runners.base import Runner, RunnerUnavailable

BACKENDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend"}


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: Path, output_names: tuple[str, ...], backend: str, threads: int | None = None) -> None:
        super().__init__(output_names, threads)
        self.path = Path(path)
        from executorch.extension.pybindings import portable_lib

        self._lib = portable_lib
        needed = BACKENDS.get(backend)
        if needed and needed not in portable_lib._get_registered_backend_names():
            if backend == "coreml" and sys.platform != "darwin":
                raise RunnerUnavailable("Core ML runs only on macOS")
            raise RunnerUnavailable(f"this executorch build has no {needed}")
        self.method = None

    def load(self) -> None:
        from executorch.runtime import Runtime

        if self.threads:
            self._lib._unsafe_reset_threadpool(self.threads)
        self.method = Runtime.get().load_program(self.path).load_method("forward")

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        assert self.method is not None, "load() first"
        values = self.method.execute([torch.from_numpy(image)])  # inputs on every call: planning reuses the input slot
        return {name: value.numpy().copy() for name, value in zip(self.output_names, values, strict=True)}

    def close(self) -> None:
        self.method = None
