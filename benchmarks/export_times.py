"""``mobiledr export`` wall time per format and artifact sizes for ``thesis-dr`` (512) and ``oct-kermany`` (224).

    python benchmarks/export_times.py [--targets android,ios] [--models thesis-dr,oct-kermany] [--jobs 2] [--name export_times]

Untrained weights (export time and size do not depend on training) with OOD statistics of the real shapes,
calibrated on 32 synthetic images prepared at the model size (the OCT model's through its resize-only geometric stage). Writes ``benchmarks/results/export_times.{json,md}``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.cache import prepare
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.synth import make_dataset
from mobiledr.export.bundle import ExportOptions, export_bundle
from mobiledr.export.formats import select_formats
from mobiledr.models import build_model, get_preset
from mobiledr.train.checkpoint import Checkpoint, provenance
from mobiledr.train.ood import fit_ood

RESULTS = Path(__file__).parent / "results"


def make_checkpoint(preset: str, work: Path) -> Path:
    config = get_preset(preset)
    spec = PreprocessSpec.for_oct(config.input_size) if preset == "oct-kermany" else PreprocessSpec(size=config.input_size)
    make_dataset(work / "data", n=40, size=max(256, config.input_size), seed=0)
    cache = prepare(work / "data", "aptos", spec, work / "cache", workers=2).cache  # OCT: the geometric stage is a resize
    torch.manual_seed(0)
    model = build_model(config).eval()
    channels = model.features.out_channels
    features = torch.randn(4 * channels, channels)
    ood = fit_ood(features, torch.arange(len(features)) % config.num_classes, config.num_classes, features, accept=0.95)
    labels = [f"class{i}" for i in range(config.num_classes)]
    checkpoint = Checkpoint(
        config, spec, labels, "benchmark", model.state_dict(),
        threshold=0.5 if config.num_classes == 2 else None, ood=ood, provenance=provenance(cache=cache.root),
    )
    path = work / "best.pt"
    checkpoint.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="android,ios")
    parser.add_argument("--models", default="thesis-dr,oct-kermany")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--name", default="export_times", help="result file name under benchmarks/results/")
    args = parser.parse_args()
    rows = []
    for preset in args.models.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"mobiledr-export-bench-{preset}-"))
        try:
            checkpoint = make_checkpoint(preset, work)
            for target in args.targets.split(","):
                start = time.perf_counter()
                options = ExportOptions(checkpoint, work / target, select_formats(target, None), target, jobs=args.jobs)
                manifest, _ = export_bundle(options)
                total = time.perf_counter() - start
                for artifact in manifest.artifacts:
                    rows.append({"model": preset, "target": target, "file": artifact["file"], "precision": artifact["precision"],
                                 "export_seconds": artifact["export_seconds"], "size_bytes": artifact["size_bytes"]})
                rows.append({"model": preset, "target": target, "file": "(whole target)", "precision": "", "export_seconds": round(total, 1), "size_bytes": 0})
                print(f"{preset} {target}: {total:.1f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    machine = machine_facts()
    lines = [
        "# Export wall time and artifact sizes",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), torch {torch.__version__}; {args.jobs} worker processes.",
        "Per-format seconds are measured inside the worker (formats of one worker run one after another; two workers run in parallel);",
        "'(whole target)' is the wall time of the command's work (golden vectors, calibration, all formats, hashing).",
        "",
        "| model | target | file | precision | export s | size MB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = f"{row['size_bytes'] / 1e6:.2f}" if row["size_bytes"] else ""
        lines.append(f"| {row['model']} | {row['target']} | {row['file']} | {row['precision']} | {row['export_seconds']:.1f} | {size} |")
    write_result(RESULTS, args.name, {"machine": machine, "jobs": args.jobs, "rows": rows}, lines)


if __name__ == "__main__":
    main()
