"""Desktop latency per runtime for the ``thesis-dr`` (512 px) and ``oct-kermany`` (224 px) android bundles.

    python benchmarks/runtime_latency.py [--models thesis-dr,oct-kermany] [--threads 1,2] [--iters 50] [--warmup 10]

Untrained weights (latency does not depend on training; the checkpoints of ``export_times.py``), the
android target exported with two workers, then ``mobiledr bench`` (every artifact, the XNNPACK
programs again on the native runner, and the PyTorch eager baseline, each measurement in its own
process; the native runner is built first). In the same run a bare MobileNetV3-Large (features,
average pool, linear classifier: no photometric stage, CBAM, heatmap or OOD score) is lowered to fp32
and int8 XNNPACK programs at the same input size and timed on the native runner, so the bundle's cost
over what the toolchain manages for the backbone alone is a ratio measured on one machine in one run.
Writes ``benchmarks/results/bench_<model>.{json,csv,md,png}`` and ``benchmarks/results/runtime_latency.{json,md}``
with the headline ratios and the CPU's SIMD flags (they decide what int8 can gain).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from export_times import make_checkpoint

from mobiledr.bench.desktop import BenchOptions, run_desktop
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.native import build_native, parse_runner_output, runner_args, runner_command
from mobiledr.bench.report import write_results
from mobiledr.bench.results import write_result
from mobiledr.export.bundle import ExportOptions, export_bundle
from mobiledr.export.formats import select_formats
from mobiledr.models.config import get_preset

RESULTS = Path(__file__).parent / "results"
HEADLINE = {  # column -> (artifact, runtime)
    "int8 .pte": ("model.xnnpack-int8.pte", "executorch"), "int8 .pte native": ("model.xnnpack-int8.pte", "native"),
    "fp32 .pte": ("model.xnnpack-fp32.pte", "executorch"), "fp32 .pte native": ("model.xnnpack-fp32.pte", "native"),
    "ORT int8": ("model.int8.onnx", "onnxruntime"), "ORT int8 .ort": ("model.int8.ort", "onnxruntime-mobile"), "eager": ("pytorch", "pytorch"),
}  # fmt: skip
RATIOS = ("fp32 .pte", "ORT int8", "eager")  # the int8 .pte (Python runtime) against these
BARE = ("bare int8 native", "bare fp32 native")  # a bare MobileNetV3-Large on the native runner, same run
TARGETS = {  # acceptance ratios, one thread
    "int8 .pte native / ORT int8": ("<=", 0.7),
    "int8 .pte native / bare int8 native": ("<=", 1.3),
    "bundle int8/fp32 over bare int8/fp32": ("<=", 1.1),
}


def ratios(row: dict[str, float]) -> dict[str, float]:
    """The acceptance ratios of one row (those whose inputs were measured)."""
    out = {}
    if "int8 .pte native" in row and "ORT int8" in row:
        out["int8 .pte native / ORT int8"] = row["int8 .pte native"] / row["ORT int8"]
    if "int8 .pte native" in row and "bare int8 native" in row:
        out["int8 .pte native / bare int8 native"] = row["int8 .pte native"] / row["bare int8 native"]
    if all(k in row for k in ("int8 .pte native", "fp32 .pte native", "bare int8 native", "bare fp32 native")):
        out["bundle int8/fp32 over bare int8/fp32"] = (row["int8 .pte native"] / row["fp32 .pte native"]) / (row["bare int8 native"] / row["bare fp32 native"])
    return out


def headline(report: dict, threads: int) -> dict[str, float]:
    """p50 latency (ms) of the rows the README compares, at ``threads``."""
    p50 = {(r["artifact"], r["runtime"]): r["latency_ms"]["p50"] for r in report["rows"] if r["status"] == "ok" and r["threads"] == threads}
    return {name: p50[key] for name, key in HEADLINE.items() if key in p50}


def bare_programs(size: int, work: Path) -> dict[str, Path]:
    """A bare MobileNetV3-Large classifier lowered to XNNPACK fp32 and int8 (PT2E, per-channel weights,
    calibrated on 8 random normalised images) at ``size``."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from mobiledr.models.mobilenetv3 import build_features

    torch.manual_seed(0)
    features = build_features("large")
    model = torch.nn.Sequential(features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(features.out_channels, 2)).eval()
    example = (torch.randn(1, 3, size, size),)
    paths = {}
    with torch.no_grad():
        prepared = prepare_pt2e(torch.export.export(model, example).module(), XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True)))
        for _ in range(8):
            prepared(torch.randn(1, 3, size, size))
        variants = {"fp32": model, "int8": convert_pt2e(prepared)}
        for name, module in variants.items():
            program = to_edge_transform_and_lower(torch.export.export(module, example), partitioner=[XnnpackPartitioner()]).to_executorch()
            paths[name] = work / f"bare-mobilenetv3-large-{name}.pte"
            paths[name].write_bytes(program.buffer)
    return paths


