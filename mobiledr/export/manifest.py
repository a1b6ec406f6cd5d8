"""The bundle manifest: one type, written by ``mobiledr export``, read by parity, bench and the apps.

Its JSON Schema (``manifest.schema.json`` next to this module) is versioned; ``Manifest.load``
validates against it, so every reader sees a well-formed manifest or a one-line error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_json, file_sha256, read_json, schema_error

MANIFEST = "manifest.json"
INPUT_NAME = "image"  # every artifact's input tensor
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
SCHEMA_VERSION = 1


def tree_sha256(path: Path) -> tuple[str, int]:
    """sha256 and size of a file; for a folder (``.mlpackage``) the sha256 of its sorted
    ``relative path NUL file sha256 LF`` lines and the total size."""
    if path.is_file():
        return file_sha256(path), path.stat().st_size
    if not path.is_dir():
        raise FileNotFoundError(path)
    digest, total = hashlib.sha256(), 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        sha, size = tree_sha256(item)
        digest.update(f"{item.relative_to(path).as_posix()}\0{sha}\n".encode())
        total += size
    return digest.hexdigest(), total


def validation_error(data: Any) -> str | None:
    """The first violation of the manifest schema as 'where: what', or None."""
    return schema_error(SCHEMA_PATH, data)


@dataclass
class Manifest:
    """The bundle description; field meanings are documented in the schema."""

    created: str
    mobiledr_version: str
    target: str
    model: dict[str, Any]
    labels: list[str]
    label_scheme: str
    decision: dict[str, Any]
    ood: dict[str, Any] | None
    preprocessing: dict[str, Any]
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    failures: list[dict[str, str]]
    files: list[dict[str, Any]]
    golden: dict[str, Any]
    source: dict[str, Any]
    libraries: dict[str, str]
    format: str = "mobiledr-bundle"
    schema_version: int = SCHEMA_VERSION

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    def artifact(self, file: str) -> dict[str, Any]:
        for entry in self.artifacts:
            if entry["file"] == file:
                return entry
        raise MobiledrError(f"the bundle has no artifact {file!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, bundle: Path) -> None:
        problem = validation_error(self.to_dict())
        if problem:
            raise MobiledrError(f"internal error: the manifest does not match its schema: {problem}")
        atomic_write_json(bundle / MANIFEST, self.to_dict())

    @classmethod
    def load(cls, bundle: str | Path) -> Manifest:
        path = Path(bundle) / MANIFEST
        if not path.is_file():
            raise MobiledrError(f"{bundle}: not a mobiledr bundle ({MANIFEST} missing)")
        data = read_json(path, "manifest")
        if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
            raise MobiledrError(f"{path}: manifest schema version {data.get('schema_version')} is not {SCHEMA_VERSION}; use a matching mobiledr")
        problem = validation_error(data)
        if problem:
            raise MobiledrError(f"{path}: invalid manifest: {problem}")
        return cls(**data)
