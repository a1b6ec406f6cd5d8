"""The model family: torchvision layout, the thesis's numbers, configs and modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mobiledr.errors import MobiledrError
from mobiledr.models import PRESETS, ModelConfig, build_model, get_preset
from mobiledr.models.mobilenetv3 import build_features
from mobiledr.models.summary import summarize

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "torchvision_mobilenet_v3_layout.json").read_text())


@pytest.mark.parametrize("variant", sorted(LAYOUT["variants"]))
def test_features_match_torchvision_layout(variant: str) -> None:
    """Keys, key order and shapes of ``features`` equal torchvision's, for every option."""
    spec = LAYOUT["variants"][variant]
    features = build_features(spec["arch"], **spec["kwargs"]).eval()
    ours = {f"features.{k}": list(v.shape) for k, v in features.state_dict().items()}
    theirs = {k: v for k, v in spec["state_dict"].items() if k.startswith("features.")}
    assert list(ours) == list(theirs)
    assert ours == theirs
    with torch.no_grad():
        assert list(features(torch.zeros(1, 3, 224, 224)).shape) == spec["features_output_224"]


def test_full_torchvision_key_counts() -> None:
    assert len(LAYOUT["variants"]["large"]["state_dict"]) == 312
    assert len(LAYOUT["variants"]["small"]["state_dict"]) == 244


def test_thesis_preset_numbers() -> None:
    """Figure 3.5: 3,495,685 trainable parameters, 24,400 BN statistics, 960x16x16 at 512."""
    model = build_model(get_preset("thesis-dr")).eval()
    summary = summarize(model)
    assert summary.trainable_params == 3_495_685
    assert summary.bn_statistics == 24_400
    assert summary.trainable_params + summary.bn_statistics == 3_520_085  # Keras' total
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 512, 512)).shape == (1, 960, 16, 16)


def _classifier_cost(arch: str) -> tuple[int, int]:
    """Params and MACs of torchvision's ImageNet classifier, from the fixture's shapes."""
    shapes = {k: v for k, v in LAYOUT["variants"][arch]["state_dict"].items() if k.startswith("classifier.")}
    params = sum(torch.Size(s).numel() for s in shapes.values())
    macs = sum(torch.Size(s).numel() for k, s in shapes.items() if k.endswith("weight"))
    return params, macs


@pytest.mark.parametrize(
    ("arch", "params", "macs", "published_params", "published_gmacs"),
    [("large", 2_971_952, 214_080_960, 5_483_032, 0.217), ("small", 927_008, 54_896_576, 2_542_856, 0.057)],
)
def test_backbone_cost_at_224(arch: str, params: int, macs: int, published_params: int, published_gmacs: float) -> None:
    model = build_model(ModelConfig(arch=arch, input_size=224))
    summary = summarize(model)
    feature_rows = [r for r in summary.rows if r.name.startswith("features.")]
    assert sum(r.params for r in feature_rows) == params
    assert sum(r.macs for r in feature_rows) == macs
    head_params, head_macs = _classifier_cost(arch)
    assert params + head_params == published_params
    assert round((macs + head_macs) / 1e9, 3) == published_gmacs


def test_summary_rows_add_up() -> None:
    summary = summarize(build_model(get_preset("oct-kermany")))
    assert sum(r.params for r in summary.rows) == summary.trainable_params
    assert sum(r.macs for r in summary.rows) == summary.macs
    assert summary.rows[-1].output_shape == (1, 4)
    assert summary.fp32_bytes == 4 * (summary.trainable_params + summary.bn_statistics)
    assert summary.int8_bytes < summary.fp32_bytes / 3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_forward(name: str) -> None:
    config = get_preset(name)
    model = build_model(config).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, config.input_size, config.input_size))
    assert logits.shape == (2, config.num_classes)
    assert torch.isfinite(logits).all()


def test_eval_mode_is_deterministic_and_batch_independent() -> None:
    model = build_model(ModelConfig(arch="small", input_size=64)).eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        batch = model(x)
        again = model(x)
        single = model(x[:1])
    assert torch.equal(batch, again)
    torch.testing.assert_close(single, batch[:1], rtol=1e-4, atol=1e-5)


def test_train_mode_uses_dropout_and_updates_bn() -> None:
    model = build_model(ModelConfig(arch="small", input_size=64, dropout=0.5)).train()
    bn = model.features[0][1]
    before = bn.running_mean.clone()
    x = torch.rand(4, 3, 64, 64)
    torch.manual_seed(0)
    first = model(x)
    second = model(x)
    assert not torch.allclose(first, second)  # dropout draws differ
    assert int(bn.num_batches_tracked) == 2
    assert not torch.equal(before, bn.running_mean)
    first.sum().backward()
    assert model.features[0][0].weight.grad is not None


def test_head_and_attention_options() -> None:
    linear = build_model(ModelConfig(arch="small", input_size=64, head_hidden=0, cbam_reduction=16, cbam_spatial_bn=True))
    assert [type(m) for m in linear.head.fc] == [nn.Linear]
    assert linear.attention.channel.mlp[0].out_features == 576 // 16
    assert linear.attention.spatial.conv.bias is None
    assert isinstance(linear.attention.spatial.bn, nn.BatchNorm2d)
    thesis = build_model(get_preset("thesis-dr"))
    assert thesis.attention.spatial.conv.weight.numel() + thesis.attention.spatial.conv.bias.numel() == 99
    plain = build_model(ModelConfig(arch="small", input_size=64, cbam=False, cbam_kernel=3))
    assert isinstance(plain.attention, nn.Identity)
    x = torch.rand(1, 3, 64, 64)
    for model in (linear.eval(), plain.eval()):
        with torch.no_grad():
            assert model(x).shape == (1, 2)


def test_cbam_residual_adds_backbone_map() -> None:
    model = build_model(ModelConfig(arch="small", input_size=64)).eval()
    feats = torch.rand(1, 576, 2, 2)
    channel = model.attention.channel(feats)
    attended = channel * model.attention.spatial(channel)
    torch.testing.assert_close(model.attention(feats), feats + attended)
    model.attention.residual = False
    torch.testing.assert_close(model.attention(feats), attended)


def test_config_round_trip_and_files(tmp_path: Path) -> None:
    config = get_preset("oct-kermany").replace(width_mult=0.75, dropout=0.3)
    assert ModelConfig.from_dict(json.loads(config.to_json())) == config
    path = tmp_path / "model.yaml"
    path.write_text("model:\n  arch: small\n  num_classes: 5\n  input_size: 256\n  width_mult: 1\n")
    loaded = ModelConfig.from_file(path)
    assert (loaded.arch, loaded.num_classes, loaded.width_mult) == ("small", 5, 1.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"arch": "medium"}, "arch must be one of"),
        ({"num_classes": 1}, "num_classes must be >= 2"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"cbam_kernel": 4}, "cbam_kernel must be a positive odd number"),
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"num_classes": "two"}, "num_classes must be int"),
        ({"cbam": 1}, "cbam must be bool"),
    ],
)
def test_config_rejects_bad_values(data: dict, message: str) -> None:
    with pytest.raises(MobiledrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelConfig.from_dict(data)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="config file not found"):
        ModelConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(MobiledrError, match="expected a mapping"):
        ModelConfig.from_file(bad)
    with pytest.raises(MobiledrError, match="unknown preset 'x'"):
        get_preset("x")
