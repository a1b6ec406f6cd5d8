"""Desktop latency per runtime for the ``thesis-dr`` (512 px) and ``oct-kermany`` (224 px) android bundles.

    python benchmarks/runtime_latency.py [--models thesis-dr,oct-kermany] [--threads 1,2] [--iters 50] [--warmup 10]

Untrained weights (latency does not depend on training; the checkpoints of ``export_times.py``), the
android target exported with two workers, then ``mobiledr bench`` (every artifact, the XNNPACK
programs again on the native runner, and the PyTorch eager baseline, each measurement in its own
process; the native runner is built first). Writes ``benchmarks/results/bench_<model>.{json,csv,md,png}``
and ``benchmarks/results/runtime_latency.{json,md}`` with the headline ratios.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from export_times import make_checkpoint

from mobiledr.bench.desktop import BenchOptions, run_desktop
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.native import build_native
from mobiledr.bench.report import write_results
from mobiledr.bench.results import write_result
from mobiledr.export.bundle import ExportOptions, export_bundle
from mobiledr.export.formats import select_formats

RESULTS = Path(__file__).parent / "results"
HEADLINE = {  # column -> (artifact, runtime)
    "int8 .pte": ("model.xnnpack-int8.pte", "executorch"), "int8 .pte native": ("model.xnnpack-int8.pte", "native"),
    "fp32 .pte": ("model.xnnpack-fp32.pte", "executorch"), "fp32 .pte native": ("model.xnnpack-fp32.pte", "native"),
    "ORT int8": ("model.int8.onnx", "onnxruntime"), "ORT int8 .ort": ("model.int8.ort", "onnxruntime-mobile"), "eager": ("pytorch", "pytorch"),
}  # fmt: skip
RATIOS = ("fp32 .pte", "ORT int8", "eager")  # the int8 .pte (Python runtime) against these


def headline(report: dict, threads: int) -> dict[str, float]:
    """p50 latency (ms) of the rows the README compares, at ``threads``."""
    p50 = {(r["artifact"], r["runtime"]): r["latency_ms"]["p50"] for r in report["rows"] if r["status"] == "ok" and r["threads"] == threads}
    return {name: p50[key] for name, key in HEADLINE.items() if key in p50}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="thesis-dr,oct-kermany")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    build_native()
    summary = []
    for preset in args.models.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"mobiledr-bench-{preset}-"))
        try:
            checkpoint = make_checkpoint(preset, work)
            export_bundle(ExportOptions(checkpoint, work / "bundle", select_formats("android", None), "android", jobs=2))
            report = run_desktop(BenchOptions(work / "bundle", None, threads, args.warmup, args.iters), lambda r: print(r["artifact"], r["threads"], r.get("latency_ms", {}).get("p50")))
            write_results(report, RESULTS, f"bench_{preset}")
            for t in threads:
                summary.append({"model": preset, "threads": t, **headline(report, t)})
        finally:
            shutil.rmtree(work, ignore_errors=True)
    machine = machine_facts()
    lines = ["# Desktop latency per runtime (p50 ms, one image per inference)", "",
             f"Machine: {machine['cpu']} ({machine['cores']} cores), governor {machine['governor']}; {args.warmup} warm-up, {args.iters} timed; "
             "one process per measurement. Full tables and charts: `bench_<model>.md`.", "",
             "| model | threads | " + " | ".join(HEADLINE) + " | " + " | ".join(f"int8 .pte / {k}" for k in RATIOS) + " |",
             "|---|---|" + "---|" * (len(HEADLINE) + len(RATIOS))]  # fmt: skip
    for row in summary:
        ratio = [f"{row['int8 .pte'] / row[k]:.2f}x" if k in row and "int8 .pte" in row else "-" for k in RATIOS]
        lines.append(f"| {row['model']} | {row['threads']} | " + " | ".join(f"{row[k]:.2f}" if k in row else "-" for k in HEADLINE) + " | " + " | ".join(ratio) + " |")
    write_result(RESULTS, "runtime_latency", {"machine": machine, "rows": summary}, lines)


if __name__ == "__main__":
    main()
