"""Issue 16, clinical validity: the positive class by name, the split file verified wherever it is read,
and (below) the evaluation's unit of analysis, flow and gates."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mobiledr.cli import app
from mobiledr.data.cache import Cache, prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile
from mobiledr.data.synth import make_dataset
from mobiledr.errors import MobiledrError

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
runner = CliRunner()
SIZE = 64


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _folders(source: Path, root: Path, names: tuple[str, str]) -> Path:
    """The synthetic APTOS set re-laid as ``root/<class>/`` folders: grade 0 -> names[0], else names[1]."""
    table = pd.read_csv(source / "train.csv", dtype=str)
    for _, row in table.iterrows():
        folder = root / (names[0] if row["diagnosis"] == "0" else names[1])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "train_images" / f"{row['id_code']}.png", folder / f"{row['id_code']}.png")
    return root


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """DR / No_DR class folders (No_DR sorts second: the alphabet would make it positive), prepared."""
    root = tmp_path_factory.mktemp("folders")
    make_dataset(root / "aptos", n=24, size=128, seed=4)
    _folders(root / "aptos", root / "folders", ("No_DR", "DR"))
    return prepare(root / "folders", "folder", PreprocessSpec(size=SIZE), root / "cache", workers=1).cache


def _grade_of(cache: Cache) -> dict[str, str]:
    return {e.key: Path(e.key).parent.name for e in cache.entries}


def test_split_records_the_positive_class_by_name_or_given(folder_cache: Cache, tmp_path: Path) -> None:
    path = tmp_path / "splits.csv"
    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(path), "--val", "0.25", "--test", "0.25",
           "--merge-duplicates")  # fmt: skip
    split_file = SplitFile.read(path)
    assert split_file.positive == "DR" and "positive" in path.read_text().splitlines()[0]
    folder = _grade_of(folder_cache)
    assert all(r.label == int(folder[r.key] == "DR") and r.class_name == folder[r.key] for r in split_file.rows)

    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(path), "--val", "0.25", "--test", "0.25",
           "--merge-duplicates", "--positive", "No_DR")  # fmt: skip
    split_file = SplitFile.read(path)
    assert split_file.positive == "No_DR"
    assert all(r.label == int(folder[r.key] == "No_DR") for r in split_file.rows)


def test_split_refuses_to_guess_an_ambiguous_positive_class(tmp_path: Path) -> None:
    make_dataset(tmp_path / "aptos", n=16, size=128, seed=5)
    _folders(tmp_path / "aptos", tmp_path / "folders", ("cats", "dogs"))
    cache = prepare(tmp_path / "folders", "folder", PreprocessSpec(size=SIZE), tmp_path / "cache", workers=1).cache
    result = runner.invoke(app, ["data", "split", str(cache.root), "--scheme", "classes", "--out", str(tmp_path / "s.csv")])
    assert isinstance(result.exception, MobiledrError)
    assert "cannot tell which of the classes cats, dogs is the positive (referred) one; pass --positive NAME" == str(result.exception)
    assert not (tmp_path / "s.csv").exists()


@pytest.fixture(scope="module")
def folder_run(folder_cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training epoch on the class folders (their split file made by ``data split``)."""
    from mobiledr.train import loop
    from mobiledr.train.config import load_train_config

    root = tmp_path_factory.mktemp("folder-run")
    invoke("data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(root / "splits.csv"), "--val", "0.25",
           "--test", "0.25", "--merge-duplicates")  # fmt: skip
    overrides = [f"model.input_size={SIZE}", f"preprocess.size={SIZE}", "workers=0", "batch_size=8", "epochs=1", "freeze_epochs=0",
                 "scheme=classes"]  # fmt: skip
    return loop.train(load_train_config("demo", overrides=overrides), folder_cache.root, root / "splits.csv", root / "run")


def test_checkpoint_and_manifest_record_the_positive_class(folder_run: Path) -> None:
    from mobiledr.export.bundle import _decision
    from mobiledr.train.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(folder_run)
    assert checkpoint.positive == "DR" and checkpoint.labels == ["No_DR", "DR"]
    decision = _decision(checkpoint)
    assert decision["positive_class"] == "DR" and decision["positive_index"] == 1 and "refer (DR)" in decision["rule"]


