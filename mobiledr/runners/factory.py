"""Which runner runs an artifact, from its manifest entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest
from mobiledr.runners.base import Runner


def artifact_runner(bundle: Path, manifest: Manifest, entry: dict[str, Any], threads: int | None = None, compute_units: str = "CPU_ONLY") -> Runner:
    """A runner for one of the bundle's artifacts; raises RunnerUnavailable when its runtime cannot run here."""
    path, names = Path(bundle) / entry["file"], tuple(manifest.output_names)
    if entry["kind"] == "pte":
        from mobiledr.runners.executorch_py import ExecuTorchRunner

        return ExecuTorchRunner(path, names, entry["backend"], threads)
    if entry["kind"] in ("onnx", "ort"):
        from mobiledr.runners.onnx_runtime import OrtRunner

        return OrtRunner(path, names, threads)
    if entry["kind"] == "mlpackage":
        from mobiledr.runners.core_ml import CoreMLRunner

        return CoreMLRunner(path, names, entry["output_names"], manifest.labels, compute_units, threads)
    raise MobiledrError(f"{entry['file']}: no runner for artifact kind {entry['kind']!r}")


def reference_runner(manifest: Manifest, checkpoint: Path, threads: int | None = None) -> Runner:
    """The PyTorch eager reference for a bundle: its checkpoint's float32 deployed model."""
    from mobiledr.runners.torch_eager import TorchRunner

    return TorchRunner(checkpoint, tuple(manifest.output_names), manifest.model["input_size"], threads)
