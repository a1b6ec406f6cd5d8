"""Int8 that ships: XNNPACK programs run as one delegate, and export chooses the int8 recipe against
the int8 gate on the validation split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.splits import SplitFile
from mobiledr.errors import GateFailed, MobiledrError
from mobiledr.export import int8
from mobiledr.export.bundle import ExportOptions, export_bundle, gate_failures
from mobiledr.export.calibration import split_images
from mobiledr.export.formats import select_formats
from mobiledr.export.graph import build_deploy
from mobiledr.export.manifest import Manifest
from mobiledr.models.cbam import ChannelAttention
from mobiledr.models.mobilenetv3 import SqueezeExcitation
from mobiledr.train.checkpoint import Checkpoint, provenance

runner = CliRunner()


def test_xnnpack_programs_run_inside_one_delegate(tiny_bundle: Path) -> None:
    """Photometric stage, network, head, heatmap and OOD score all inside one XNNPACK delegate: no
    op left to ExecuTorch's portable kernels (only the delegate's output unpacking is outside)."""
    manifest = Manifest.load(tiny_bundle)
    programs = [a for a in manifest.artifacts if a["backend"] == "xnnpack"]
    assert {a["precision"] for a in programs} == {"fp32", "int8"}
    for entry in programs:
        assert entry["delegation"]["delegates"] == 1, entry["delegation"]
        assert entry["delegation"]["ops_outside"] == 0 and entry["delegation"]["outside"] == {}, entry["delegation"]
        assert entry["delegation"]["ops_delegated"] > 100
    result = runner.invoke(app, ["bundle", "verify", str(tiny_bundle)])
    assert result.exit_code == 0, result.output
    assert "model.xnnpack-int8.pte: 1 xnnpack delegate(s)" in result.output and "0 outside (nothing)" in result.output


def test_int8_gate_is_recorded_on_the_validation_split(tiny_bundle: Path, tiny_checkpoint: Path) -> None:
    entry = Manifest.load(tiny_bundle).artifact("model.xnnpack-int8.pte")
    gate = entry["int8_gate"]
    assert gate["requested"] == "auto" and gate["split"]["split"] == "val"
    assert gate["split"]["images"] == sum(1 for line in (tiny_checkpoint.parent / "splits.csv").read_text().splitlines() if ",val," in line)
    assert gate["attempts"][0]["recipe"] == "ptq" and gate["chosen"] == entry["quantization"]["recipe"]
    for attempt in gate["attempts"]:
        assert attempt["verdict"] in ("PASS", "FAIL") and 0 <= attempt["decision_agreement"] <= 1
        assert {c["rule"] for c in attempt["checks"]} >= {"min_decision_agreement", "max_abs_delta_auc"}
    if gate["verdict"] == "PASS":  # auto stops at the first recipe that passes
        assert gate["attempts"][-1]["recipe"] == gate["chosen"]


def _break_ptq(checkpoint: Checkpoint, factor: float = 3000.0) -> Checkpoint:
    """The same float function with activations int8 cannot represent: one hidden unit of every
    squeeze-excite block and of CBAM's channel MLP scaled up by ``factor`` before its ReLU and down by it
    after (ReLU is positively homogeneous), so a per-tensor int8 scale spends its range on that unit."""
    model = checkpoint.build_model()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SqueezeExcitation):
                first, second = module.fc1, module.fc2
            elif isinstance(module, ChannelAttention):
                first, second = module.mlp[0], module.mlp[2]
            else:
                continue
            first.weight[0] *= factor
            first.bias[0] *= factor
            second.weight[:, 0] /= factor
    checkpoint.state_dict = {k: v.clone() for k, v in model.state_dict().items()}
    return checkpoint


def _with_margins(checkpoint: Checkpoint, folder: Path) -> Checkpoint:
    """The untrained test model made decisive on its validation split: the operating threshold and the
    OOD threshold sit in the widest gap of the reference's validation scores, and the validation labels
    are the reference's own decisions (a separable task, AUC 1), so int8 noise that keeps every image
    on its side passes the gate and a broken quantization does not."""
    cache, split = Path(checkpoint.provenance["cache"]), Path(checkpoint.provenance["split_file"])
    images, _, _, _ = split_images(cache, checkpoint.preprocess, split, "val")
    model = build_deploy(checkpoint, ("probs", "ood_score"))
    with torch.no_grad():
        probs, ood = model(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)))
    def widest_gap(values: np.ndarray) -> float:
        ordered = np.sort(values)
        inner = np.diff(ordered)[1:-1]  # at least two images on each side
        return float((ordered[1:-1][inner.argmax()] + ordered[2:][inner.argmax()]) / 2)
    positive = probs[:, 1].numpy()
    checkpoint.threshold = widest_gap(positive)
    checkpoint.ood.threshold = widest_gap(ood.numpy()[ood.numpy() < np.median(ood.numpy())] if len(ood) > 8 else ood.numpy())
    decisions = dict(zip([r.key for r in SplitFile.read(split).rows_of("val") if r.label is not None], (positive >= checkpoint.threshold).astype(int)))
    splits = SplitFile.read(split)
    splits.rows = [dataclasses.replace(r, label=int(decisions[r.key])) if r.key in decisions else r for r in splits.rows]
    splits.write(folder / "splits.csv")
    checkpoint.provenance = provenance(folder / "splits.csv", cache)
    return checkpoint


@pytest.mark.slow
def test_auto_recipe_falls_back_when_ptq_fails_the_gate(tiny_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = _break_ptq(_with_margins(Checkpoint.load(tiny_checkpoint), tmp_path))
    path = tmp_path / "broken-ptq.pt"
    checkpoint.save(path)
    formats = select_formats(None, "pte-xnnpack-int8,onnx-int8")
    manifest, _ = export_bundle(ExportOptions(path, tmp_path / "bundle", formats, "custom", calibration_samples=8, jobs=1))
    for file in ("model.xnnpack-int8.pte", "model.int8.onnx"):
        entry = manifest.artifact(file)
        gate = entry["int8_gate"]
        first, second = gate["attempts"]
        assert first["recipe"] == "ptq" and first["verdict"] == "FAIL", (file, first)
        # auto goes on to float attention; whether it clears every rule on the untrained 64 px model's 10
        # validation images depends on int8 noise elsewhere, so the choice rule is pinned by test_choose_*
        assert second["recipe"] == "ptq-float-attention" and "verdict" in second, (file, second)
        best = max(gate["attempts"], key=lambda a: (a["verdict"] == "PASS", a["decision_agreement"]))
        assert gate["chosen"] == entry["quantization"]["recipe"] and (gate["chosen"] == best["recipe"] or
                                                                       (best["verdict"], best["decision_agreement"]) == (first["verdict"], first["decision_agreement"]))
        assert (gate["verdict"] == "PASS") == (second["verdict"] == "PASS") and (file in " ".join(gate_failures(manifest))) == (gate["verdict"] == "FAIL")
    assert manifest.artifact("model.xnnpack-int8.pte")["delegation"]["ops_outside"] == 0  # either recipe stays in one delegate

    # asking for the recipe that fails: the bundle is written, the command exits 1 and says why in one line
    result = runner.invoke(app, ["export", str(path), "--formats", "pte-xnnpack-int8", "--int8", "ptq", "--out", str(tmp_path / "ptq"),
                                 "--calibration-samples", "8", "--jobs", "1"])  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, GateFailed)
    assert "no int8 recipe passed the gate" in str(result.exception) and "\n" not in str(result.exception)
    assert "int8 recipe ptq (FAIL" in result.output and (tmp_path / "ptq" / "manifest.json").is_file()
    data = json.loads((tmp_path / "ptq" / "manifest.json").read_text())
    assert data["artifacts"][0]["int8_gate"]["verdict"] == "FAIL"
    accepted = runner.invoke(app, ["export", str(path), "--formats", "pte-xnnpack-int8", "--int8", "ptq", "--out", str(tmp_path / "ptq"),
                                   "--calibration-samples", "8", "--jobs", "1", "--keep-going"])  # fmt: skip
    assert accepted.exit_code == 0, accepted.output


def test_calibration_never_falls_back_to_test_images(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint trained on a split file that is gone: the training cache cannot be told apart into
    train and test, so int8 calibration refuses instead of drawing on every image (test included)."""
    checkpoint = Checkpoint.load(tiny_checkpoint)
    checkpoint.provenance = {**checkpoint.provenance, "split_file": str(tmp_path / "moved-away.csv")}
    path = tmp_path / "orphan.pt"
    checkpoint.save(path)
    with pytest.raises(MobiledrError, match="split file is gone.*without drawing on test images"):
        export_bundle(ExportOptions(path, tmp_path / "bundle", select_formats(None, "pte-xnnpack-int8"), "custom", calibration_samples=4, jobs=1))
    assert not (tmp_path / "bundle").exists()