def native_p50(runner: Path, program: Path, size: int, work: Path, threads: int, warmup: int, iters: int) -> float | None:
    """p50 ms of ``program`` on the native runner (one process), or None when it fails."""
    inputs = work / f"input-{size}.npy"
    if not inputs.exists():
        np.save(inputs, (np.random.default_rng(0).random((1, 3, size, size)) * 255).astype(np.float32))
    command = [*runner_command(runner), *runner_args(str(program), inputs=str(inputs), threads=threads, warmup=warmup, iters=iters)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    if row["status"] != "ok":
        print(f"{program.name}: {row['error']}")
        return None
    return float(row["latency_ms"]["p50"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="thesis-dr,oct-kermany")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    runner = build_native()
    summary = []
    for preset in args.models.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"mobiledr-bench-{preset}-"))
        try:
            checkpoint = make_checkpoint(preset, work)
            export_bundle(ExportOptions(checkpoint, work / "bundle", select_formats("android", None), "android", jobs=2))
            report = run_desktop(BenchOptions(work / "bundle", None, threads, args.warmup, args.iters), lambda r: print(r["artifact"], r["threads"], r.get("latency_ms", {}).get("p50")))
            write_results(report, RESULTS, f"bench_{preset}")
            size = get_preset(preset).input_size
            bare = bare_programs(size, work)
            for t in threads:
                row = {"model": preset, "threads": t, **headline(report, t)}
                for name, path in bare.items():
                    if (p50 := native_p50(runner, path, size, work, t, args.warmup, args.iters)) is not None:
                        row[f"bare {name} native"] = p50
                summary.append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    machine = machine_facts()
    columns = [*HEADLINE, *BARE]
    lines = ["# Desktop latency per runtime (p50 ms, one image per inference)", "",
             f"Machine: {machine['cpu']} ({machine['cores']} cores), SIMD: {' '.join(machine['cpu_flags']) or 'unknown'}; governor {machine['governor']}; "
             f"{args.warmup} warm-up, {args.iters} timed; one process per measurement. Full tables and charts: `bench_<model>.md`.", "",
             "| model | threads | " + " | ".join(columns) + " | " + " | ".join(f"int8 .pte / {k}" for k in RATIOS) + " |",
             "|---|---|" + "---|" * (len(columns) + len(RATIOS))]  # fmt: skip
    for row in summary:
        ratio = [f"{row['int8 .pte'] / row[k]:.2f}x" if k in row and "int8 .pte" in row else "-" for k in RATIOS]
        lines.append(f"| {row['model']} | {row['threads']} | " + " | ".join(f"{row[k]:.2f}" if k in row else "-" for k in columns) + " | " + " | ".join(ratio) + " |")
    lines += ["", "Acceptance ratios (one thread; native = the C++ runner over the ExecuTorch Module API):", "",
              "| model | " + " | ".join(f"{name} ({op} {limit})" for name, (op, limit) in TARGETS.items()) + " |", "|---|" + "---|" * len(TARGETS)]
    for row in summary:
        if row["threads"] == 1:
            measured = ratios(row)
            row["ratios"] = measured
            cells = [f"{measured[name]:.2f}x {'ok' if measured[name] <= limit else 'MISSED'}" if name in measured else "-" for name, (_, limit) in TARGETS.items()]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    write_result(RESULTS, "runtime_latency", {"machine": machine, "rows": summary, "targets": {k: list(v) for k, v in TARGETS.items()}}, lines)


if __name__ == "__main__":
    main()
