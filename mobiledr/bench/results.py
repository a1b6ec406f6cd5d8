"""Recorded benchmark results: one JSON (machine-readable) and one Markdown file (for people) per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mobiledr.io import atomic_write_text


def write_result(directory: Path, name: str, data: dict[str, Any], markdown: list[str]) -> None:
    """Write ``directory/name.json`` and ``directory/name.md`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / f"{name}.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(directory / f"{name}.md", "\n".join(markdown) + "\n")
