"""What every exporter works from: the checkpoint, the float32 deployed model, its exported program,
calibration and golden images. One context per worker process; expensive steps are computed once."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from mobiledr.errors import MobiledrError
from mobiledr.export.graph import DeployModel, build_deploy
from mobiledr.train.checkpoint import Checkpoint

T = TypeVar("T")


@dataclass
class ExportRequest:
    """Everything a worker process needs (picklable)."""

    checkpoint: Path
    outputs: tuple[str, ...]
    input_size: int
    calibration: np.ndarray | None  # (N, S, S, 3) uint8 geometric-stage images
    calibration_info: dict[str, Any] | None
    golden_inputs: np.ndarray  # (G, 3, S, S) float32 0-255
    golden_outputs: dict[str, np.ndarray]  # reference outputs per name, (G, ...)
    int8: str = "auto"  # an int8 recipe name (see formats.quantize.RECIPES), or "auto": the first that passes the gate
    gate: np.ndarray | None = None  # (N, S, S, 3) uint8 validation images the int8 gate judges recipes on
    gate_labels: np.ndarray | None = None
    gate_groups: list[str] | None = None
    gate_info: dict[str, Any] | None = None


class ExportContext:
    def __init__(self, request: ExportRequest) -> None:
        self.request = request
        self.checkpoint = Checkpoint.load(request.checkpoint)
        self.model: DeployModel = build_deploy(self.checkpoint, request.outputs, request.input_size)
        self.example = torch.from_numpy(request.golden_inputs[:1]).float()
        self._memo: dict[str, Any] = {}

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.model.output_names

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per context (for intermediates several formats share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def exported(self) -> torch.export.ExportedProgram:
        """The float32 model through ``torch.export`` (batch 1): traced once, a private copy per caller
        (lowering to ExecuTorch transforms the program it is given in place)."""
        return copy.deepcopy(self.memo("exported", lambda: torch.export.export(self.model, (self.example,))))

    def calibration_batches(self) -> Iterator[torch.Tensor]:
        """Calibration images one at a time as (1, 3, S, S) float32 0-255, the model input."""
        if self.request.calibration is None:
            raise MobiledrError("int8 formats need calibration images: pass --calibration-data CACHE")
        for image in self.request.calibration:
            yield torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]

    def gate_batches(self) -> list[torch.Tensor]:
        """The gate's validation images as (1, 3, S, S) float32 0-255 model inputs."""
        if self.request.gate is None:
            return []
        return [torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None] for image in self.request.gate]

    def gate_reference(self) -> dict[str, np.ndarray]:
        """The float32 PyTorch outputs on the gate's images (computed once)."""

        def compute() -> dict[str, np.ndarray]:
            with torch.no_grad():
                rows = [self.model(x) for x in self.gate_batches()]
            return {name: torch.cat([row[k] for row in rows]).numpy() for k, name in enumerate(self.output_names)}

        return self.memo("gate_reference", compute)

    def golden_expected(self) -> list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
        """(input (1, 3, S, S), reference outputs) pairs of the golden vectors."""
        names, request = self.output_names, self.request
        return [
            (torch.from_numpy(request.golden_inputs[i : i + 1]), tuple(torch.from_numpy(request.golden_outputs[n][i : i + 1]) for n in names))
            for i in range(len(request.golden_inputs))
        ]
