"""The reference: the float32 deployed model in PyTorch eager mode, built from the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobiledr.export.graph import DeployModel, build_deploy
from mobiledr.runners.base import Runner
from mobiledr.train.checkpoint import Checkpoint


class TorchRunner(Runner):
    runtime = "pytorch"

    def __init__(self, checkpoint: Path, output_names: tuple[str, ...], input_size: int, threads: int | None = None) -> None:
        super().__init__(output_names, threads)
        self.checkpoint, self.input_size = Path(checkpoint), input_size
        self.model: DeployModel | None = None

    def load(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = build_deploy(Checkpoint.load(self.checkpoint), self.output_names, self.input_size)

    @torch.no_grad()
    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        assert self.model is not None, "load() first"
        values = self.model(torch.from_numpy(image))
        return {name: value.numpy() for name, value in zip(self.model.output_names, values, strict=True)}

    def close(self) -> None:
        self.model = None
