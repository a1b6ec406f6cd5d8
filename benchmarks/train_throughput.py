"""Training throughput (images/s) on this machine's CPU, and whether data loading keeps up.

    python benchmarks/train_throughput.py [--steps 6] [--batch 8]

For the thesis presets (MobileNetV3-Large and -Small + CBAM at 512 px), each full training step
(photometric stage, forward, backward, Adam) is timed twice: fed by the real loader (PNG cache,
augmentation, DataLoader workers) and fed from one batch already in memory. Similar numbers mean
the loader is not the bottleneck. Writes ``benchmarks/results/train_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.cache import prepare
from mobiledr.data.labels import get_scheme
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import make_splits
from mobiledr.data.synth import make_dataset
from mobiledr.train.config import load_train_config
from mobiledr.train.loop import Trainer, init_runtime

RESULTS = Path(__file__).parent / "results"


def images_per_second(trainer: Trainer, batches: list[tuple[torch.Tensor, torch.Tensor]] | None, steps: int, warmup: int = 2) -> float:
    """Steps fed by the trainer's loader (``batches`` None) or by the given in-memory batches."""
    source = iter(trainer.loader(trainer.train_set, shuffle=True)[0]) if batches is None else iter(batches * (steps + warmup))
    for _ in range(warmup):
        trainer.train_step(*next(source))
    seen, start = 0, time.perf_counter()
    for _ in range(steps):
        images, labels = next(source)
        trainer.train_step(images, labels)
        seen += len(labels)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mobiledr-throughput-"))
    n = args.batch * (args.steps + 3) * 2
    make_dataset(work / "data", n=n, size=512, seed=3)
    cache = prepare(work / "data", "aptos", PreprocessSpec(size=512), work / "cache", workers=2).cache
    splits, _ = make_splits(cache, get_scheme("any-dr"), val=0.1, test=0.1, seed=0)
    splits.write(work / "splits.csv")
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for preset in ("thesis-dr-small", "thesis-dr"):
        config = load_train_config(preset, overrides=[f"batch_size={args.batch}", f"workers={args.workers}", "freeze_epochs=0"])
        trainer = Trainer(config, work / "cache", work / "splits.csv", work / f"run-{preset}", init_runtime())
        trainer.enter_stage(2)
        trainer.model.train()
        loaded = images_per_second(trainer, None, args.steps)
        batch = next(iter(trainer.loader(trainer.train_set, shuffle=False)[0]))
        memory = images_per_second(trainer, [batch], args.steps)
        rows.append({"preset": preset, "arch": config.model.arch, "input": 512, "batch": args.batch, "loader_images_per_s": round(loaded, 2), "in_memory_images_per_s": round(memory, 2), "loader_share": round(loaded / memory, 3)})
        print(rows[-1])
    result = {"steps": args.steps, "workers": args.workers, "precision": "fp32 (no AMP on CPU)", "rows": rows, "machine": machine_facts()}
    lines = [
        f"# Training throughput on the CPU (full step: photometric, forward, backward, Adam; batch {args.batch}, fp32)",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, torch {result['machine']['torch']}, load {result['machine']['load_average_1min']}",
        "",
        f"| preset | arch | input | real loader ({args.workers} workers) img/s | in-memory img/s | loader / in-memory |",
        "|---|---|---|---|---|---|",
        *[f"| {r['preset']} | {r['arch']} | {r['input']} | {r['loader_images_per_s']} | {r['in_memory_images_per_s']} | {r['loader_share']:.0%} |" for r in rows],
        "",
        "No CUDA GPU was available to this session, so AMP fp16 and multi-GPU DDP throughput are not measured here;",
        "DDP itself is exercised on CPU with the gloo backend in tests/test_train.py.",
    ]
    write_result(RESULTS, "train_throughput", result, lines)


if __name__ == "__main__":
    main()
