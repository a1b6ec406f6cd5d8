"""Build a deployment bundle (formats in parallel worker processes, written atomically) and verify one."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import multiprocessing
import os
import queue
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobiledr import __version__
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import SplitFile
from mobiledr.errors import MobiledrError, one_line
from mobiledr.export import golden
from mobiledr.export.calibration import calibration_images, split_images
from mobiledr.export.context import ExportContext, ExportRequest
from mobiledr.export.formats import FORMATS, Format
from mobiledr.export.graph import build_deploy, check_outputs, default_outputs
from mobiledr.export.manifest import INPUT_NAME, MANIFEST, Manifest, tree_sha256
from mobiledr.io import file_sha256
from mobiledr.models.summary import summarize
from mobiledr.parity.policy import Policy
from mobiledr.train.checkpoint import Checkpoint, library_versions
from mobiledr.train.explain import DESCRIPTIONS as HEATMAP_DESCRIPTIONS
from mobiledr.train.explain import CLASS_SPECIFIC, heatmap_method, method_for

log = logging.getLogger(__name__)
UNLISTED_OK = ("parity/", "bench/", "evaluation/")  # later stages (parity, bench, evaluate BUNDLE) write their reports into the bundle
LIBRARIES = ("torch", "executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "numpy", "opencv-python-headless")

# (event, format id, seconds, error): "start" when a format begins, "done" or "failed" when it ends
EventHandler = Callable[[str, str, float, str | None], None]


@dataclass
class ExportOptions:
    checkpoint: Path
    out: Path
    formats: Sequence[Format]
    target: str
    outputs: Sequence[str] | None = None  # None: every output the checkpoint supports
    input_size: int | None = None
    calibration_data: Path | None = None  # default: the cache the checkpoint was trained on
    calibration_samples: int = 32
    jobs: int | None = None  # worker processes; None: min(2, CPUs, formats); 1: in this process
    keep_going: bool = False
    int8: str = "auto"  # an int8 recipe, or auto: the first recipe that passes the int8 gate on the validation split
    gate_images: int = 400  # validation images the int8 gate judges recipes on (0: all)


@dataclass
class FormatResult:
    format: str
    artifacts: list[dict[str, Any]]
    seconds: float
    error: str | None = None


@contextlib.contextmanager
def _silenced() -> Iterator[io.StringIO]:
    """Capture the converters' prints, progress bars, warnings and log records below ERROR (the export's
    own progress display replaces them); yields the captured text."""
    captured = io.StringIO()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        logging.disable(logging.NOTSET)


def run_formats(request: ExportRequest, format_ids: list[str], folder: Path, events: Any = None, threads: int = 0) -> list[FormatResult]:
    """Export ``format_ids`` in order with one shared context (a worker process's job). Each format writes
    into a scratch folder merged into ``folder`` on success; a failing format is recorded, not raised, and
    its scratch folder deleted."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    with _silenced():
        context = ExportContext(request)
    results = []
    for format_id in format_ids:
        if events is not None:
            events.put(("start", format_id, 0.0, None))
        start = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f".{format_id}-", dir=folder))  # a failed format leaves nothing behind
        try:
            with _silenced() as captured:
                artifacts = [a.to_dict() for a in FORMATS[format_id].export(context, scratch)]
            _merge(scratch, folder)
            result = FormatResult(format_id, artifacts, time.perf_counter() - start)
        except Exception as exc:  # any converter failure becomes a named, one-line failure
            log.debug("format %s failed; converter output:\n%s", format_id, captured.getvalue(), exc_info=True)
            result = FormatResult(format_id, [], time.perf_counter() - start, one_line(exc))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if events is not None:
            events.put(("failed" if result.error else "done", format_id, result.seconds, result.error))
        results.append(result)
    return results


def _merge(source: Path, destination: Path) -> None:
    """Move everything under ``source`` into ``destination`` (folders merge; formats never share file names)."""
    for item in source.iterdir():
        target = destination / item.name
        if item.is_dir() and target.is_dir():
            _merge(item, target)
        else:
            os.replace(item, target)


