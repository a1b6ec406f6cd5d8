"""``run_parity``: every artifact of a bundle against the PyTorch reference on the same images, judged
by the tolerance policy. It fails closed: integrity problems, runtime errors, precisions the policy
does not cover and broken rules are failures; only a runtime that cannot run here is a skip."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobiledr import __version__
from mobiledr.data.geometry import decode, geometric
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError, one_line
from mobiledr.export import golden
from mobiledr.export.bundle import verify_bundle
from mobiledr.export.manifest import MANIFEST, Manifest
from mobiledr.io import file_sha256, read_json
from mobiledr.parity.compare import Decision, clinical, flipped, tensor_errors
from mobiledr.parity.judge import FAIL, PASS, failure_reasons, judge, show
from mobiledr.parity.inputs import ParityInputs
from mobiledr.parity.policy import Check, Policy
from mobiledr.progress import progress_bar
from mobiledr.runners import Runner, RunnerUnavailable, artifact_runner, reference_checkpoint, reference_runner

log = logging.getLogger(__name__)
REPORT_SCHEMA = "mobiledr-parity/1"
SKIPPED = "SKIPPED"


@dataclass
class ParityOptions:
    bundle: Path
    policy: Policy
    checkpoint: Path | None = None  # default: the checkpoint the manifest names (its sha256 must match)
    artifacts: list[str] | None = None  # file names or format ids; default: every artifact
    seed: int = 0
    resamples: int = 1000
    threads: int | None = None
    localize: bool = False


def _select(manifest: Manifest, wanted: list[str] | None) -> list[dict[str, Any]]:
    if not wanted:
        return list(manifest.artifacts)
    chosen = [a for a in manifest.artifacts if a["file"] in wanted or a["format"] in wanted]
    unknown = [w for w in wanted if not any(w in (a["file"], a["format"]) for a in manifest.artifacts)]
    if unknown:
        raise MobiledrError(f"the bundle has no artifact or format {unknown[0]!r}; it has {', '.join(a['file'] for a in manifest.artifacts)}")
    return chosen


def _run(runner: Runner, images: np.ndarray, description: str) -> dict[str, np.ndarray]:
    with progress_bar(description, len(images)) as bar:
        return runner.run(images, bar.advance)


def _errors(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {name: tensor_errors(reference[name], actual[name]) for name in reference}


def _geometric_check(bundle: Path, manifest: Manifest) -> dict[str, Any]:
    """The golden photographs through this version's geometric stage against the bundle's expected images."""
    info = read_json(bundle / golden.GEOMETRIC, "golden geometric pairs")
    spec = PreprocessSpec.from_dict(manifest.preprocessing["photometric"]["spec"])
    folder = (bundle / golden.GEOMETRIC).parent
    worst = 0
    for pair in info["pairs"]:
        produced = geometric(decode(folder / pair["original"]), spec).image
        expected = decode(folder / pair["expected"])
        worst = max(worst, int(np.abs(produced.astype(int) - expected.astype(int)).max()) if produced.shape == expected.shape else 255)
    limit = info["max_abs_difference"]
    return {"pairs": len(info["pairs"]), "max_abs_difference": worst, "limit": limit, "ok": worst <= limit}


def _bundled_check(bundle: Path, manifest: Manifest, entry: dict[str, Any], policy: Policy) -> Check:
    """The ExecuTorch BundledProgram's own self-check (what the phone runs) on every golden case."""
    rtol, atol = policy.bundled_tolerances(entry["precision"])
    from executorch.extension.pybindings.portable_lib import _load_bundled_program_from_buffer, _load_for_executorch_from_bundled_program

    path = entry["extras"]["bundled_program"]
    try:
        bundled = _load_bundled_program_from_buffer((bundle / path).read_bytes())
        _load_for_executorch_from_bundled_program(bundled)
        for case in range(manifest.golden["count"]):
            bundled.verify_result_with_bundled_expected_output("forward", case, rtol, atol)
    except Exception as exc:  # the runtime reports a mismatch (status 32) as an exception
        return Check("bundled_program_self_check", f"rtol {rtol:g}, atol {atol:g}", None, False, f"{path}: {one_line(exc)}")
    return Check("bundled_program_self_check", f"rtol {rtol:g}, atol {atol:g}", None, True, f"{path}: {manifest.golden['count']} cases")


