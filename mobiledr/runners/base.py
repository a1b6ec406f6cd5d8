"""The ``Runner`` interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from types import TracebackType

import numpy as np

from mobiledr.errors import MobiledrError


class RunnerUnavailable(MobiledrError):
    """The runtime cannot run on this machine (Core ML off macOS, a runner not built): the artifact is
    reported as skipped with this reason, never as passed."""


class Runner(ABC):
    """One artifact on one runtime. Inputs are geometric-stage images, (N, 3, S, S) float32 RGB 0-255;
    outputs are the manifest's outputs by name, (N, ...) float32, one image per inference (the artifacts
    have a batch of 1, as deployed)."""

    runtime: str = ""  # pytorch | executorch | onnxruntime | coreml | native

    def __init__(self, output_names: Sequence[str], threads: int | None = None) -> None:
        self.output_names = tuple(output_names)
        self.threads = threads

    @abstractmethod
    def load(self) -> None:
        """Load the artifact (what a phone app does once, at start-up)."""

    @abstractmethod
    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Run one (1, 3, S, S) image; the outputs by manifest name, each with a leading batch of 1."""

    def close(self) -> None:
        """Release the loaded artifact."""

    def run(self, images: np.ndarray, on_image: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
        """Run ``images`` one at a time and stack the outputs."""
        rows = []
        for i in range(len(images)):
            rows.append(self.infer(np.ascontiguousarray(images[i : i + 1], dtype=np.float32)))
            if on_image is not None:
                on_image()
        return {name: np.concatenate([row[name] for row in rows]) for name in self.output_names}

    def __enter__(self) -> Runner:
        self.load()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