def _rewritten(split_path: Path, out: Path) -> Path:
    """The split file with one training image moved into test: what the recorded sha256 must catch."""
    split_file = SplitFile.read(split_path)
    index = next(i for i, r in enumerate(split_file.rows) if r.split == "train" and r.label is not None)
    split_file.rows[index] = dataclasses.replace(split_file.rows[index], split="test")
    split_file.write(out)
    return out


def test_a_rewritten_split_file_is_refused_everywhere_it_is_read(folder_run: Path, tmp_path: Path) -> None:
    from mobiledr.export.bundle import _calibration
    from mobiledr.parity.inputs import from_training_data
    from mobiledr.train.checkpoint import Checkpoint
    from mobiledr.train.report import evaluate_checkpoint

    checkpoint = Checkpoint.load(folder_run)
    original = Path(checkpoint.provenance["split_file"])
    assert SplitFile.read(original, checkpoint.provenance["split_sha256"]).sha256 == checkpoint.provenance["split_sha256"]
    moved = _rewritten(original, tmp_path / "moved.csv")
    cache = Path(checkpoint.provenance["cache"])
    spec = checkpoint.preprocess

    def refused(call) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(MobiledrError, match="split file changed since the model was trained") as caught:
            call()
        assert "\n" not in str(caught.value)

    refused(lambda: evaluate_checkpoint(folder_run, "test", cache, moved, out=tmp_path / "eval", resamples=0))
    refused(lambda: from_training_data(folder_run, spec, "classes", cache, moved, "test", 10, 0))
    refused(lambda: runner.invoke(app, ["evaluate", str(folder_run), "--splits", str(moved)], catch_exceptions=False))

    # In place (the path the checkpoint names): evaluate, parity's inputs and export calibration all refuse it.
    backup = original.read_bytes()
    try:
        shutil.copy(moved, original)
        refused(lambda: evaluate_checkpoint(folder_run, "test", out=tmp_path / "eval", resamples=0))
        refused(lambda: from_training_data(folder_run, spec, "classes", None, None, "test", 10, 0))
        options = SimpleNamespace(formats=[SimpleNamespace(calibrated=True, id="xnnpack-int8")], calibration_data=None, calibration_samples=4)
        refused(lambda: _calibration(options, checkpoint, spec))  # type: ignore[arg-type]
    finally:
        original.write_bytes(backup)
    images, info = _calibration(options, checkpoint, spec)  # type: ignore[arg-type]
    assert len(images) == 4 and info["source"].startswith("train split")


