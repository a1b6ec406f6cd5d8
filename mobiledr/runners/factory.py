"""Which runner runs an artifact, from its manifest entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest
from mobiledr.io import file_sha256
from mobiledr.runners.base import Runner, RunnerUnavailable


def artifact_runner(bundle: Path, manifest: Manifest, entry: dict[str, Any], threads: int | None = None, compute_units: str = "CPU_ONLY",
                    native: bool = False) -> Runner:  # fmt: skip
    """A runner for one of the bundle's artifacts (``native``: an XNNPACK ``.pte`` through the C++ runner
    instead of the ExecuTorch Python runtime); raises RunnerUnavailable when its runtime cannot run here."""
    path, names = Path(bundle) / entry["file"], tuple(manifest.output_names)
    if native:
        if entry["kind"] != "pte" or entry["backend"] != "xnnpack":
            raise RunnerUnavailable(f"the native runner runs XNNPACK .pte programs, not {entry['format']}")
        from mobiledr.runners.native import NativeRunner

        return NativeRunner(path, names, threads)
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


def reference_checkpoint(manifest: Manifest, given: Path | None = None) -> Path:
    """The checkpoint a bundle was exported from: ``given`` or the manifest's, and its sha256 must match."""
    path = Path(given) if given is not None else Path(manifest.source["checkpoint"])
    if not path.is_file():
        hint = "" if given is not None else " (the manifest's source.checkpoint); pass --checkpoint"
        raise MobiledrError(f"{path}: reference checkpoint not found{hint}")
    if file_sha256(path) != manifest.source["sha256"]:
        raise MobiledrError(f"{path}: not the checkpoint this bundle was exported from (sha256 differs from the manifest's source.sha256)")
    return path