def _fake_context(recipe: str = "auto") -> SimpleNamespace:
    """Just what ``int8.choose`` reads: 40 validation images with clear margins around the threshold."""
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    positive = np.where(labels == 1, rng.uniform(0.7, 0.95, 40), rng.uniform(0.05, 0.3, 40))
    reference = {"probs": np.stack([1 - positive, positive], axis=1), "ood_score": rng.uniform(-10, -1, 40)}
    request = SimpleNamespace(int8=recipe, gate=np.zeros((40, 8, 8, 3), np.uint8), gate_labels=labels, gate_groups=None, gate_info={"split": "val", "images": 40})
    checkpoint = SimpleNamespace(labels=["no", "yes"], threshold=0.5, ood=SimpleNamespace(threshold=-20.0))
    return SimpleNamespace(request=request, checkpoint=checkpoint, output_names=("probs", "ood_score"),
                           gate_reference=lambda: reference, gate_batches=lambda: [])  # fmt: skip


def test_choose_keeps_the_first_recipe_that_passes_and_the_best_when_none_does() -> None:
    context = _fake_context()
    reference = context.gate_reference()
    flipped = {"probs": reference["probs"][:, ::-1].copy(), "ood_score": reference["ood_score"]}
    built: list[str] = []

    def build(recipe: str) -> str:
        built.append(recipe)
        return recipe

    outputs = {"ptq": flipped, "ptq-float-attention": reference}
    artifact, recipe, gate = int8.choose(context, build, lambda name, batches: outputs[name], len)
    assert built == ["ptq", "ptq-float-attention"] and artifact == recipe == gate["chosen"] == "ptq-float-attention"
    assert [a["verdict"] for a in gate["attempts"]] == ["FAIL", "PASS"] and gate["verdict"] == "PASS"
    assert gate["attempts"][0]["decision_agreement"] == 0.0 and gate["attempts"][1]["decision_agreement"] == 1.0

    built.clear()
    outputs = {"ptq": reference, "ptq-float-attention": flipped}
    _, recipe, gate = int8.choose(context, build, lambda name, batches: outputs[name], len)
    assert built == ["ptq"] and recipe == "ptq" and gate["verdict"] == "PASS"  # auto stops at the first that passes

    built.clear()
    half = {"probs": np.where(np.arange(40)[:, None] < 20, reference["probs"], flipped["probs"]), "ood_score": reference["ood_score"]}
    outputs = {"ptq": flipped, "ptq-float-attention": half}
    _, recipe, gate = int8.choose(context, build, lambda name, batches: outputs[name], len)
    assert recipe == "ptq-float-attention" and gate["verdict"] == "FAIL"  # none passes: the best decision agreement is kept

    with pytest.raises(MobiledrError, match="unknown int8 recipe 'qat'"):
        int8.choose(_fake_context("qat"), build, lambda name, batches: reference, len)