def plan(formats: Sequence[Format], jobs: int) -> list[list[str]]:
    """Spread formats over ``jobs`` workers by their relative cost, longest first onto the least loaded (LPT)."""
    groups: list[list[str]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for fmt in sorted(formats, key=lambda f: -f.cost):
        target = min(range(jobs), key=lambda i: load[i])
        groups[target].append(fmt.id)
        load[target] += fmt.cost
    return [g for g in groups if g]


def _execute(request: ExportRequest, groups: list[list[str]], folder: Path, on_event: EventHandler | None) -> list[FormatResult]:
    if len(groups) == 1:
        sink = _CallbackQueue(on_event) if on_event else None
        return run_formats(request, groups[0], folder, sink)
    threads = max(1, (os.cpu_count() or 1) // len(groups))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(len(groups), mp_context=ctx) as pool:
        events = manager.Queue()
        pending = {pool.submit(run_formats, request, group, folder, events, threads) for group in groups}
        results: list[FormatResult] = []
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, on_event)
            for future in done:
                results.extend(future.result())
        _drain(events, on_event)
    return results


class _CallbackQueue:
    """The ``put`` side of an event queue that calls the handler directly (in-process runs)."""

    def __init__(self, handler: EventHandler) -> None:
        self.handler = handler

    def put(self, event: tuple[str, str, float, str | None]) -> None:
        self.handler(*event)


def _drain(events: Any, on_event: EventHandler | None) -> None:
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        if on_event is not None:
            on_event(*event)


def _prepare_destination(out: Path) -> None:
    if out.exists() and not (out / MANIFEST).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise MobiledrError(f"{out}: exists and is not a mobiledr bundle; choose another --out")


def _replace(staging: Path, out: Path) -> None:
    """Move the finished bundle into place; an older bundle there is replaced only once the new one is complete."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _calibration(options: ExportOptions, checkpoint: Checkpoint, spec: PreprocessSpec) -> tuple[np.ndarray | None, dict | None]:
    if not any(f.calibrated for f in options.formats):
        return None, None
    cache = options.calibration_data or checkpoint.provenance.get("cache")
    if cache is None or not Path(cache).exists():
        needing = ", ".join(f.id for f in options.formats if f.calibrated)
        where = f" ({cache} is gone)" if cache else ""
        raise MobiledrError(f"{needing} need calibration images: pass --calibration-data CACHE{where}")
    split = checkpoint.provenance.get("split_file")
    if split and Path(split).is_file():  # a rewritten split file could hand test images to calibration
        SplitFile.read(split, checkpoint.provenance.get("split_sha256"))
    elif split and options.calibration_data is None:  # without it, nothing tells the training cache's test images apart
        raise MobiledrError(f"{split}: the checkpoint's split file is gone, so its training cache cannot be used for int8 calibration "
                            "without drawing on test images; restore it or pass --calibration-data with images outside the test split")  # fmt: skip
    return calibration_images(Path(cache), spec, options.calibration_samples, Path(split) if split else None)


def _gate(options: ExportOptions, checkpoint: Checkpoint, spec: PreprocessSpec) -> dict[str, Any]:
    """ExportRequest fields for the int8 gate: the validation split of the checkpoint's split file, in
    its cache (never the test split). Without them int8 recipes are exported unjudged."""
    if not any(f.calibrated for f in options.formats):
        return {}
    cache, split = checkpoint.provenance.get("cache"), checkpoint.provenance.get("split_file")
    if not (cache and split and Path(cache).exists() and Path(split).is_file()):
        why = "records no split file" if not split else f"names a cache or split file that is gone ({cache}, {split})"
        log.warning("int8 gate skipped: the checkpoint %s, so there are no validation images to judge int8 recipes on", why)
        return {}
    SplitFile.read(split, checkpoint.provenance.get("split_sha256"))  # a rewritten split file could pass test images off as validation
    images, labels, groups, info = split_images(Path(cache), spec, Path(split), "val", options.gate_images)
    return {"gate": images, "gate_labels": labels, "gate_groups": groups, "gate_info": info}


def gate_failures(manifest: Manifest) -> list[str]:
    """One line per int8 artifact whose recipe did not pass the int8 gate."""
    lines = []
    for entry in manifest.artifacts:
        gate = entry.get("int8_gate")
        if gate and gate["verdict"] == "FAIL":
            chosen = next(a for a in gate["attempts"] if a["recipe"] == gate["chosen"])
            lines.append(f"{entry['file']}: no int8 recipe passed the gate on the validation split (tried {', '.join(a['recipe'] for a in gate['attempts'])}; "
                         f"kept {gate['chosen']}: {'; '.join(chosen['reasons'])})")  # fmt: skip
    return lines


def _tensor_specs(checkpoint: Checkpoint, outputs: Sequence[str], size: int, feature_side: int) -> tuple[dict, list[dict]]:
    k = len(checkpoint.labels)
    image = {
        "name": INPUT_NAME, "shape": [1, 3, size, size], "dtype": "float32", "range": [0, 255], "layout": "NCHW", "color_order": "RGB",
        "description": "the geometric stage's output: circle-cropped (fundus), square, resized to the model size; "
        "the photometric stage (Ben Graham, mask, normalisation) is inside every artifact",
    }
    described = {
        "probs": ({"shape": [1, k], "range": [0, 1]}, f"temperature-calibrated softmax over the labels (T = {checkpoint.temperature:.4g})"),
        "logits": ({"shape": [1, k], "range": [None, None]}, "raw class scores"),
        "heatmap": ({"shape": [1, feature_side, feature_side], "range": [0, 1]},
                    f"{HEATMAP_DESCRIPTIONS[method_for(checkpoint.model_config)]}; 0-1 per image, upsample to the image"),
        "ood_score": ({"shape": [1], "range": [None, None]}, "Mahalanobis familiarity: below ood.threshold means out of distribution"),
    }
    specs = [{"name": name, **described[name][0], "dtype": "float32", "description": described[name][1]} for name in outputs]
    return image, specs


def _decision(checkpoint: Checkpoint) -> dict[str, Any]:
    binary = len(checkpoint.labels) == 2
    if binary and checkpoint.threshold is not None:
        rule = f"refer ({checkpoint.labels[1]}) when probs[1] >= threshold"
    else:
        rule = "predicted class = argmax(probs)"
    return {
        "rule": rule, "threshold": checkpoint.threshold if binary else None, "positive_index": 1 if binary else None,
        "positive_class": checkpoint.positive_class, "temperature": checkpoint.temperature,
    }  # fmt: skip


def _geometric_steps(mode: str, size: int) -> list[str]:
    if mode == "oct":
        return ["decode to 8-bit RGB (apply EXIF orientation)", f"resize to {size}x{size}, bicubic (OpenCV INTER_CUBIC)"]
    return [
        "decode to 8-bit RGB (apply EXIF orientation)",
        "find the fundus disc: pixels whose grey level exceeds crop_tolerance, robust circle fit to the disc's edge",
        "crop the square of side 2r centred on the disc, black where it leaves the frame",
        f"resize to {size}x{size}, bicubic (OpenCV INTER_CUBIC)",
    ]


def export_bundle(options: ExportOptions, on_event: EventHandler | None = None) -> tuple[Manifest, Path]:
    """Export every format into a temporary folder beside ``options.out`` and rename it into place.

    Without ``keep_going`` any failing format fails the export (MobiledrError naming the format and
    reason) and nothing is left behind; with it, successful formats are kept and failures listed in the
    manifest (at least one format must succeed).
    """
    if not options.formats:
        raise MobiledrError("no formats to export")
    out = Path(options.out)
    _prepare_destination(out)
    checkpoint = Checkpoint.load(options.checkpoint)
    size = options.input_size or checkpoint.preprocess.size
    outputs = check_outputs(options.outputs) if options.outputs else default_outputs(checkpoint)
    model = build_deploy(checkpoint, outputs, size)  # fails early on bad outputs or sizes
    calibration, calibration_info = _calibration(options, checkpoint, model.photometric.spec)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        geometric_images = golden.write_geometric_pairs(staging, model.photometric.spec)
        inputs = np.ascontiguousarray(geometric_images.transpose(0, 3, 1, 2), dtype=np.float32)
        expected = golden.reference_outputs(model, inputs)
        golden.write_vectors(staging, inputs, expected)
        request = ExportRequest(Path(options.checkpoint).resolve(), outputs, size, calibration, calibration_info, inputs, expected,
                                int8=options.int8, **_gate(options, checkpoint, model.photometric.spec))  # fmt: skip
        jobs = options.jobs or min(2, os.cpu_count() or 1, len(options.formats))
        results = _execute(request, plan(options.formats, jobs), staging, on_event)
        order = [f.id for f in options.formats]
        results.sort(key=lambda r: order.index(r.format))
        failures = [{"format": r.format, "error": r.error} for r in results if r.error]
        if failures and (not options.keep_going or len(failures) == len(results)):
            first = failures[0]
            raise MobiledrError(f"export failed: {first['format']}: {first['error']}")
        summary = summarize(model.core.network, size)
        artifacts = []
        for result in results:
            for entry in result.artifacts:
                sha, nbytes = tree_sha256(staging / entry["file"])
                artifacts.append({**entry, "size_bytes": nbytes, "sha256": sha, "params": summary.trainable_params, "macs": summary.macs,
                                  "input_type": "image" if entry["kind"] == "mlpackage" else "tensor",
                                  **({"self_check": limits} if (limits := Policy.load().self_check(entry["precision"], outputs)) else {})})
        artifact_files = {a["file"] for a in artifacts}
        files = []
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            rel = path.relative_to(staging).as_posix()
            if not any(rel == f or rel.startswith(f + "/") for f in artifact_files):
                sha, nbytes = tree_sha256(path)
                files.append({"file": rel, "size_bytes": nbytes, "sha256": sha})
        image_spec, output_specs = _tensor_specs(checkpoint, outputs, size, expected["heatmap"].shape[-1] if "heatmap" in expected else 1)
        spec = model.photometric.spec
        bundled = next((a["extras"]["bundled_program"] for a in artifacts if "bundled_program" in a["extras"]), None)
        manifest = Manifest(
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            mobiledr_version=__version__,
            target=options.target,
            model={
                "name": checkpoint.model_config.name, "config": checkpoint.model_config.to_dict(), "params": summary.trainable_params,
                "macs": summary.macs, "input_size": size, "heatmap_method": heatmap_method(model.core.network),
                "heatmap_class_specific": CLASS_SPECIFIC[heatmap_method(model.core.network)],
            },
            labels=list(checkpoint.labels),
            label_scheme=checkpoint.scheme,
            decision=_decision(checkpoint),
            ood=(
                {"output": "ood_score", "threshold": checkpoint.ood.threshold, "rule": "out of distribution (do not grade) when ood_score < threshold"}
                if checkpoint.ood is not None and "ood_score" in outputs else None
            ),
            preprocessing={
                "geometric": {"mode": spec.mode, "size": size, "crop_tolerance": spec.crop_tolerance, "interpolation": "bicubic",
                              "steps": _geometric_steps(spec.mode, size)},
                "photometric": {"in_graph": True, "spec": spec.to_dict(), "description": "inside every artifact; apps must not repeat it"},
            },
            input=image_spec,
            outputs=output_specs,
            artifacts=artifacts,
            failures=failures,
            files=files,
            golden={
                "vectors": golden.VECTORS, "geometric": golden.GEOMETRIC, "count": len(inputs),
                **({"bundled_program": bundled} if bundled else {}),
                "tolerances": {"geometric_max_abs_difference": golden.GEOMETRIC_TOLERANCE},
            },
            source={"checkpoint": str(Path(options.checkpoint).resolve()), "sha256": file_sha256(options.checkpoint),
                    "epoch": checkpoint.epoch, "score": checkpoint.score, "metric": checkpoint.metric},
            libraries=library_versions(LIBRARIES),
        )
        manifest.save(staging)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest, out


def verify_bundle(bundle: str | Path) -> list[str]:
    """Problems found (empty: the bundle is intact): schema, every listed file present with its size and
    sha256, and no unlisted files."""
    bundle = Path(bundle)
    manifest = Manifest.load(bundle)  # raises on a missing or invalid manifest
    problems = []
    listed = [(a["file"], a["sha256"], a["size_bytes"]) for a in manifest.artifacts] + [(f["file"], f["sha256"], f["size_bytes"]) for f in manifest.files]
    for file, sha, nbytes in listed:
        path = bundle / file
        if not path.exists():
            problems.append(f"{file}: missing")
            continue
        actual, actual_bytes = tree_sha256(path)
        if actual != sha:
            what = f"size {actual_bytes} bytes, manifest says {nbytes}" if actual_bytes != nbytes else "content changed"
            problems.append(f"{file}: sha256 mismatch ({what})")
    known = {file for file, _, _ in listed}
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel != MANIFEST and not any(rel == k or rel.startswith(k + "/") for k in known) and not rel.startswith(UNLISTED_OK):
            problems.append(f"{rel}: not listed in the manifest")
    return problems

