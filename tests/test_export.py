"""mobiledr export: the bundle is complete, loads in every runtime here, matches PyTorch, and is tamper-evident."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.geometry import decode, geometric
from mobiledr.data.photometric import Photometric
from mobiledr.errors import MobiledrError
from mobiledr.export import golden
from mobiledr.export.bundle import ExportOptions, export_bundle, plan, verify_bundle
from mobiledr.export.formats import FORMATS, TARGETS, Format, select_formats
from mobiledr.export.graph import build_deploy
from mobiledr.export.manifest import SCHEMA_PATH, Manifest, validation_error
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.inference import Classifier

runner = CliRunner()


def _files(manifest: Manifest, kind: str, precision: str | None = None) -> list[str]:
    return [a["file"] for a in manifest.artifacts if a["kind"] == kind and (precision is None or a["precision"] == precision)]


def _vectors(bundle: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return golden.load_vectors(bundle / golden.VECTORS)


def test_bundle_has_every_target_format_and_verifies(tiny_bundle: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    produced = {a["format"] for a in manifest.artifacts}
    assert set(TARGETS["android"]) | set(TARGETS["ios"]) <= produced
    assert manifest.failures == []
    assert {a["kind"] for a in manifest.artifacts} == {"pte", "onnx", "ort", "mlpackage"}
    assert verify_bundle(tiny_bundle) == []
    result = runner.invoke(app, ["bundle", "verify", str(tiny_bundle)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_manifest_contract(tiny_bundle: Path, tiny_checkpoint: Path) -> None:
    data = json.loads((tiny_bundle / "manifest.json").read_text())
    assert validation_error(data) is None
    assert json.loads(SCHEMA_PATH.read_text())["$id"].endswith(":1")
    checkpoint = Checkpoint.load(tiny_checkpoint)
    assert data["labels"] == ["no-dr", "dr"] and data["label_scheme"] == "any-dr"
    assert data["decision"]["threshold"] == pytest.approx(0.45) and data["decision"]["temperature"] == pytest.approx(1.5)
    assert data["ood"]["threshold"] == pytest.approx(checkpoint.ood.threshold)
    assert data["input"]["shape"] == [1, 3, 64, 64] and data["input"]["color_order"] == "RGB" and data["input"]["range"] == [0, 255]
    assert [o["name"] for o in data["outputs"]] == ["probs", "logits", "heatmap", "ood_score"]
    assert data["outputs"][2]["shape"] == [1, 2, 2]  # 64 / 32
    assert data["preprocessing"]["geometric"]["size"] == 64
    assert data["preprocessing"]["photometric"]["spec"] == checkpoint.preprocess.to_dict()
    assert data["source"]["sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert data["model"]["macs"] > 0 and all(a["macs"] == data["model"]["macs"] for a in data["artifacts"])
    int8 = next(a for a in data["artifacts"] if a["format"] == "pte-xnnpack-int8")
    assert int8["quantization"]["calibration"]["samples"] == 8
    assert "train split" in int8["quantization"]["calibration"]["source"]
    # an invalid manifest is a one-line error naming the field
    data["artifacts"][0]["sha256"] = "xyz"
    assert "sha256" in validation_error(data)


def test_schema_rejects_unknown_fields(tiny_bundle: Path) -> None:
    data = json.loads((tiny_bundle / "manifest.json").read_text())
    data["surprise"] = 1
    assert "surprise" in validation_error(data)


def test_golden_geometric_pairs_reproduce(tiny_bundle: Path) -> None:
    pairs = json.loads((tiny_bundle / golden.GEOMETRIC).read_text())
    folder = (tiny_bundle / golden.GEOMETRIC).parent
    spec = build_deploy(Checkpoint.load(Manifest.load(tiny_bundle).source["checkpoint"]), ["logits"]).photometric.spec
    assert len(pairs["pairs"]) == 3
    for pair in pairs["pairs"]:
        result = geometric(decode(folder / pair["original"]), spec)
        np.testing.assert_array_equal(result.image, decode(folder / pair["expected"]))
        assert list(result.box) == pair["box"]


def test_in_graph_preprocessing_matches_training_modules(tiny_bundle: Path, tiny_checkpoint: Path) -> None:
    """The deployed graph = the training-time Photometric + network; the ONNX/ExecuTorch fp32 artifacts
    reproduce it on the golden vectors."""
    checkpoint = Checkpoint.load(tiny_checkpoint)
    classifier = Classifier(checkpoint.build_model(), Photometric(checkpoint.preprocess)).eval()
    inputs, expected = _vectors(tiny_bundle)
    with torch.no_grad():
        logits = classifier(torch.from_numpy(inputs))
    # batched here, one image at a time in the export: float32 summation order differs
    torch.testing.assert_close(torch.from_numpy(expected["logits"]), logits, rtol=1e-4, atol=1e-4)
    probs = torch.softmax(logits / 1.5, dim=1)
    torch.testing.assert_close(torch.from_numpy(expected["probs"]), probs, rtol=1e-4, atol=1e-5)


def _run_executorch(path: Path, image: np.ndarray) -> list[np.ndarray]:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    return [t.numpy() for t in method.execute([torch.from_numpy(image)])]


def _run_onnxruntime(path: Path, image: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    return session.run(None, {"image": image})


@pytest.mark.parametrize("kind,runner_fn", [("pte", _run_executorch), ("onnx", _run_onnxruntime), ("ort", _run_onnxruntime)])
def test_artifacts_load_and_match_reference(tiny_bundle: Path, kind: str, runner_fn) -> None:
    manifest = Manifest.load(tiny_bundle)
    inputs, expected = _vectors(tiny_bundle)
    files = [f for f in _files(manifest, kind) if manifest.artifact(f)["backend"] != "coreml"]  # Core ML delegate runs on Apple only
    assert files
    for file in files:
        precision = manifest.artifact(file)["precision"]
        for i in range(len(inputs)):
            outputs = dict(zip(manifest.output_names, runner_fn(tiny_bundle / file, inputs[i : i + 1])))
            assert set(outputs) == set(expected)
            if precision == "fp32":
                for name, value in outputs.items():
                    np.testing.assert_allclose(value, expected[name][i : i + 1], rtol=1e-4, atol=1e-4, err_msg=f"{file} {name}")
            else:  # int8: same shapes and valid values (how close they are is parity's verdict, tests/test_parity.py)
                np.testing.assert_allclose(outputs["probs"].sum(), 1.0, atol=1e-4)
                assert all(outputs[name].shape == expected[name][i : i + 1].shape for name in outputs), file
                assert 0 <= outputs["heatmap"].min() and outputs["heatmap"].max() <= 1 + 1e-6


def test_bundled_program_self_check_passes(tiny_bundle: Path) -> None:
    from executorch.extension.pybindings.portable_lib import _load_bundled_program_from_buffer, _load_for_executorch_from_bundled_program

    manifest = Manifest.load(tiny_bundle)
    bundled = _load_bundled_program_from_buffer((tiny_bundle / manifest.golden["bundled_program"]).read_bytes())
    _load_for_executorch_from_bundled_program(bundled)  # the program inside loads
    for case in range(manifest.golden["count"]):
        bundled.verify_result_with_bundled_expected_output("forward", case, 1e-3, 1e-3)  # the fp32 policy's loosest limits


def test_onnx_files_pass_the_full_checker(tiny_bundle: Path) -> None:
    import onnx

    manifest = Manifest.load(tiny_bundle)
    for file in _files(manifest, "onnx"):
        onnx.checker.check_model(str(tiny_bundle / file), full_check=True)
    int8 = onnx.load(tiny_bundle / _files(manifest, "onnx", "int8")[0])
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    for file in ("model.fp32.usability.txt", "model.int8.usability.txt"):
        report = (tiny_bundle / file).read_text()
        assert "for usability with ORT Mobile" in report and "NNAPI" in report


def test_quantized_artifacts_are_smaller(tiny_bundle: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    size = {a["format"] + "/" + a["kind"]: a["size_bytes"] for a in manifest.artifacts}
    # the artifact kept is the recipe the int8 gate chose: ptq (everything int8) must shrink the core,
    # ptq-float-attention keeps the squeeze-excite and CBAM weights in float32 and shrinks less
    for int8_key, fp32_key in (("pte-xnnpack-int8/pte", "pte-xnnpack-fp32/pte"), ("onnx-int8/onnx", "onnx-fp32/onnx")):
        entry = next(a for a in manifest.artifacts if a["format"] + "/" + a["kind"] == int8_key)
        ptq = next(a for a in entry["int8_gate"]["attempts"] if a["recipe"] == "ptq")
        assert ptq["size_bytes"] < 0.6 * size[fp32_key], (int8_key, ptq["size_bytes"], size[fp32_key])
        assert size[int8_key] < 0.8 * size[fp32_key]
    assert size["coreml-int8w/mlpackage"] < size["coreml-fp16/mlpackage"]
    assert size["coreml-pal6/mlpackage"] < size["coreml-int8w/mlpackage"]


def test_coreml_packages_load_as_specs(tiny_bundle: Path) -> None:
    import coremltools as ct

    manifest = Manifest.load(tiny_bundle)
    for file in _files(manifest, "mlpackage"):
        spec = ct.models.MLModel(str(tiny_bundle / file), skip_model_load=True).get_spec()
        assert spec.WhichOneof("Type") == "mlProgram"
        assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
        outputs = {o.name for o in spec.description.output}
        assert {"classLabel", "classLabel_probs", "logits", "heatmap", "ood_score"} == outputs
        assert manifest.artifact(file)["output_names"]["probs"] == "classLabel_probs"


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction runs only on macOS; off macOS only the spec is checked")
def test_coreml_predicts_on_macos(tiny_bundle: Path) -> None:
    import coremltools as ct
    from PIL import Image

    manifest = Manifest.load(tiny_bundle)
    inputs, expected = _vectors(tiny_bundle)
    model = ct.models.MLModel(str(tiny_bundle / _files(manifest, "mlpackage", "fp16")[0]))
    image = Image.fromarray(inputs[0].transpose(1, 2, 0).astype(np.uint8))
    out = model.predict({"image": image})
    np.testing.assert_allclose([out["classLabel_probs"][k] for k in manifest.labels], expected["probs"][0], atol=0.02)


def test_tampering_is_detected(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    target = copy / "model.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    weights = next((copy / "model.pal6.mlpackage").rglob("weight.bin"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    (copy / "stray.bin").write_bytes(b"x")
    problems = verify_bundle(copy)
    assert any(p.startswith("model.int8.onnx: sha256 mismatch (content changed)") for p in problems)
    assert any(p.startswith("model.pal6.mlpackage: sha256 mismatch") for p in problems)
    assert any(p.startswith("stray.bin: not listed") for p in problems)
    result = runner.invoke(app, ["bundle", "verify", str(copy)])
    assert result.exit_code == 1
    assert "model.int8.onnx" in result.output
    (copy / golden.VECTORS).unlink()
    assert f"{golden.VECTORS}: missing" in verify_bundle(copy)


def test_verify_rejects_non_bundles(tmp_path: Path) -> None:
    with pytest.raises(MobiledrError, match="not a mobiledr bundle"):
        verify_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(MobiledrError, match="unreadable manifest"):
        verify_bundle(tmp_path)


def _broken(context, folder: Path):  # noqa: ANN001, ANN202 - a format whose converter crashes
    (folder / "half-written.bin").write_bytes(b"partial")
    raise RuntimeError("converter crashed\nsecond line")


def test_failing_format_leaves_no_partial_bundle(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FORMATS, "broken", Format("broken", "always fails", _broken))
    formats = [FORMATS["onnx-fp32"], FORMATS["broken"]]
    out = tmp_path / "bundle"
    with pytest.raises(MobiledrError, match=r"^export failed: broken: RuntimeError: converter crashed$"):
        export_bundle(ExportOptions(tiny_checkpoint, out, formats, "custom", jobs=1))
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging folder
    manifest, _ = export_bundle(ExportOptions(tiny_checkpoint, out, formats, "custom", jobs=1, keep_going=True))
    assert manifest.failures == [{"format": "broken", "error": "RuntimeError: converter crashed"}]
    assert [a["format"] for a in manifest.artifacts] == ["onnx-fp32", "onnx-fp32"]
    assert not (out / "half-written.bin").exists() and verify_bundle(out) == []
    # a re-export replaces the old bundle only once the new one is complete
    with pytest.raises(MobiledrError):
        export_bundle(ExportOptions(tiny_checkpoint, out, [FORMATS["broken"]], "custom", jobs=1, keep_going=True))
    assert Manifest.load(out).failures == manifest.failures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_select_formats_and_plan() -> None:
    assert [f.id for f in select_formats("android", None)] == list(TARGETS["android"])
    assert [f.id for f in select_formats("ios", "onnx-fp32")] == ["onnx-fp32"]
    with pytest.raises(MobiledrError, match="unknown format 'tflite'"):
        select_formats(None, "onnx-fp32,tflite")
    with pytest.raises(MobiledrError, match="unknown target"):
        select_formats("windows", None)
    groups = plan(select_formats("android", None), 2)
    assert sorted(sum(groups, [])) == sorted(TARGETS["android"]) and len(groups) == 2


def test_cli_errors_are_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "--target", "android", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "checkpoint not found" in str(result.exception)
    result = runner.invoke(app, ["export", str(tiny_checkpoint), "--formats", "pte-xnnpack-int8", "--calibration-data", str(tmp_path), "--out", str(tmp_path / "b")])
    assert "not a mobiledr cache" in str(result.exception)
    result = runner.invoke(app, ["export", str(tiny_checkpoint), "--formats", "onnx-fp32", "--outputs", "probs,saliency", "--out", str(tmp_path / "b")])
    assert "unknown output 'saliency'" in str(result.exception)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export", str(tiny_checkpoint), "--formats", "onnx-fp32", "--out", str(tmp_path / "occupied")])
    assert "is not a mobiledr bundle" in str(result.exception)
    assert (tmp_path / "occupied" / "notes.txt").read_text() == "mine"
    result = runner.invoke(app, ["export", "--target", "android"])
    assert "pass a CHECKPOINT and --out" in str(result.exception)
    result = runner.invoke(app, ["export", "--list-formats"])
    assert result.exit_code == 0 and all(fid in result.output for fid in FORMATS if fid != "broken")


def test_outputs_and_input_size_are_selectable(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["export", str(tiny_checkpoint), "--formats", "onnx-fp32", "--outputs", "logits,probs", "--input-size", "96", "-j", "1", "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(tmp_path / "b")
    assert manifest.output_names == ["probs", "logits"] and manifest.ood is None
    assert manifest.input["shape"] == [1, 3, 96, 96]
    inputs, expected = _vectors(tmp_path / "b")
    outputs = _run_onnxruntime(tmp_path / "b" / "model.fp32.onnx", inputs[:1])
    np.testing.assert_allclose(outputs[1], expected["logits"][:1], rtol=1e-4, atol=1e-4)
