"""The whole training stage on synthetic fundus data, on the CPU: does it reach validation AUC >= 0.9?

    python benchmarks/synth_training.py [--n 400] [--epochs 10]

Generates a data set, prepares a 128 px cache, splits it by patient, trains the ``demo`` preset
(MobileNetV3-Small + CBAM, linear head) from scratch, and records the per-epoch log, the best
validation AUC, the calibration and the wall time in ``benchmarks/results/synth_training.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.cache import prepare
from mobiledr.data.labels import get_scheme
from mobiledr.data.spec import PreprocessSpec
from mobiledr.data.splits import make_splits
from mobiledr.data.synth import make_dataset
from mobiledr.train.checkpoint import Checkpoint
from mobiledr.train.config import load_train_config
from mobiledr.train.loop import train

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="model input / cache size")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra training overrides, key=value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(tempfile.mkdtemp(prefix="mobiledr-train-bench-"))
    timings = {}
    start = time.perf_counter()
    make_dataset(work / "data", n=args.n, size=256, seed=11)
    timings["synthesise_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    cache = prepare(work / "data", "aptos", PreprocessSpec(size=args.size), work / "cache", workers=2).cache
    timings["prepare_s"] = round(time.perf_counter() - start, 1)
    splits, _ = make_splits(cache, get_scheme("any-dr"), val=0.2, test=0.2, seed=0)
    splits.write(work / "splits.csv")
    sizes = [f"model.input_size={args.size}", f"preprocess.size={args.size}"]
    config = load_train_config("demo", overrides=[*sizes, f"epochs={args.epochs}", f"workers={args.workers}", *args.overrides])
    start = time.perf_counter()
    best = train(config, work / "cache", work / "splits.csv", work / "run")
    timings["train_s"] = round(time.perf_counter() - start, 1)
    checkpoint = Checkpoint.load(best)
    history = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    counts = {name: len(splits.rows_of(name)) for name in ("train", "val", "test")}
    result = {
        "images": args.n,
        "split_images": counts,
        "config": {"preset": "demo", "overrides": [*sizes, *args.overrides], "epochs": args.epochs, "arch": config.model.arch, "batch_size": config.batch_size, "lr": config.lr},
        "best_epoch": checkpoint.epoch,
        "best_val_auc": round(checkpoint.score, 4),
        "temperature": round(checkpoint.temperature, 3),
        "threshold": round(checkpoint.threshold, 4),
        "history": history,
        "timings": timings,
        "machine": machine_facts(),
    }
    lines = [
        f"# Training on synthetic fundus data (CPU, `demo` preset: MobileNetV3-Small + CBAM, {args.size} px, {args.epochs} epochs)",
        "",
        f"Command: `python benchmarks/synth_training.py --n {args.n} --epochs {args.epochs} --size {args.size}"
        + "".join(f" --set {o}" for o in args.overrides) + "`",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, torch {result['machine']['torch']}",
        "",
        f"- Data: {args.n} images, split by patient: {counts}",
        f"- Best validation AUC **{result['best_val_auc']}** at epoch {checkpoint.epoch}; temperature {result['temperature']}, "
        f"operating threshold {result['threshold']} (90% sensitivity on validation)",
        f"- Wall time: synthesise {timings['synthesise_s']} s, prepare {timings['prepare_s']} s, train {timings['train_s']} s",
        "",
        "| epoch | stage | lr | train loss | val loss | val AUC | img/s |",
        "|---|---|---|---|---|---|---|",
        *[f"| {h['epoch']} | {h['stage']} | {h['lr']:.2g} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {h['val_score']:.4f} | {h['images_per_s']} |" for h in history],
    ]
    write_result(RESULTS, "synth_training", result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
