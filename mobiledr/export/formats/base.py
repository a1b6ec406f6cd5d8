"""The exporter interface: a ``Format`` turns an :class:`~mobiledr.export.context.ExportContext` into
artifact files in a folder and describes each with an :class:`Artifact`.

Adding a format (TFLite, QNN, ...) is one new module defining ``Format`` objects and one line in
:mod:`mobiledr.export.formats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobiledr.export.context import ExportContext


@dataclass
class Artifact:
    """One file (or ``.mlpackage`` folder) of the bundle, as the manifest lists it."""

    file: str  # relative to the bundle root
    format: str  # the Format id that produced it
    kind: str  # pte | onnx | ort | mlpackage
    runtime: str  # executorch | onnxruntime | onnxruntime-mobile | coreml
    backend: str  # xnnpack | coreml | cpu | ...
    precision: str  # fp32 | fp16 | int8 | int8-weights | palettized-6bit
    quantization: dict[str, Any] | None = None
    extras: dict[str, str] = field(default_factory=dict)  # companion files: name -> relative path
    output_names: dict[str, str] = field(default_factory=dict)  # manifest output -> this artifact's name, where they differ
    export_seconds: float = 0.0
    delegation: dict[str, Any] | None = None  # ExecuTorch programs: delegates and ops inside/outside them
    int8_gate: dict[str, Any] | None = None  # int8 artifacts: the recipe attempts and the gate's verdict

    def to_dict(self) -> dict[str, Any]:
        optional = {"delegation": self.delegation, "int8_gate": self.int8_gate}
        return {
            "file": self.file,
            "format": self.format,
            "kind": self.kind,
            "runtime": self.runtime,
            "backend": self.backend,
            "precision": self.precision,
            "quantization": self.quantization,
            "extras": dict(self.extras),
            "output_names": dict(self.output_names),
            "export_seconds": round(self.export_seconds, 2),
            **{key: value for key, value in optional.items() if value is not None},
        }


@dataclass(frozen=True)
class Format:
    """An exporter: ``export(context, folder)`` writes files under ``folder`` and returns their artifacts."""

    id: str
    description: str
    export: Callable[[ExportContext, Path], list[Artifact]]
    calibrated: bool = False  # needs calibration images
    cost: float = 1.0  # relative export time, used to spread formats over worker processes
