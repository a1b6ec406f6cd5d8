"""Figures without pyplot's global state (matplotlib's object API), written atomically as PNG."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from matplotlib.figure import Figure

from mobiledr.io import atomic_write_bytes


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
