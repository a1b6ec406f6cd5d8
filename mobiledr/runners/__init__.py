"""Runners: one per backend, one interface (load an artifact, run geometric-stage images, return named
outputs, release), shared by ``mobiledr parity`` and ``mobiledr bench``."""

from mobiledr.runners.base import Runner, RunnerUnavailable
from mobiledr.runners.factory import artifact_runner, reference_checkpoint, reference_runner

__all__ = ["Runner", "RunnerUnavailable", "artifact_runner", "reference_checkpoint", "reference_runner"]
