"""The format registry and the targets (which formats a phone platform gets)."""

from __future__ import annotations

from mobiledr.errors import MobiledrError
from mobiledr.export.formats import coreml, executorch, onnx
from mobiledr.export.formats.base import Artifact, Format

FORMATS: dict[str, Format] = {f.id: f for module in (executorch, onnx, coreml) for f in module.FORMATS}

TARGETS: dict[str, tuple[str, ...]] = {
    "android": ("pte-xnnpack-fp32", "pte-xnnpack-int8", "onnx-fp32", "onnx-int8"),
    "ios": ("coreml-fp16", "coreml-int8w", "coreml-pal6", "pte-coreml"),
    "desktop": ("onnx-fp32", "onnx-int8", "pte-xnnpack-fp32"),
}
TARGETS["all"] = tuple(dict.fromkeys(f for target in ("android", "ios", "desktop") for f in TARGETS[target]))


def select_formats(target: str | None, formats: str | None) -> list[Format]:
    """The formats of ``target``, or the comma-separated ``formats`` (which wins when both are given)."""
    if formats:
        ids = [name.strip() for name in formats.split(",") if name.strip()]
        unknown = [name for name in ids if name not in FORMATS]
        if unknown:
            raise MobiledrError(f"unknown format {unknown[0]!r}; known formats: {', '.join(FORMATS)}")
    elif target:
        if target not in TARGETS:
            raise MobiledrError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
        ids = list(TARGETS[target])
    else:
        raise MobiledrError("pass --target or --formats")
    return [FORMATS[name] for name in dict.fromkeys(ids)]


__all__ = ["FORMATS", "TARGETS", "Artifact", "Format", "select_formats"]
