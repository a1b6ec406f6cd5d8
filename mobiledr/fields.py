"""Strict construction of config dataclasses from plain mappings (YAML, JSON, checkpoints)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mobiledr.errors import MobiledrError

_PRIMITIVES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def strict_kwargs(cls: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` checked against the dataclass ``cls``: unknown keys and wrongly typed primitive
    values are one-line errors; ints are accepted for floats and lists for float tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MobiledrError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {}
    for key, value in data.items():
        type_name = str(fields[key].type)
        expected = _PRIMITIVES.get(type_name)
        if type_name.startswith("tuple[float") and isinstance(value, (list, tuple)):
            value = tuple(float(v) for v in value)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise MobiledrError(f"{source}: {key} must be {expected.__name__}, got {value!r}")
        values[key] = value
    return values
