"""``mobiledr parity`` on the exported tiny bundle: a good bundle passes, broken artifacts fail by name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.export.manifest import Manifest, tree_sha256

runner = CliRunner()
FAST = ["--synthetic", "12", "--bootstrap", "50"]


@pytest.fixture(scope="session")
def parity_report(tiny_bundle: Path) -> dict:
    """The default parity run (inputs: the checkpoint's cache, test split) over every artifact; the
    Markdown report is under the key 'markdown' and the command's exit code under 'exit_code'."""
    result = runner.invoke(app, ["parity", str(tiny_bundle), "--bootstrap", "100"])
    report = json.loads((tiny_bundle / "parity" / "report.json").read_text())
    if report["verdict"] == "FAIL":
        assert result.exit_code == 1 and str(result.exception) == f"parity FAILED: {', '.join(report['failed'])}"
    else:
        assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    return {**report, "markdown": (tiny_bundle / "parity" / "report.md").read_text()}


def _by_file(report: dict) -> dict[str, dict]:
    return {a["file"]: a for a in report["artifacts"]}


def _coreml(artifact: dict) -> bool:
    return artifact["runtime"] == "coreml" or artifact["backend"] == "coreml"


def test_every_artifact_is_judged_and_float_artifacts_pass(parity_report: dict, tiny_bundle: Path) -> None:
    manifest = Manifest.load(tiny_bundle)
    assert parity_report["inputs"]["labelled"] and "test split" in parity_report["inputs"]["source"]
    assert set(_by_file(parity_report)) == {a["file"] for a in manifest.artifacts}
    for artifact in parity_report["artifacts"]:
        if _coreml(artifact):
            continue
        assert set(artifact["errors"]) == set(manifest.output_names)
        assert {"top1", "decision", "ood", "heatmap_correlation"} <= set(artifact["agreement"])
        assert artifact["clinical"]["defined"] and artifact["checks"]
        failed = [c for c in artifact["checks"] + artifact["golden"]["checks"] if c["ok"] is False]
        assert artifact["verdict"] == ("FAIL" if failed else "PASS")
        if artifact["precision"] == "fp32":
            assert artifact["verdict"] == "PASS", artifact["reasons"]
            assert artifact["errors"]["probs"]["max_abs"] < 1e-4 and artifact["agreement"]["decision"] == 1.0
            assert 0 < artifact["errors"]["logits"]["max_abs"]  # a real comparison: the runtimes differ in rounding
        else:  # int8 is judged by what the screening decision does (an untrained network's verdict is not assumed)
            assert {c["rule"] for c in artifact["checks"]} == {
                "min_decision_agreement", "max_abs_delta_auc", "non_inferiority.sensitivity", "non_inferiority.specificity", "min_ood_agreement",
            }  # fmt: skip
            assert not any(r.startswith(("runtime error", "integrity")) for r in artifact["reasons"])
    fp32_pte = _by_file(parity_report)["model.xnnpack-fp32.pte"]
    assert any(c["rule"] == "bundled_program_self_check" and c["ok"] for c in fp32_pte["golden"]["checks"])
    assert parity_report["bundle_checks"]["geometric_pairs"]["ok"] and parity_report["bundle_checks"]["problems"] == []
    assert parity_report["verdict"] == ("FAIL" if parity_report["failed"] else "PASS")
    markdown = parity_report["markdown"]
    assert f"**Verdict: {parity_report['verdict']}**" in markdown and "## Tolerance policy" in markdown and "min_decision_agreement" in markdown
    assert runner.invoke(app, ["bundle", "verify", str(tiny_bundle)]).exit_code == 0  # the report does not break the bundle


def test_float_bundle_passes(tiny_bundle: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["parity", str(tiny_bundle), *FAST, "--artifacts", "pte-xnnpack-fp32,onnx-fp32", "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.exception
    assert "parity PASSED (3 artifacts)" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "PASS"


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_core_ml_is_skipped_off_macos(parity_report: dict) -> None:
    coreml = [a for a in parity_report["artifacts"] if _coreml(a)]
    assert len(coreml) == 4
    for artifact in coreml:
        assert artifact["verdict"] == "SKIPPED" and artifact["reasons"] == ["Core ML runs only on macOS"]


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target, ignore=shutil.ignore_patterns("parity"))
    return target


def _perturb_onnx(path: Path, scale: float = 0.5, seed: int = 0) -> None:
    """Add noise to every convolution weight of an ONNX model (what a wrong checkpoint looks like)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    conv_weights = {node.input[1] for node in model.graph.node if node.op_type == "Conv"}
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        if init.name in conv_weights:
            weight = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array((weight + scale * weight.std() * rng.standard_normal(weight.shape)).astype(weight.dtype), init.name))
    onnx.save(model, path)


def _reseal(bundle: Path, file: str) -> None:
    """Update the manifest's hash of ``file`` so only the numerical comparison can catch the change."""
    data = json.loads((bundle / "manifest.json").read_text())
    entry = next(a for a in data["artifacts"] if a["file"] == file)
    entry["sha256"], entry["size_bytes"] = tree_sha256(bundle / file)
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_perturbed_artifact_fails_by_name(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(tiny_bundle, tmp_path)
    _perturb_onnx(bundle / "model.fp32.onnx")
    _reseal(bundle, "model.fp32.onnx")
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "onnx-fp32,pte-xnnpack-fp32", "--report", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert str(result.exception) == "parity FAILED: model.fp32.onnx"
    report = json.loads((tmp_path / "r.json").read_text())
    files = _by_file(report)
    assert set(files) == {"model.fp32.onnx", "model.fp32.ort", "model.xnnpack-fp32.pte"}
    assert files["model.fp32.onnx"]["verdict"] == "FAIL" and files["model.fp32.onnx"]["reasons"][0].startswith("max_abs.probs = ")
    assert files["model.fp32.ort"]["verdict"] == "PASS" and files["model.xnnpack-fp32.pte"]["verdict"] == "PASS"
    assert (tmp_path / "r.md").is_file() and (bundle / "parity" / "report.json").is_file()

    loose = tmp_path / "loose.yaml"  # a policy that tolerates anything turns the verdict around
    loose.write_text("fp32:\n  max_abs: {probs: 1.0}\n  min_decision_agreement: 0.0\n")
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "model.fp32.onnx", "--tolerances", str(loose)])
    assert result.exit_code == 0, result.exception
    report = json.loads((bundle / "parity" / "report.json").read_text())
    assert report["verdict"] == "PASS" and report["policy"]["source"] == str(loose)

    int8_only = tmp_path / "int8-only.yaml"  # a precision the policy does not cover fails closed
    int8_only.write_text("int8:\n  min_decision_agreement: 0.5\n")
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "pte-xnnpack-fp32", "--tolerances", str(int8_only)])
    assert result.exit_code == 1 and "model.xnnpack-fp32.pte" in str(result.exception)
    reasons = json.loads((bundle / "parity" / "report.json").read_text())["artifacts"][0]["reasons"]
    assert reasons == [f"the tolerance policy {int8_only} has no rules for precision fp32"]