# -- the evaluation: unit of analysis, flow, intention to screen, per participant (16.4, 16.7, 16.8) --
@pytest.fixture(scope="module")
def aptos_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training epoch on a synthetic APTOS-layout set with patient ids (two eyes each), 64 px."""
    from mobiledr.data.labels import get_scheme
    from mobiledr.data.splits import make_splits
    from mobiledr.train import loop
    from mobiledr.train.config import load_train_config

    root = tmp_path_factory.mktemp("aptos-run")
    make_dataset(root / "data", n=48, size=128, seed=11)
    cache = prepare(root / "data", "aptos", PreprocessSpec(size=SIZE), root / "cache", workers=1).cache
    make_splits(cache, get_scheme("any-dr"), val=0.25, test=0.3, seed=0, merge_duplicates=True)[0].write(root / "splits.csv")
    overrides = [f"model.input_size={SIZE}", f"preprocess.size={SIZE}", "workers=0", "batch_size=8", "epochs=1", "freeze_epochs=0"]
    return loop.train(load_train_config("demo", overrides=overrides), cache.root, root / "splits.csv", root / "run")


def _evaluate(checkpoint: Path, out: Path, *args: str) -> dict:
    import json

    result = runner.invoke(app, ["evaluate", str(checkpoint), "--out", str(out), *args], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else json.loads((out / "summary.json").read_text())


def _with_gate(checkpoint: Path, out: Path, threshold: float) -> Path:
    from mobiledr.train.checkpoint import Checkpoint

    ckpt = Checkpoint.load(checkpoint)
    assert ckpt.ood is not None
    ckpt.ood.threshold = threshold
    ckpt.save(out)
    return out


def test_evaluate_reports_flow_unit_its_and_participants(aptos_run: Path, tmp_path: Path) -> None:
    import numpy as np

    from mobiledr.train.clinical import positive_ppv_npv

    report = _evaluate(aptos_run, tmp_path / "a", "--bootstrap", "200", "--prevalence", "0.05")
    clinical = report["clinical"]
    split_file = SplitFile.read(Path(report["split_file"]))
    synth_cache = Cache.open(Path(report["cache"]))
    tests = split_file.rows_of("test")
    patients = {r.patient_id for r in tests}
    # Patients resampled, and said so, wherever the split file has patient ids.
    assert all(r.patient_id for r in tests)
    assert clinical["unit_of_analysis"]["resampled"] == "patients" and clinical["unit_of_analysis"]["clusters"] == len(patients)
    assert "cluster bootstrap: patients resampled" in report["bootstrap"]["method"]
    # The flow adds up, per class too.
    flow = clinical["flow"]
    assert flow["dataset"]["listed"] == len(synth_cache.entries) + len(synth_cache.rejects) and flow["dataset"]["unreadable"] == len(synth_cache.rejects)
    assert flow["split_images"] == len(tests) == flow["gradable"] + flow["ungradable_by_reference"]
    assert flow["analysed_accepted_only"] == flow["gradable"] - flow["gate_rejected"]
    assert sum(c["analysed_intention_to_screen"] for c in flow["per_class"].values()) == flow["analysed_intention_to_screen"] == report["images"]
    # ITS refers every gate reject; accepted-only drops them; the model alone matches the operating point.
    analyses = clinical["analyses"]
    point = report["operating_point"]
    assert (analyses["model"]["tp"], analyses["model"]["fn"]) == (point["tp"], point["fn"])
    assert analyses["intention_to_screen"]["tp"] + analyses["intention_to_screen"]["fn"] == point["tp"] + point["fn"]
    assert analyses["accepted_only"]["images"] == flow["analysed_accepted_only"]
    misses = analyses["model"]["misses_by_grade"]
    assert sum(m["missed"] for m in misses) == point["fn"] and sum(m["positives"] for m in misses) == point["tp"] + point["fn"]
    assert all(m["grade"].startswith("grade ") and m["grade"] != "grade 0" for m in misses)
    # Prevalence of the split, and PPV/NPV at the intended-use prevalence by Bayes' rule.
    assert clinical["prevalence"]["value"] == pytest.approx((point["tp"] + point["fn"]) / report["images"])
    ppv, npv = positive_ppv_npv(point["sensitivity"]["value"], point["specificity"]["value"], 0.05)
    sens, spec = point["sensitivity"]["value"], point["specificity"]["value"]
    assert ppv == pytest.approx(sens * 0.05 / (sens * 0.05 + (1 - spec) * 0.95))
    for name, expected in (("ppv_at_prevalence", ppv), ("npv_at_prevalence", npv)):
        value = analyses["model"][name]["value"]
        assert (value is None and np.isnan(expected)) or value == pytest.approx(expected), name
    # Per participant: positive when either eye is.
    participants = clinical["per_participant"]["model"]
    truth = {}
    for r in tests:
        if r.label is not None:
            truth[r.patient_id] = max(truth.get(r.patient_id, 0), r.label)
    assert participants["participants"] == len(truth)
    assert participants["sensitivity"]["trials"] == sum(truth.values())
    # Every figure has an interval.
    for name in ("roc_auc", "pr_auc", "kappa", "ece", "system_gradable_rate", "reference_gradable_rate"):
        low, high = clinical["figures"][name]["ci_bootstrap"]
        assert low <= clinical["figures"][name]["value"] <= high, name
    markdown = (tmp_path / "a" / "report.md").read_text()
    for text in ("## Flow of images (STARD)", "## Unit of analysis", "intervals resample **patients**", "Intention to screen: Sensitivity",
                 "Accepted only: Sensitivity", "## Per participant", "## Misses by true grade", "PPV at 5.0%", "System gradable rate"):  # fmt: skip
        assert text in markdown, text
    assert "REFERENCE.md" not in markdown
    assert np.isfinite(clinical["prevalence"]["ci_bootstrap"]).all()


def test_intention_to_screen_counts_gate_rejects_as_referrals(aptos_run: Path, tmp_path: Path) -> None:
    strict = _with_gate(aptos_run, tmp_path / "strict.pt", 1e30)  # the OOD gate rejects every image
    report = _evaluate(strict, tmp_path / "strict", "--bootstrap", "0")
    c = report["clinical"]
    its, accepted = c["analyses"]["intention_to_screen"], c["analyses"]["accepted_only"]
    assert its["sensitivity"]["value"] == 1.0 and its["specificity"]["value"] == 0.0  # every image referred to a human
    assert accepted["images"] == 0 and c["figures"]["system_gradable_rate"]["value"] == 0.0
    assert c["flow"]["gate_rejected"] == c["flow"]["gradable"]
    lenient = _with_gate(aptos_run, tmp_path / "lenient.pt", -1e30)  # the gate accepts every image
    c = _evaluate(lenient, tmp_path / "lenient", "--bootstrap", "0")["clinical"]
    assert c["analyses"]["intention_to_screen"]["tp"] == c["analyses"]["accepted_only"]["tp"] == c["analyses"]["model"]["tp"]
    assert c["figures"]["system_gradable_rate"]["value"] == 1.0


def test_without_patient_ids_images_are_resampled_and_it_is_said(aptos_run: Path, tmp_path: Path) -> None:
    from mobiledr.train.checkpoint import Checkpoint, provenance

    ckpt = Checkpoint.load(aptos_run)
    split_file = SplitFile.read(ckpt.provenance["split_file"])
    split_file.rows = [dataclasses.replace(r, patient_id="") for r in split_file.rows]
    split_file.write(tmp_path / "anonymous.csv")
    ckpt.provenance = provenance(tmp_path / "anonymous.csv", Path(ckpt.provenance["cache"]))
    ckpt.save(tmp_path / "anonymous.pt")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "anonymous.pt"), "--out", str(tmp_path / "e"), "--bootstrap", "20", "--split", "val"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["clinical"]["unit_of_analysis"]["resampled"] == "images"
    assert "no patient ids" in report["bootstrap"]["method"]
    assert "not_available" in report["clinical"]["per_participant"]
    assert any("in-sample" in w for w in report["warnings"]) and any("no patient ids" in w for w in report["warnings"])
    assert "in-sample" in result.output and "Warning" in (tmp_path / "e" / "report.md").read_text()


def test_cluster_bootstrap_widens_image_intervals_when_eyes_agree() -> None:
    """Two eyes per patient with the same outcome: image-level intervals that ignore it are too narrow."""
    import numpy as np

    from mobiledr.train.metrics import bootstrap_binary

    rng = np.random.default_rng(3)
    y = np.repeat((rng.random(200) < 0.4).astype(int), 2)
    p = np.repeat(np.clip(0.35 + 0.3 * (y[::2] - 0.5) + rng.normal(0, 0.25, 200), 0, 1), 2)
    groups = np.repeat(np.arange(200), 2).astype(str)
    images = bootstrap_binary(y, p, 0.4, 500, 0)
    patients = bootstrap_binary(y, p, 0.4, 500, 0, groups=groups)
    for name in ("sensitivity", "specificity", "roc_auc"):
        ratio = np.diff(patients[name])[0] / np.diff(images[name])[0]
        assert 1.2 < ratio < 1.7, (name, ratio)


# -- warnings (16.9) -------------------------------------------------------------------------------
def test_test_fraction_is_what_was_asked(synth_cache: Cache) -> None:
    from mobiledr.data.labels import get_scheme
    from mobiledr.data.splits import make_splits

    splits, _ = make_splits(synth_cache, get_scheme("any-dr"), val=0.15, test=0.4, seed=0)
    gradable = [r for r in splits.rows if r.label is not None]
    share = sum(r.split == "test" for r in gradable) / len(gradable)
    assert 0.33 <= share <= 0.47, share  # one fold of round(1 / 0.4) = 2 held 50%


def test_splitting_without_patient_ids_warns(folder_cache: Cache, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "split", str(folder_cache.root), "--scheme", "classes", "--out", str(tmp_path / "s.csv"),
                                 "--merge-duplicates"], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no patient ids" in " ".join(result.output.split())


def test_resuming_an_early_stopped_run_trains_no_further_epoch(folder_run: Path, tmp_path: Path) -> None:
    import csv

    from mobiledr.train import loop
    from mobiledr.train.checkpoint import Checkpoint

    run = tmp_path / "run"
    shutil.copytree(folder_run.parent, run)
    last = Checkpoint.load(run / "last.pt")
    last.train_config = {**last.train_config, "epochs": 3, "early_stopping": 1}
    assert last.resume is not None
    last.resume["bad_epochs"] = 1  # the run stopped early after its first epoch
    last.save(run / "last.pt")
    loop.train(None, None, None, run, resume=True)
    with (run / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1


# -- evaluate BUNDLE: the artifacts that ship (16.7) ----------------------------------------------
@pytest.fixture(scope="module")
def aptos_bundle(aptos_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mobiledr.export.bundle import ExportOptions, export_bundle
    from mobiledr.export.formats import select_formats

    out = tmp_path_factory.mktemp("aptos-bundle") / "bundle"
    export_bundle(ExportOptions(aptos_run, out, select_formats(None, "onnx-fp32,onnx-int8"), "desktop", calibration_samples=8, jobs=1))
    return out


def test_evaluate_bundle_scores_each_artifact_from_its_own_outputs(aptos_bundle: Path, tmp_path: Path) -> None:
    import json

    import numpy as np

    from mobiledr.export.manifest import Manifest
    from mobiledr.runners import artifact_runner
    from mobiledr.train.artifact_eval import REFERENCE, _read_split
    from mobiledr.train.checkpoint import Checkpoint

    summary = _evaluate(aptos_bundle, tmp_path / "e", "--bootstrap", "100", "--prevalence", "0.1")
    manifest = Manifest.load(aptos_bundle)
    runs_here = {a["file"] for a in manifest.artifacts} - set(summary["skipped"])
    assert set(summary["artifacts"]) == {REFERENCE, *runs_here} and "model.int8.onnx" in runs_here
    checkpoint_report = _evaluate(Path(manifest.source["checkpoint"]), tmp_path / "c", "--bootstrap", "0")
    for name in summary["artifacts"]:
        report = json.loads((tmp_path / "e" / name / "report.json").read_text())
        clinical = report["clinical"]
        assert {"flow", "unit_of_analysis", "analyses", "per_participant", "figures", "prevalence"} <= set(clinical)
        assert clinical["unit_of_analysis"]["resampled"] == "patients"
        markdown = (tmp_path / "e" / name / "report.md").read_text()
        assert "## Flow of images (STARD)" in markdown and "Intention to screen: Sensitivity" in markdown
        if name != REFERENCE:
            assert report["gates"]["verdict"] in ("PASS", "FAIL")
            rules = {c["rule"] for c in report["gates"]["checks"]}
            assert "min_decision_agreement" in rules
            if report["precision"] == "int8":
                assert {"non_inferiority.sensitivity", "non_inferiority.specificity", "min_ood_agreement"} <= rules
            assert "## Gate verdict against the PyTorch reference" in markdown
    # The reference reproduces the checkpoint's own evaluation (same flow and ITS table).
    ref = json.loads((tmp_path / "e" / REFERENCE / "report.json").read_text())["clinical"]
    assert ref["flow"] == checkpoint_report["clinical"]["flow"]
    for key in ("tp", "fp", "tn", "fn"):
        assert ref["analyses"]["intention_to_screen"][key] == checkpoint_report["clinical"]["analyses"]["intention_to_screen"][key]
    # Recount the int8 artifact's intention-to-screen table from its own outputs.
    checkpoint = Checkpoint.load(Path(manifest.source["checkpoint"]))
    split, *_ = _read_split(checkpoint, "test", None, None, manifest.model["input_size"])
    with artifact_runner(aptos_bundle, manifest, manifest.artifact("model.int8.onnx")) as runner:
        produced = runner.run(split.images)
    gradable = split.labels >= 0
    referred = (produced["probs"][:, 1] >= manifest.decision["threshold"]) | (produced["ood_score"].reshape(-1) < manifest.ood["threshold"])
    y = split.labels[gradable]
    its = json.loads((tmp_path / "e" / "model.int8.onnx" / "report.json").read_text())["clinical"]["analyses"]["intention_to_screen"]
    assert its["tp"] == int((referred[gradable] & (y == 1)).sum()) and its["fp"] == int((referred[gradable] & (y == 0)).sum())
    assert np.isfinite(its["sensitivity"]["value"])
    assert "ITS sensitivity" in (tmp_path / "e" / "summary.md").read_text()
    # The demo report shows the shipped artifacts' table next to the reference's.
    from mobiledr.demo_report import SHIPPED, shipped_table

    (tmp_path / "demo" / SHIPPED).parent.mkdir(parents=True)
    shutil.copy(tmp_path / "e" / "summary.json", tmp_path / "demo" / SHIPPED)
    html = shipped_table(SimpleNamespace(out=tmp_path / "demo"))  # type: ignore[arg-type]
    assert "<code>model.int8.onnx</code>" in html and "<code>pytorch-reference</code>" in html and "ITS sensitivity" in html
    assert shipped_table(SimpleNamespace(out=tmp_path / "nothing")) == ""  # type: ignore[arg-type]
    result = runner_invoke_error(["evaluate", str(aptos_bundle), "--artifact", "nothing.onnx"])
    assert "the bundle has no artifact 'nothing.onnx'" in result


def runner_invoke_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, MobiledrError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


# -- referable DR includes macular oedema where the data set grades it (16.5) ----------------------
def test_readers_carry_dme_and_referable_dr_uses_it(tmp_path: Path) -> None:
    from mobiledr.data.labels import case_definition, get_scheme
    from mobiledr.data.readers import read_dataset

    from .test_readers import IDRID_HEADER, M2_HEADER, MESSIDOR_HEADER, image, text, xls

    referable = get_scheme("referable-dr")
    # Messidor: 'Risk of macular edema' 0-2 (DME when >= 1), grades 0-3.
    image(tmp_path / "m1" / "a.tif")
    image(tmp_path / "m1" / "b.tif")
    image(tmp_path / "m1" / "c.tif")
    xls(tmp_path / "m1" / "Annotation_Base11.xls", [MESSIDOR_HEADER, ["a.tif", "x", 1, 2], ["b.tif", "x", 0, 0], ["c.tif", "x", 2, 0]])
    m1 = {r.path.name: r for r in read_dataset(tmp_path / "m1", "messidor").records}
    assert (m1["a.tif"].dme, m1["b.tif"].dme, m1["c.tif"].dme) == (True, False, False)
    assert [referable.label(m1[n]) for n in ("a.tif", "b.tif", "c.tif")] == [1, 0, 1]  # mild NPDR with DME is referable
    # Messidor-2: adjudicated_dme 0/1.
    for name in ("p.png", "q.png"):
        image(tmp_path / "m2" / "IMAGES" / name)
    text(tmp_path / "m2" / "messidor_data.csv", M2_HEADER + "p.png,0,1,1\nq.png,1,0,1\n")
    m2 = {r.path.name: r for r in read_dataset(tmp_path / "m2", "messidor2").records}
    assert (m2["p.png"].dme, m2["q.png"].dme) == (True, False) and referable.label(m2["p.png"]) == 1 and referable.label(m2["q.png"]) == 0
    # IDRiD: 'Risk of macular edema ' (trailing space) 0-2.
    grading = tmp_path / "idrid" / "B. Disease Grading"
    for n in ("IDRiD_001", "IDRiD_002"):
        image(grading / "1. Original Images" / "a. Training Set" / f"{n}.jpg")
    text(grading / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv",
         IDRID_HEADER + "IDRiD_001,1,1,,,,,,,,,\nIDRiD_002,1,0,,,,,,,,,\n")  # fmt: skip
    idrid = {r.path.stem: r for r in read_dataset(tmp_path / "idrid", "idrid").records}
    assert (idrid["IDRiD_001"].dme, idrid["IDRiD_002"].dme) == (True, False)
    assert (referable.label(idrid["IDRiD_001"]), referable.label(idrid["IDRiD_002"])) == (1, 0)
    assert "and/or macular oedema" in case_definition(referable, list(idrid.values()))
    # A data set without DME grades says so.
    from mobiledr.data.records import Record

    plain = [Record(Path("x.png"), 1, "aptos")]
    assert referable.label(plain[0]) == 0
    assert "does not grade macular oedema" in case_definition(referable, plain)
    assert case_definition(get_scheme("any-dr"), plain) is None


def test_cache_keeps_dme(tmp_path: Path) -> None:
    from .test_readers import M2_HEADER, text

    make_dataset(tmp_path / "aptos", n=4, size=128, seed=3)
    (tmp_path / "m2" / "IMAGES").mkdir(parents=True)
    for i, png in enumerate(sorted((tmp_path / "aptos" / "train_images").glob("*.png"))):
        shutil.copy(png, tmp_path / "m2" / "IMAGES" / f"im{i}.png")
    text(tmp_path / "m2" / "messidor_data.csv", M2_HEADER + "im0.png,0,1,1\nim1.png,0,0,1\nim2.png,3,,1\nim3.png,,,0\n")
    cache = prepare(tmp_path / "m2", "messidor2", PreprocessSpec(size=SIZE), tmp_path / "cache", workers=1).cache
    again = Cache.open(cache.root)
    assert {Path(e.key).name: e.record.dme for e in again.entries} == {"im0.png": True, "im1.png": False, "im2.png": None, "im3.png": None}


# -- the exported heatmap is named for what it is (16.10) -----------------------------------------
def test_cbam_heatmap_is_called_the_attention_gate_in_manifest_and_explain_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import torch

    from mobiledr.cli.explain import register
    from mobiledr.data.synth import generate_fundus
    from mobiledr.export.bundle import _tensor_specs
    from mobiledr.data.geometry import write_png
    from mobiledr.models import ModelConfig, build_model
    from mobiledr.train import explain as explain_module
    from mobiledr.train.checkpoint import Checkpoint

    import typer

    torch.manual_seed(0)
    checkpoints = {}
    for hidden in (16, 0):
        config = ModelConfig(arch="small", input_size=SIZE, head_hidden=hidden)
        checkpoints[hidden] = Checkpoint(config, PreprocessSpec(size=SIZE), ["no DR", "DR"], "any-dr", build_model(config).eval().state_dict(),
                                         threshold=0.5)  # fmt: skip
        checkpoints[hidden].save(tmp_path / f"h{hidden}.pt")
    _, (heatmap,) = _tensor_specs(checkpoints[16], ["heatmap"], SIZE, 2)
    assert "CBAM spatial attention gate" in heatmap["description"] and "same map for every class; not Grad-CAM" in heatmap["description"]
    _, (heatmap,) = _tensor_specs(checkpoints[0], ["heatmap"], SIZE, 2)
    assert heatmap["description"].startswith("class activation map of the explained class")

    captions: list[str] = []
    monkeypatch.setattr(explain_module, "save_panel", lambda path, panels, title: captions.extend(c for c, _ in panels))
    photo = tmp_path / "eye.png"
    write_png(photo, generate_fundus(2, 128, np.random.default_rng(0))[0])
    app = typer.Typer()
    register(app)
    result = runner.invoke(app, [str(tmp_path / "h16.pt"), str(photo), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "x" / "explanations.json").read_text())
    assert report["heatmap"] == "cbam-spatial" and report["heatmap_class_specific"] is False
    assert "not Grad-CAM" in report["heatmap_description"]
    assert captions[-1] == "exported: CBAM spatial attention gate\n(same for every class; not Grad-CAM)" and captions[2] == "Grad-CAM"
