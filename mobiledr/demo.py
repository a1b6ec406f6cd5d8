"""``mobiledr demo``: the whole pipeline on generated data, as the commands a user would type, each
run through the command line itself; then one HTML report over everything they wrote.

OUT/ data/ cache/ splits.csv contact_sheet.png run/ (best.pt, curves.png, eval-test/, explain/)
     bundle/android/ bundle/ios/ (each with parity/; android with bench/) timings.json report.html
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mobiledr.errors import GateFailed, MobiledrError
from mobiledr.io import atomic_write_json


@dataclass(frozen=True)
class Settings:
    """How much work each stage does."""

    images: int  # synthetic photographs (two per fake patient)
    frame: int  # their height in pixels (prepared to the model size)
    epochs: int
    explain: int  # photographs explained
    parity_images: int  # synthetic held-out photographs for parity
    bootstrap: int  # parity's bootstrap resamples
    bench_iters: int
    calibration: int  # int8 calibration images
    android: str = ""  # --formats for the android bundle ("": the whole target)
    ios: str = ""


SETTINGS = {
    "default": Settings(800, 256, 15, 4, 200, 500, 30, 32),
    # Lowering a .pte takes about a minute per precision on 2 cores: --fast keeps one of each runtime.
    "fast": Settings(240, 192, 6, 2, 40, 100, 5, 8, android="pte-xnnpack-fp32,onnx-int8", ios="coreml-fp16"),
}


@dataclass
class Stage:
    name: str
    what: str
    commands: list[list[str]]
    optional: bool = False  # a failure is reported and the demo goes on (nothing later needs it)


def stages(out: Path, settings: Settings, preset: str) -> list[Stage]:
    """The demo's stages: the same commands a user runs, with their arguments."""
    from mobiledr.train.config import load_train_config

    config = load_train_config(preset)
    size, scheme = str(config.preprocess.size), config.scheme
    data, cache, splits, run = out / "data", out / "cache", out / "splits.csv", out / "run"
    best, android, ios = run / "best.pt", out / "bundle" / "android", out / "bundle" / "ios"
    sample = sorted((data / "train_images").glob("*.png"))[: settings.explain] if (data / "train_images").is_dir() else []
    quick = ["--threads", "1", "--warmup", "2", "--iters", str(settings.bench_iters)]
    return [
        Stage("data", "synthetic fundus photographs with DR grades and patients; geometric stage cache; patient-level splits; contact sheet", [
            ["data", "synth", "--out", str(data), "--n", str(settings.images), "--size", str(settings.frame), "--seed", "0"],
            ["data", "prepare", str(data), "--dataset", "aptos", "--size", size, "--out", str(cache)],
            ["data", "split", str(cache), "--scheme", scheme, "--out", str(splits)],
            ["data", "inspect", str(data), "--dataset", "aptos", "--splits", str(splits), "--sheet", str(out / "contact_sheet.png")],
        ]),
        Stage("train", f"MobileNetV3 + CBAM ({preset} preset) on the CPU; calibration, threshold and OOD gate fitted on validation", [
            ["train", "--preset", preset, "--data", str(cache), "--splits", str(splits), "--out", str(run), "--set", f"epochs={settings.epochs}"],
        ]),
        Stage("evaluate", "clinical report on the test split: sensitivity and specificity with 95% CIs, ROC, calibration", [
            ["evaluate", str(best), "--split", "test", "--out", str(run / "eval-test")],
        ]),
        Stage("explain", "saliency, Grad-CAM and the exported heatmap on a few photographs", [
            ["explain", str(best), *map(str, sample), "--out", str(run / "explain")],
        ], optional=True),
        Stage("export", "android bundle (ExecuTorch XNNPACK fp32/int8, ONNX Runtime) and ios bundle (Core ML, ExecuTorch Core ML)", [
            ["export", str(best), *(["--formats", settings.android] if settings.android else ["--target", "android"]), "--out", str(android),
             "--calibration-samples", str(settings.calibration)],
            ["export", str(best), *(["--formats", settings.ios] if settings.ios else ["--target", "ios"]), "--out", str(ios),
             "--calibration-samples", str(settings.calibration)],
        ]),
        Stage("parity", "every artifact against the PyTorch reference on held-out synthetic photographs; the android artifacts' clinical report on the test split", [
            *(["parity", str(bundle), "--synthetic", str(settings.parity_images), "--bootstrap", str(settings.bootstrap)] for bundle in (android, ios)),
            ["evaluate", str(android), "--split", "test", "--bootstrap", str(settings.bootstrap)],
        ]),
        Stage("bench", "latency, load time and memory per runtime on this machine (native runner built first)", [
            ["bench", str(android), "--build-native", *quick],
        ]),
    ]  # fmt: skip


def run_command(args: list[str]) -> int:
    """One ``mobiledr`` command through the command line itself; its exit code."""
    from mobiledr.cli import app

    try:
        code = app(args, standalone_mode=False)
    except SystemExit as exc:  # sys.exit inside a command
        return int(exc.code or 0)
    return int(code or 0)


def run_demo(out: Path, show: Callable[[str], None], preset: str = "demo", fast: bool = False) -> dict:
    """Every stage in order; a required stage that fails stops the demo (what was written is kept and
    the report still made). Returns the timings document (also OUT/timings.json)."""
    settings = SETTINGS["fast" if fast else "default"]
    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {"preset": preset, "fast": fast, "settings": settings.__dict__, "stages": []}
    began = time.perf_counter()
    count = len(stages(out, settings, preset))
    for index in range(count):
        stage = stages(out, settings, preset)[index]  # rebuilt: later stages list files earlier ones wrote
        show(f"[bold cyan][{index + 1}/{count}] {stage.name}[/]: {stage.what}")
        start, problem, verdicts = time.perf_counter(), None, []
        for args in stage.commands:
            show(f"[dim]$ mobiledr {shlex.join(args)}[/]")
            try:
                code = run_command(args)
            except GateFailed as exc:  # a verdict (parity FAIL, a failed measurement): in the report, not fatal
                verdicts.append(str(exc))
                continue
            except MobiledrError as exc:
                problem = str(exc)
                break
            if code != 0:
                problem = f"mobiledr {args[0]} exited with code {code}"
                break
        record = {"name": stage.name, "seconds": round(time.perf_counter() - start, 1)}
        timings["stages"].append(record | ({"error": problem} if problem else {}) | ({"verdicts": verdicts} if verdicts else {}))
        timings["total_seconds"] = round(time.perf_counter() - began, 1)
        atomic_write_json(out / "timings.json", timings)
        if problem:
            show(f"[red]{stage.name} failed: {problem}[/]")
            if not stage.optional:
                break
    from mobiledr.demo_report import write_report

    report = write_report(out)
    show(f"report: {report}")
    return timings
