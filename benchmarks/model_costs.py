"""Parameters, MACs and PyTorch eager CPU latency of every model preset (and each arch at 224).

    python benchmarks/model_costs.py [--iters 20] [--threads 2]

Writes ``benchmarks/results/model_costs.{json,md}`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from mobiledr import __version__
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.models import PRESETS, ModelConfig, build_model
from mobiledr.models.summary import summarize

RESULTS = Path(__file__).parent / "results"


def latency_ms(model: torch.nn.Module, size: int, iters: int, warmup: int = 3) -> list[float]:
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = list(PRESETS.values()) + [ModelConfig(name=f"{a}-224", arch=a, input_size=224) for a in ("large", "small")]
    rows = []
    for config in configs:
        model = build_model(config).eval()
        summary = summarize(model)
        times = sorted(latency_ms(model, config.input_size, args.iters))
        rows.append(
            {
                "config": config.name,
                "arch": config.arch,
                "input_size": config.input_size,
                "params": summary.trainable_params,
                "macs": summary.macs,
                "fp32_mib": round(summary.fp32_bytes / 2**20, 2),
                "latency_ms_p50": round(statistics.median(times), 2),
                "latency_ms_p90": round(times[int(0.9 * (len(times) - 1))], 2),
                "latency_ms_min": round(times[0], 2),
            }
        )
        print(rows[-1])
    report = {"mobiledr": __version__, "runtime": "pytorch-eager fp32, batch 1", "threads": args.threads, "iters": args.iters, "machine": machine_facts(), "rows": rows}
    lines = [
        f"# Model costs (PyTorch eager fp32, batch 1, {args.threads} threads, {args.iters} iterations)",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, torch {report['machine']['torch']}",
        "",
        "| config | arch | input | params | MACs | fp32 MiB | p50 ms | p90 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['config']} | {r['arch']} | {r['input_size']} | {r['params']:,} | {r['macs'] / 1e6:,.1f} M | {r['fp32_mib']} | {r['latency_ms_p50']} | {r['latency_ms_p90']} |"
        for r in rows
    ]
    write_result(RESULTS, "model_costs", report, lines)


if __name__ == "__main__":
    main()