def _artifact(options: ParityOptions, manifest: Manifest, entry: dict[str, Any], inputs: ParityInputs, reference: dict[str, np.ndarray],
              vectors: tuple[np.ndarray, dict[str, np.ndarray]], problems: list[str]) -> dict[str, Any]:  # fmt: skip
    """Run one artifact and judge it."""
    result: dict[str, Any] = {key: entry[key] for key in ("file", "format", "precision", "runtime", "backend", "kind", "size_bytes")}
    precision = entry["precision"]
    try:
        runner = artifact_runner(options.bundle, manifest, entry, options.threads)
    except RunnerUnavailable as exc:  # a tampered artifact fails even where it cannot run
        return {**result, "verdict": FAIL if problems else SKIPPED, "reasons": [*problems, str(exc)]}
    start = time.perf_counter()
    try:
        with runner:
            actual = _run(runner, inputs.images, f"{entry['file']}")
            golden_actual = runner.run(vectors[0])
        golden_errors = _errors(vectors[1], golden_actual)
        decision = Decision.from_manifest(manifest.decision)
        ood_threshold = manifest.ood["threshold"] if manifest.ood else None
        judged = judge(options.policy, precision, reference, actual, decision, ood_threshold, inputs.labels, inputs.groups, options.resamples, options.seed)
    except Exception as exc:  # a crash, a missing or misshapen output: the artifact fails, the others still run
        log.debug("runner for %s failed", entry["file"], exc_info=True)
        return {**result, "verdict": FAIL, "reasons": [*problems, f"runtime error: {one_line(exc)}"]}
    golden_checks: list[Check] = []
    if options.policy.has(precision):
        golden_checks = options.policy.elementwise(precision, golden_errors)
        if "bundled_program" in entry["extras"]:
            golden_checks.append(_bundled_check(options.bundle, manifest, entry, options.policy))
    reasons = [*problems, *judged.reasons, *failure_reasons(golden_checks, prefix="golden ")]
    flips = flipped(inputs.names, inputs.labels, reference["probs"], actual["probs"], decision) if "probs" in reference else []
    return {
        **result, "verdict": FAIL if reasons else PASS, "reasons": reasons, "seconds": round(time.perf_counter() - start, 2),
        "errors": judged.errors, "agreement": judged.agreement, "clinical": judged.clinical, "flipped": flips,
        "checks": [dataclasses.asdict(c) for c in judged.checks],
        "golden": {"errors": golden_errors, "checks": [dataclasses.asdict(c) for c in golden_checks]},
    }  # fmt: skip


def run_parity(options: ParityOptions, inputs: ParityInputs) -> dict[str, Any]:
    """Compare every selected artifact with the reference on ``inputs``; returns the report (see
    :mod:`mobiledr.parity.report`)."""
    bundle = Path(options.bundle)
    manifest = Manifest.load(bundle)
    entries = _select(manifest, options.artifacts)
    checkpoint = reference_checkpoint(manifest, options.checkpoint)
    size = manifest.model["input_size"]
    if inputs.images.shape[1:] != (3, size, size):
        raise MobiledrError(f"{inputs.source}: images are {inputs.images.shape[1:]}, the bundle's model takes (3, {size}, {size})")
    integrity = verify_bundle(bundle)
    artifact_files = {a["file"] for a in manifest.artifacts}
    by_artifact = {f: [f"integrity: {p.split(': ', 1)[1]}" for p in integrity if p.split(": ", 1)[0] == f] for f in artifact_files}
    bundle_problems = [p for p in integrity if p.split(": ", 1)[0] not in artifact_files]

    vectors = golden.load_vectors(bundle / golden.VECTORS)
    with reference_runner(manifest, checkpoint, options.threads) as runner:
        reference = _run(runner, inputs.images, "PyTorch reference")
        reference_golden = runner.run(vectors[0])
    reference_checks = options.policy.elementwise("fp32", _errors(vectors[1], reference_golden))
    if any(c.ok is False for c in reference_checks):
        bundle_problems.append("the reference does not reproduce the bundle's golden vectors: " + "; ".join(
            f"{c.rule} = {show(c.value)} (limit {c.limit})" for c in reference_checks if c.ok is False))  # fmt: skip
    geometric_check = _geometric_check(bundle, manifest)
    if not geometric_check["ok"]:
        bundle_problems.append(f"golden geometric pairs differ by {geometric_check['max_abs_difference']} grey levels (limit {geometric_check['limit']})")

    artifacts = [_artifact(options, manifest, entry, inputs, reference, vectors, by_artifact[entry["file"]]) for entry in entries]
    if options.localize:
        from mobiledr.parity.localize import localize_failures

        localize_failures(bundle, manifest, artifacts, inputs)
    reference_outcome = None
    if inputs.labels is not None and "probs" in reference:
        reference_outcome = clinical(inputs.labels, reference["probs"], reference["probs"], Decision.from_manifest(manifest.decision),
                                     options.resamples, options.seed, groups=inputs.groups)  # fmt: skip
    failed = [a["file"] for a in artifacts if a["verdict"] == FAIL]
    return {
        "schema": REPORT_SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mobiledr_version": __version__,
        "bundle": str(bundle.resolve()),
        "manifest_sha256": file_sha256(bundle / MANIFEST),
        "target": manifest.target,
        "model": {"name": manifest.model["name"], "input_size": size, "labels": manifest.labels, "decision": manifest.decision, "ood": manifest.ood},
        "checkpoint": str(checkpoint.resolve()),
        "inputs": {"source": inputs.source, "images": len(inputs.images), "labelled": inputs.labels is not None,
                   "class_counts": np.bincount(inputs.labels, minlength=len(manifest.labels)).tolist() if inputs.labels is not None else None,
                   "skipped": inputs.skipped},
        "policy": {"source": options.policy.source, "tables": options.policy.tables},
        "bootstrap": {"resamples": options.resamples, "seed": options.seed, "level": 0.95,
                      "unit": "patients" if inputs.groups is not None else "images",
                      "clusters": len(set(inputs.groups)) if inputs.groups is not None else len(inputs.images)},
        "reference": {"golden": [dataclasses.asdict(c) for c in reference_checks], "clinical": reference_outcome},
        "bundle_checks": {"integrity": integrity, "geometric_pairs": geometric_check, "problems": bundle_problems},
        "artifacts": artifacts,
        "verdict": FAIL if failed or bundle_problems else PASS,
        "failed": failed,
    }  # fmt: skip
