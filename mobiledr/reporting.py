"""Small formatting helpers shared by the Markdown reports (evaluation, parity, benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def ci(pair: list[float | None] | tuple[float, float] | None, show: Callable[[float | None], str] = pct) -> str:
    """An interval as 'low - high' ('n/a' when undefined)."""
    return "n/a" if pair is None or pair[0] is None or (isinstance(pair[0], float) and math.isnan(pair[0])) else f"{show(pair[0])} - {show(pair[1])}"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, followed by a blank line."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows), ""]


def json_safe(value: Any) -> Any:
    """NaN and infinities (undefined or unbounded values) become null so the file is strict JSON;
    numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
