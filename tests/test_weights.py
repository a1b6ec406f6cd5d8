"""Loading torchvision-format ImageNet checkpoints: round trip, registry hashes, one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from mobiledr.errors import MobiledrError
from mobiledr.models import ModelConfig, build_model, get_preset
from mobiledr.models.weights import load_registry, registry_path

from .test_models import LAYOUT


def torchvision_checkpoint(arch: str, path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write a file in torchvision's format: random ``features`` weights plus the ImageNet classifier."""
    torch.manual_seed(seed)
    source = build_model(ModelConfig(arch=arch))
    for tensor in source.features.state_dict().values():
        if tensor.is_floating_point():
            tensor.copy_(torch.randn_like(tensor))
    state = {f"features.{k}": v.clone() for k, v in source.features.state_dict().items()}
    for key, shape in LAYOUT["variants"][arch]["state_dict"].items():
        if key.startswith("classifier."):
            state[key] = torch.randn(shape)
    assert list(state) == list(LAYOUT["variants"][arch]["state_dict"])
    torch.save(state, path)
    return state


def assert_one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_round_trip_through_torchvision_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "imagenet_large.pth"
    state = torchvision_checkpoint("large", path)
    with caplog.at_level(logging.INFO, logger="mobiledr"):
        model = build_model(get_preset("thesis-dr"), pretrained=path)
    for key, tensor in model.features.state_dict().items():
        assert torch.equal(tensor, state[f"features.{key}"]), key
    assert "dropped 4 classifier tensors" in caplog.text
    assert "classifier.3.weight" in caplog.text
    # A second build from the same file gives the same backbone; the head stays freshly initialised.
    again = build_model(get_preset("thesis-dr"), pretrained=path)
    assert torch.equal(again.features[16][0].weight, model.features[16][0].weight)
    assert model.head.fc[-1].weight.shape == (2, 64)


def test_small_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "imagenet_small.pth"
    state = torchvision_checkpoint("small", path, seed=1)
    model = build_model(get_preset("thesis-dr-small"), pretrained=path)
    assert torch.equal(model.features[12][0].weight, state["features.12.0.weight"])


def test_wrong_architecture_names_first_mismatching_key(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torchvision_checkpoint("small", path)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, str(path), "missing key features.1.block.1.0.weight", "(16, 16, 1, 1)")


def test_shape_mismatch_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.pth"
    state = torchvision_checkpoint("large", path)
    state["features.16.0.weight"] = torch.zeros(961, 160, 1, 1)
    torch.save(state, path)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, str(path), "features.16.0.weight has shape (961, 160, 1, 1)", "expects (960, 160, 1, 1)")


def test_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    state = torchvision_checkpoint("large", path)
    del state["features.5.block.2.fc1.bias"]
    torch.save(state, path)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, "missing key features.5.block.2.fc1.bias")
    state = torchvision_checkpoint("large", path)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, "unexpected key extra.weight")


def test_tampered_registered_file(tmp_path: Path) -> None:
    entry = load_registry()["mobilenet_v3_large-8738ca79.pth"]
    path = tmp_path / entry.file
    torchvision_checkpoint("large", path)  # a valid checkpoint, but not the published bytes
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, str(path), "does not match the registry (8738ca79...)")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read checkpoint"),
        (b"this is not a checkpoint", "cannot read checkpoint"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=path)
    assert_one_line(exc, str(path), message)


class Payload:
    """A pickled object that ``weights_only=True`` must refuse to construct."""


def test_weights_only_refuses_code_and_non_state_dicts(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"features.0.0.weight": Payload()}, unsafe)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=unsafe)
    assert_one_line(exc, str(unsafe), "cannot read checkpoint")
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(MobiledrError) as exc:
        build_model(get_preset("thesis-dr"), pretrained=listing)
    assert_one_line(exc, "not a state_dict")
    with pytest.raises(MobiledrError, match="checkpoint file not found"):
        build_model(get_preset("thesis-dr"), pretrained=tmp_path / "absent.pth")


def test_registry_is_consistent() -> None:
    assert registry_path().name in {"registry.json", "weights_registry.json"}
    registry = load_registry()
    assert len(registry) == 3
    for name, entry in registry.items():
        assert entry.url.endswith("/" + name)
        assert f"-{entry.sha256_prefix}.pth" in name
        assert name.startswith(f"mobilenet_v3_{entry.arch}")
