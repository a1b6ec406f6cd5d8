"""Saliency, Grad-CAM, the exported (gradient-free) heatmap, overlays and ``mobiledr explain``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from mobiledr.cli.explain import register
from mobiledr.data.geometry import geometric, write_png
from mobiledr.data.photometric import Photometric
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import generate_fundus
from mobiledr.models import ModelConfig, build_model
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.explain import (
    HeatmapModule,
    class_weights,
    exported_heatmap,
    grad_cam,
    heatmap_method,
    normalise,
    overlay,
    pearson,
    saliency,
    to_batch,
)
from mobiledr.train.inference import Classifier

SIZE = 128  # 4x4 feature maps for the small backbone


def classifier(size: int = SIZE, **config: object) -> Classifier:
    torch.manual_seed(0)
    network = build_model(ModelConfig(arch="small", input_size=size, **config)).eval()  # type: ignore[arg-type]
    return Classifier(network, Photometric(PreprocessSpec(size=size))).eval()


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    """Two geometric-stage synthetic fundus images, (2, 3, S, S) float 0-255."""
    rng = np.random.default_rng(0)
    frames = [geometric(generate_fundus(grade, 160, rng)[0], PreprocessSpec(size=SIZE)).image for grade in (0, 4)]
    return np.stack(frames)


@pytest.mark.parametrize(("num_classes", "class_index"), [(2, None), (2, 0), (4, None)])
def test_grad_cam_equals_cam_for_linear_head(fundus: np.ndarray, num_classes: int, class_index: int | None) -> None:
    model = classifier(head_hidden=0, num_classes=num_classes)
    images = to_batch(list(fundus))
    inputs = model.photometric(images)
    cams = grad_cam(model, images, class_index)
    with torch.no_grad():
        heat = exported_heatmap(model.network, inputs, class_index)
        # CAM by hand: ReLU(sum_k (v @ W)_k A_k)
        attended = model.network.attention(model.network.features(inputs))
        weights = class_weights(model.network.head(attended), class_index) @ model.network.head.fc[0].weight
        cam = normalise(torch.einsum("nc,nchw->nhw", weights, attended))
    assert heat.shape == cams.shape == (2, SIZE // 32, SIZE // 32)
    assert torch.allclose(heat, cam, atol=1e-5)
    assert torch.allclose(cams, heat, atol=1e-4), (cams - heat).abs().max()
    assert torch.allclose(heat.amax(dim=(1, 2)), torch.ones(2))
    assert all(pearson(h, c) > 0.999 for h, c in zip(heat.numpy(), cams.numpy()))


def test_binary_score_is_the_logit_difference() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    assert class_weights(logits, None).tolist() == [[-1.0, 1.0], [-1.0, 1.0]]
    assert class_weights(logits, 0).tolist() == [[1.0, -1.0], [1.0, -1.0]]
    assert class_weights(torch.tensor([[0.0, 5.0, 1.0]]), None).tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError):
        class_weights(logits, 2)


def test_heatmap_module_exports(fundus: np.ndarray) -> None:
    model = classifier(head_hidden=0)
    module = HeatmapModule(model.network).eval()
    example = model.photometric(to_batch(list(fundus)))
    program = torch.export.export(module, (example,))
    logits, heat = program.module()(example)
    expected_logits, expected_heat = module(example)
    assert torch.allclose(logits, expected_logits, atol=1e-5) and torch.allclose(heat, expected_heat, atol=1e-5)


def test_non_linear_head_uses_cbam_spatial_gate(fundus: np.ndarray) -> None:
    model = classifier(head_hidden=16)
    inputs = model.photometric(to_batch(list(fundus)))
    assert heatmap_method(model.network) == "cbam-spatial"
    with torch.no_grad():
        features = model.network.features(inputs)
        gate = model.network.attention.spatial(model.network.attention.channel(features))[:, 0]
        heat = exported_heatmap(model.network, inputs)
    assert torch.allclose(heat, gate / gate.amax(dim=(1, 2), keepdim=True), atol=1e-6)
    plain = classifier(head_hidden=16, cbam=False)
    assert heatmap_method(plain.network) == "channel-mean"
    heat = exported_heatmap(plain.network, inputs)
    assert heat.shape == (2, SIZE // 32, SIZE // 32) and float(heat.min()) >= 0 and float(heat.amax()) <= 1


def test_saliency_shape_and_range(fundus: np.ndarray) -> None:
    model = classifier(head_hidden=0)
    maps = saliency(model, to_batch(list(fundus)))
    assert maps.shape == (2, SIZE, SIZE)
    assert float(maps.min()) >= 0 and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2))
    # outside the photometric mask the input does not reach the network
    assert float(maps[:, 0, 0].abs().max()) == 0


def test_overlay_keeps_border_black(fundus: np.ndarray) -> None:
    rgb = fundus[1].astype(np.uint8)
    rgb[:16] = 0  # a field cut off at the top, as many cameras do
    out = overlay(rgb, np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    border = (xx - (SIZE - 1) / 2) ** 2 + (yy - (SIZE - 1) / 2) ** 2 > (SIZE / 2 + 1.5) ** 2
    border[:12] = True
    border &= rgb.max(axis=2) <= 7
    assert border.mean() > 0.2 and (out[border] == rgb[border]).all()
    assert out.shape == rgb.shape and (np.abs(out.astype(int) - rgb).sum(axis=2) > 10).mean() > 0.5


def test_cli_writes_panels_and_json(tmp_path: Path) -> None:
    size = 64
    torch.manual_seed(0)
    config = ModelConfig(arch="small", input_size=size, head_hidden=0)
    network = build_model(config).eval()
    path = tmp_path / "run" / "best.pt"
    Checkpoint(
        model_config=config, preprocess=PreprocessSpec(size=size), labels=["no DR", "DR"], scheme="any-dr",
        state_dict=network.state_dict(), threshold=0.5, temperature=1.3,
    ).save(path)
    rng = np.random.default_rng(0)
    sources = []
    for grade in (0, 3):
        sources.append(tmp_path / f"eye{grade}.png")
        write_png(sources[-1], generate_fundus(grade, 128, rng)[0])
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, [str(path), *map(str, sources), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((out / "explanations.json").read_text())
    assert report["heatmap"] == "cam" and report["temperature"] == 1.3
    for source, entry in zip(sources, report["images"]):
        assert entry["source"] == str(source) and entry["output"] == str(out / f"{source.stem}_explain.png")
        panel = cv2.imread(entry["output"])
        assert panel is not None and panel.shape[1] > 3 * panel.shape[0]
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0)
        assert entry["decision"] == ("DR" if entry["probabilities"]["DR"] >= 0.5 else "no DR")
        assert entry["explained_class"] == "DR" and entry["heatmap_correlation"] > 0.999

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    result = runner.invoke(app, [str(path), str(bad), str(sources[0]), "--out", str(tmp_path / "out2"), "--class", "no DR"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: not an image (format not recognised)"]
    report = json.loads((tmp_path / "out2" / "explanations.json").read_text())
    assert report["images"][0] == {"source": str(bad), "error": "not an image (format not recognised)"}
    assert report["images"][1]["explained_class"] == "no DR"
    assert (tmp_path / "out2" / "eye0_explain.png").is_file()