def test_tampered_artifact_fails_integrity_and_numerics(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(tiny_bundle, tmp_path)
    _perturb_onnx(bundle / "model.int8.onnx", scale=3.0)  # hash left stale: the bundle no longer matches its manifest
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "model.int8.onnx"])
    assert result.exit_code == 1 and str(result.exception) == "parity FAILED: model.int8.onnx"
    artifact = json.loads((bundle / "parity" / "report.json").read_text())["artifacts"][0]
    assert artifact["reasons"][0] == "integrity: sha256 mismatch (content changed)"


def test_golden_vectors_and_reference_are_checked(tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    bundle = _copy(tiny_bundle, tmp_path)
    with np.load(bundle / "golden" / "vectors.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["probs"] = arrays["probs"][:, ::-1].copy()  # golden expectations that the model does not produce
    np.savez(bundle / "golden" / "vectors.npz", **arrays)
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "model.fp32.ort"])
    assert result.exit_code == 1
    report = json.loads((bundle / "parity" / "report.json").read_text())
    problems = report["bundle_checks"]["problems"]
    assert "golden/vectors.npz: sha256 mismatch (content changed)" in problems
    assert any(p.startswith("the reference does not reproduce the bundle's golden vectors") for p in problems)
    assert report["artifacts"][0]["verdict"] == "FAIL" and report["artifacts"][0]["reasons"][0].startswith("golden max_abs.probs")

    other = tmp_path / "other.pt"
    other.write_bytes(tiny_checkpoint.read_bytes() + b"\0")
    result = runner.invoke(app, ["parity", str(tiny_bundle), *FAST, "--checkpoint", str(other)])
    assert result.exit_code == 1 and "not the checkpoint this bundle was exported from" in str(result.exception)
    result = runner.invoke(app, ["parity", str(tiny_bundle), *FAST, "--checkpoint", str(tmp_path / "gone.pt")])
    assert "reference checkpoint not found" in str(result.exception)
    result = runner.invoke(app, ["parity", str(tiny_bundle), "--synthetic", "4", "--images", str(tmp_path)])
    assert "pass one of --data, --images or --synthetic" in str(result.exception)
    result = runner.invoke(app, ["parity", str(tiny_bundle), *FAST, "--artifacts", "model.tflite"])
    assert "the bundle has no artifact or format 'model.tflite'" in str(result.exception)


