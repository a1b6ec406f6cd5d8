"""Local torchvision ImageNet checkpoints: the registry, hash checks and strict backbone loading."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from mobiledr.errors import MobiledrError

log = logging.getLogger(__name__)

DROPPED_PREFIX = "classifier."
KEPT_PREFIX = "features."


@dataclass(frozen=True)
class RegistryEntry:
    """One known checkpoint file (``weights/registry.json``)."""

    file: str
    arch: str
    weights: str
    url: str
    sha256_prefix: str
    imagenet_top1: float


def registry_path() -> Path:
    """``weights/registry.json``: packaged into wheels, read from the source tree otherwise."""
    packaged = resources.files("mobiledr").joinpath("weights_registry.json")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "weights" / "registry.json"


def load_registry() -> dict[str, RegistryEntry]:
    """Registered checkpoints by file name."""
    data = json.loads(registry_path().read_text())
    return {entry["file"]: RegistryEntry(**entry) for entry in data["checkpoints"]}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_registered(path: Path) -> RegistryEntry | None:
    """Check a registered file's sha256; return its entry (``None`` if the name is not registered)."""
    entry = load_registry().get(path.name)
    if entry is None:
        return None
    digest = sha256_file(path)
    if not digest.startswith(entry.sha256_prefix):
        raise MobiledrError(
            f"{path}: sha256 {digest[:16]}... does not match the registry ({entry.sha256_prefix}...): "
            "the file is corrupt or has been modified"
        )
    return entry


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict with ``weights_only=True``; every failure is a one-line MobiledrError."""
    path = Path(path)
    if not path.is_file():
        raise MobiledrError(f"{path}: checkpoint file not found")
    verify_registered(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MobiledrError(f"{path}: cannot read checkpoint: {first_line}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MobiledrError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    return state


def load_backbone(features: nn.Module, path: str | Path) -> None:
    """Load a torchvision-format MobileNetV3 checkpoint into ``features`` with strict key/shape checks.

    ``classifier.*`` keys (torchvision's ImageNet head) are dropped with a log message; any other
    difference (a missing, extra or differently shaped tensor) raises a MobiledrError naming the
    file and the first offending key.
    """
    path = Path(path)
    state = read_state_dict(path)
    dropped = [k for k in state if k.startswith(DROPPED_PREFIX)]
    if dropped:
        log.info("%s: dropped %d classifier tensors (%s) of the ImageNet head", path, len(dropped), ", ".join(dropped))
    wanted = {KEPT_PREFIX + k: v for k, v in features.state_dict().items()}
    given = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIX)}
    for key, tensor in wanted.items():
        if key not in given:
            raise MobiledrError(f"{path}: missing key {key} (expected shape {tuple(tensor.shape)})")
        if given[key].shape != tensor.shape:
            raise MobiledrError(
                f"{path}: key {key} has shape {tuple(given[key].shape)} in the checkpoint, "
                f"the model expects {tuple(tensor.shape)}"
            )
    extra = [k for k in given if k not in wanted]
    if extra:
        raise MobiledrError(f"{path}: unexpected key {extra[0]} ({len(extra)} keys the backbone does not have)")
    features.load_state_dict({k[len(KEPT_PREFIX) :]: v for k, v in given.items()}, strict=True)
    log.info("%s: loaded %d backbone tensors", path, len(given))
