"""The checkpoint: everything later stages need, saved atomically and loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors and Python primitives (no pickled classes), so
``torch.load(path, weights_only=True)`` reads it and nothing in it can run code.
"""

from __future__ import annotations

import io
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobiledr import __version__
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_bytes, file_sha256
from mobiledr.models import MobileDRNet, ModelConfig, build_model
from mobiledr.train.ood import OODStats

FORMAT = "mobiledr-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A trained model and its deployment facts."""

    model_config: ModelConfig
    preprocess: PreprocessSpec
    labels: list[str]
    scheme: str
    state_dict: dict[str, torch.Tensor]
    threshold: float | None = None  # operating threshold on the calibrated positive-class probability
    temperature: float = 1.0
    ood: OODStats | None = None
    epoch: int = 0
    score: float | None = None  # the validation score the best checkpoint was kept by
    metric: str = "auc"
    train_config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None  # optimizer, scheduler, scaler, RNG and history (last.pt only)
    positive: str | None = None  # the referred class of a binary model (labels[1]); None: multi-class

    @property
    def positive_class(self) -> str | None:
        """The positive (referred) class: recorded, or ``labels[1]`` for binary checkpoints written before it was."""
        return self.positive if self.positive is not None else (self.labels[1] if len(self.labels) == 2 else None)

    def build_model(self) -> MobileDRNet:
        model = build_model(self.model_config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model_config": self.model_config.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "labels": list(self.labels),
            "scheme": self.scheme,
            "state_dict": self.state_dict,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "ood": self.ood.to_dict() if self.ood else None,
            "epoch": self.epoch,
            "score": self.score,
            "metric": self.metric,
            "train_config": self.train_config,
            "provenance": self.provenance,
            "resume": self.resume,
            "positive": self.positive,
        }

    def save(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if not path.is_file():
            raise MobiledrError(f"{path}: checkpoint not found")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt, truncated or unsafe files raise many types
            text = str(exc).strip()
            raise MobiledrError(f"{path}: cannot read checkpoint: {text.splitlines()[0] if text else type(exc).__name__}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MobiledrError(f"{path}: not a mobiledr checkpoint (a torchvision file goes to --set pretrained=...)")
        if data.get("version") != VERSION:
            raise MobiledrError(f"{path}: checkpoint version {data.get('version')} is not {VERSION}")
        try:
            return cls(
                model_config=ModelConfig.from_dict(data["model_config"], source=str(path)),
                preprocess=PreprocessSpec.from_dict(data["preprocess"]),
                labels=list(data["labels"]),
                scheme=data["scheme"],
                state_dict=data["state_dict"],
                threshold=data["threshold"],
                temperature=float(data["temperature"]),
                ood=OODStats.from_dict(data["ood"]) if data["ood"] else None,
                epoch=int(data["epoch"]),
                score=data["score"],
                metric=data["metric"],
                train_config=data["train_config"],
                provenance=data["provenance"],
                resume=data["resume"],
                positive=data.get("positive"),
            )
        except KeyError as exc:
            raise MobiledrError(f"{path}: checkpoint lacks {exc.args[0]!r}") from None


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each distribution, "absent" when it is not installed."""

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return {name: ver(name) for name in names}


def provenance(split_file: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Package and library versions, the git commit (if any), the cache, and the split file's hash."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    info: dict[str, Any] = {
        "mobiledr": __version__,
        "git_commit": commit or None,
        "python": platform.python_version(),
        "libraries": library_versions(("torch", "numpy", "opencv-python-headless", "scikit-learn", "executorch", "onnxruntime")),
    }
    if cache is not None:
        info["cache"] = str(Path(cache).resolve())
    if split_file is not None:
        info["split_file"] = str(Path(split_file).resolve())
        info["split_sha256"] = file_sha256(split_file)
    return info