def test_images_folder_skips_unusable_files(tiny_bundle: Path, synth_dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((synth_dataset / "train_images").glob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = runner.invoke(app, ["parity", str(tiny_bundle), "--images", str(folder), "--artifacts", "pte-xnnpack-fp32"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.exception
    report = json.loads((tiny_bundle / "parity" / "report.json").read_text())
    assert report["inputs"]["images"] == 3 and not report["inputs"]["labelled"]
    assert len(report["inputs"]["skipped"]) == 1 and report["inputs"]["skipped"][0].startswith("broken.jpg: ")
    assert report["artifacts"][0]["clinical"] is None and report["artifacts"][0]["verdict"] == "PASS"
    assert "skipped broken.jpg" in result.output


def test_localize_names_layers_of_a_failing_int8_onnx(tiny_bundle: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"  # int8 held to float tolerances, so it fails and gets localized
    strict.write_text("int8:\n  max_abs: {probs: 1.0e-6}\n")
    result = runner.invoke(app, ["parity", str(tiny_bundle), *FAST, "--artifacts", "onnx-int8", "--tolerances", str(strict), "--localize"])
    assert result.exit_code == 1
    report = json.loads((tiny_bundle / "parity" / "report.json").read_text())
    onnx_model, ort_model = report["artifacts"]
    assert onnx_model["verdict"] == ort_model["verdict"] == "FAIL"
    localization = onnx_model["localization"]
    assert localization["method"] == "onnxruntime qdq_loss_debug: model.fp32.onnx vs model.int8.onnx" and ort_model["localization"] == localization
    rows = localization["all_layers"]
    assert rows[0]["module"] == "photometric" and not rows[0]["quantized"] and rows[0]["sqnr_db"] > 100  # float stage: exact
    quantized = [r for r in rows if r["quantized"]]
    assert quantized and all(r["own_sqnr_db"] is not None for r in quantized)
    scopes = {(r["module"] or "").split(".")[0] for r in quantized}
    assert "core" in scopes and scopes <= {"core", "photometric", ""}  # the core and its input
    assert not any(r["quantized"] for r in rows if r["module"] == "post")  # the head stays float
    assert localization["summary"] and "Localization (onnxruntime qdq_loss_debug" in (tiny_bundle / "parity" / "report.md").read_text()


def test_foreign_model_fails_by_name_and_the_rest_still_runs(tiny_bundle: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    bundle = _copy(tiny_bundle, tmp_path)
    graph = helper.make_graph(  # some other model: one output, three classes
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["probs"])],
        "foreign", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), bundle / "model.fp32.onnx")
    _reseal(bundle, "model.fp32.onnx")
    result = runner.invoke(app, ["parity", str(bundle), *FAST, "--artifacts", "onnx-fp32"])
    assert result.exit_code == 1 and str(result.exception) == "parity FAILED: model.fp32.onnx"
    onnx_model, ort_model = json.loads((bundle / "parity" / "report.json").read_text())["artifacts"]
    assert onnx_model["verdict"] == "FAIL" and onnx_model["reasons"][0].startswith("runtime error: ")
    assert ort_model["verdict"] == "PASS"
