"""``TrainConfig``: every training knob, from a preset, a YAML file and ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError
from mobiledr.fields import strict_kwargs
from mobiledr.models.config import ModelConfig, get_preset


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Nested ``model`` and ``preprocess`` are the configs stored in checkpoints."""

    preset: str = "thesis-dr"
    model: ModelConfig = field(default_factory=lambda: get_preset("thesis-dr"))
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    scheme: str = "any-dr"
    epochs: int = 20
    freeze_epochs: int = 5  # stage 1: backbone frozen, head and attention train at head_lr
    head_lr: float = 1e-3
    lr: float = 1e-4  # stage 2: everything at this (lower) rate
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine (with warm-up) | plateau | constant
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    class_weights: bool = True  # inverse class frequency of the training split
    augment: bool = True
    batch_size: int = 32
    workers: int = 2
    amp: str = "auto"  # auto (fp16 on CUDA, bf16 where supported, else off) | fp16 | bf16 | off
    channels_last: bool = True
    bn_momentum: float = 0.01  # torchvision's (Keras' 0.99); short runs from scratch need ~0.1
    pretrained: str = ""  # a torchvision ImageNet checkpoint for the backbone; "" = from scratch
    early_stopping: int = 5  # epochs without a better validation score; 0 = never stop early
    seed: int = 0
    target_sensitivity: float = 0.9  # operating threshold chosen on validation for this sensitivity
    threshold_method: str = "sensitivity"  # sensitivity | youden
    ood_accept: float = 0.95  # fraction of validation images the OOD gate must accept

    def __post_init__(self) -> None:
        checks = {
            "optimizer": self.optimizer in ("adam", "adamw"),
            "schedule": self.schedule in ("cosine", "plateau", "constant"),
            "amp": self.amp in ("auto", "fp16", "bf16", "off"),
            "threshold_method": self.threshold_method in ("sensitivity", "youden"),
            "epochs": self.epochs >= 1,
            "freeze_epochs": 0 <= self.freeze_epochs <= self.epochs,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0 and self.head_lr > 0,
            "target_sensitivity": 0 < self.target_sensitivity < 1,
            "ood_accept": 0 < self.ood_accept <= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "bn_momentum": 0 < self.bn_momentum <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise MobiledrError(f"invalid training config: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        if self.model.input_size != self.preprocess.size:
            raise MobiledrError(f"model.input_size {self.model.input_size} differs from preprocess.size {self.preprocess.size}")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model"], data["preprocess"] = self.model.to_dict(), self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        values = strict_kwargs(cls, data, source)
        if isinstance(values.get("model"), dict):
            values["model"] = ModelConfig.from_dict(values["model"], source=f"{source} (model)")
        if isinstance(values.get("preprocess"), dict):
            values["preprocess"] = PreprocessSpec.from_dict(values["preprocess"])
        return cls(**values)


def _set_path(data: dict[str, Any], dotted: str, text: str) -> None:
    """Apply one ``key=value`` (``model.arch=small``), parsed as the type of the value it replaces."""
    keys = dotted.split(".")
    target = data
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            raise MobiledrError(f"--set {dotted}: {key} is not a section")
        target = target[key]
    if keys[-1] not in target:
        raise MobiledrError(f"--set {dotted}: unknown key {keys[-1]!r}; known: {', '.join(target)}")
    current = target[keys[-1]]
    if isinstance(current, str):
        target[keys[-1]] = text
    elif isinstance(current, float):  # YAML reads "3e-3" as a string; floats parse it
        try:
            target[keys[-1]] = float(text)
        except ValueError:
            raise MobiledrError(f"--set {dotted}: {text!r} is not a number") from None
    else:
        target[keys[-1]] = yaml.safe_load(text)


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # The thesis: MobileNetV3-Large + CBAM at 512, any DR, Adam 1e-4, dropout 0.2, weight decay.
    "thesis-dr": {"model": get_preset("thesis-dr").to_dict(), "preprocess": PreprocessSpec(size=512).to_dict()},
    "thesis-dr-small": {"model": get_preset("thesis-dr-small").to_dict(), "preprocess": PreprocessSpec(size=512).to_dict()},
    # The OCT project: 224, four classes, 10 frozen epochs then fine-tuning at 1e-5, FP16.
    "oct-kermany": {
        "model": get_preset("oct-kermany").to_dict(),
        "preprocess": PreprocessSpec.for_oct(224).to_dict(),
        "scheme": "oct-4",
        "epochs": 25,
        "freeze_epochs": 10,
        "lr": 1e-5,
    },
    # A few CPU minutes on synthetic data: Small at 128 px with a linear head (exact CAM), from
    # scratch; validation AUC 0.905 on 1,000 synthetic images (benchmarks/results/synth_training.md).
    "demo": {
        "model": ModelConfig(name="demo", arch="small", num_classes=2, input_size=128, head_hidden=0).to_dict(),
        "preprocess": PreprocessSpec(size=128).to_dict(),
        "epochs": 20,
        "freeze_epochs": 0,
        "lr": 3e-3,
        "bn_momentum": 0.1,
        "batch_size": 32,
        "early_stopping": 0,
    },
}


def load_train_config(preset: str | None = None, config_file: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Preset, then the YAML file, then each ``key=value`` override, in that order."""
    name = preset or "thesis-dr"
    if name not in TRAIN_PRESETS:
        raise MobiledrError(f"unknown preset {name!r}; known: {', '.join(TRAIN_PRESETS)}")
    data = TrainConfig().to_dict()
    data["preset"] = name
    data.update(copy.deepcopy(TRAIN_PRESETS[name]))  # overrides below must not edit the preset
    if config_file:
        path = Path(config_file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MobiledrError(f"{path}: cannot read config: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise MobiledrError(f"{path}: expected a mapping of training config fields")
        for key, value in loaded.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise MobiledrError(f"--set {item}: expected key=value")
        _set_path(data, key.strip(), text.strip())
    return TrainConfig.from_dict(data, source=str(config_file or f"preset {name}"))
