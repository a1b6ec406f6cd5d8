"""ARM64 against x86: the XNNPACK fp32 and int8 programs of a bundle through the native runner built
for this machine and cross-built for linux-aarch64, the latter run under qemu-aarch64-static.

    make demo native-arm64                      # out/demo/bundle/android, build/native/linux-aarch64/
    python benchmarks/arm64_parity.py [--bundle out/demo/bundle/android] [--n 40] [--seed 2026] [--name arm64_parity]

Inputs: the bundle's golden vectors and ``--n`` synthetic photographs (their own seed) through the
geometric stage. Per program and output: the largest |ARM64 - x86| and the decision agreement, for
qemu's default CPU here (``mobiledr.bench.native.QEMU_CPU``: Armv9-A features without SME) and for
qemu's ``max`` CPU (with SME); the BundledProgram self-check on ARM64 with the manifest's per-output
limits; the golden vectors against the PyTorch reference. Writes ``benchmarks/results/<name>.{json,md}``.
Emulated timings are not measured: they say nothing about a phone.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.native import ARM64_TRIPLE, QEMU_CPU, artifact_args, build_native, parse_runner_output, runner_command
from mobiledr.data.spec import PreprocessSpec
from mobiledr.export.manifest import Manifest
from mobiledr.io import atomic_write_json, atomic_write_text
from mobiledr.parity.inputs import synthetic
from mobiledr.runners.native import NativeRunner

RESULTS = Path(__file__).parent / "results"
CPUS = {"default": QEMU_CPU, "max (with SME)": "max"}


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].strip() if done.returncode == 0 else "unknown"


def _outputs(bundle: Path, manifest: Manifest, entry: dict, images: np.ndarray, abi: str, cpu: str | None = None) -> dict[str, np.ndarray]:
    previous = os.environ.get("QEMU_CPU")
    if cpu is not None:
        os.environ["QEMU_CPU"] = cpu
    try:
        runner = NativeRunner(bundle / entry["file"], tuple(manifest.output_names), threads=1, abi=abi)
        runner.load()
        return runner.run(images)
    finally:
        if previous is None:
            os.environ.pop("QEMU_CPU", None)
        else:
            os.environ["QEMU_CPU"] = previous


def _decisions(manifest: Manifest, probs: np.ndarray) -> np.ndarray:
    decision = manifest.decision
    if decision.get("threshold") is not None:
        return probs[:, decision["positive_index"]] >= decision["threshold"]
    return probs.argmax(axis=1)


def _self_check(bundle: Path, manifest: Manifest, entry: dict, binary: Path) -> dict | None:
    if "bundled_program" not in entry["extras"]:
        return None
    args = artifact_args(entry, str(bundle), "", output_names=manifest.output_names, threads=1, warmup=0, iters=1, min_time=0)
    args = [a for i, a in enumerate(args) if not (a == "--inputs" or (i and args[i - 1] == "--inputs"))]
    done = subprocess.run([*runner_command(binary), *args], capture_output=True, text=True, timeout=600, check=False)
    row = parse_runner_output(done.returncode, done.stdout, done.stderr)
    return row.get("checks", {}).get("bundled_program", {"status": "failed", "detail": row.get("error", "")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("out/demo/bundle/android"))
    parser.add_argument("--n", type=int, default=40, help="synthetic photographs besides the golden vectors")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the photographs")
    parser.add_argument("--name", default="arm64_parity", help="result file name under benchmarks/results/")
    parser.add_argument("--note", default="", help="how the bundle was made, for the report")
    args = parser.parse_args()
    start = time.perf_counter()
    manifest = Manifest.load(args.bundle)
    host, arm = build_native(), build_native("arm64")
    with np.load(args.bundle / manifest.golden["vectors"]) as vectors:
        golden = {name: vectors[name] for name in vectors.files}
    spec = PreprocessSpec.from_dict(manifest.preprocessing["photometric"]["spec"])
    images = np.concatenate([golden["image"], synthetic(args.n, spec, manifest.label_scheme, args.seed).images]).astype(np.float32)
    count = len(golden["image"])
    programs = []
    for entry in [a for a in manifest.artifacts if a["kind"] == "pte" and a["backend"] == "xnnpack"]:
        x86 = _outputs(args.bundle, manifest, entry, images, "host")
        program = {"artifact": entry["file"], "precision": entry["precision"], "cpus": {}, "self_check_arm64": _self_check(args.bundle, manifest, entry, arm),
                   "self_check_x86": _self_check(args.bundle, manifest, entry, host), "golden_vs_reference": {}}  # fmt: skip
        if manifest.decision.get("threshold") is not None:  # decisions this close to the threshold flip on float32 noise
            margin = np.abs(x86["probs"][:, manifest.decision["positive_index"]] - manifest.decision["threshold"])
            program["near_threshold"] = {"within": 1e-4, "fraction": float(np.mean(margin < 1e-4))}
        for label, cpu in CPUS.items():
            out = _outputs(args.bundle, manifest, entry, images, "arm64", cpu)
            program["cpus"][label] = {
                "qemu_cpu": cpu,
                "max_abs_difference": {name: float(np.abs(out[name] - x86[name]).max()) for name in manifest.output_names},
                "decision_agreement": float(np.mean(_decisions(manifest, out["probs"]) == _decisions(manifest, x86["probs"]))),
            }
            if label == "default":
                program["golden_vs_reference"] = {
                    name: {"arm64": float(np.abs(out[name][:count] - golden[name]).max()), "x86": float(np.abs(x86[name][:count] - golden[name]).max())}
                    for name in manifest.output_names if name in golden
                }  # fmt: skip
        program["output_scale"] = {name: float(np.abs(x86[name]).max()) for name in manifest.output_names}
        programs.append(program)
    report = {
        "bundle": str(args.bundle.resolve()), "model": manifest.model["name"], "input_size": manifest.model["input_size"],
        "executorch": manifest.libraries.get("executorch"), "images": {"golden": count, "synthetic": args.n, "seed": args.seed},
        "x86": {**machine_facts(), "runner": str(host)},
        "arm64": {"runner": str(arm), "emulator": _version(["qemu-aarch64-static", "--version"]), "compiler": _version([f"{ARM64_TRIPLE}-g++", "--version"]),
                  "wheel": f"executorch {manifest.libraries.get('executorch')} manylinux_2_28_aarch64", "host_machine": platform.machine()},
        "programs": programs, "seconds": round(time.perf_counter() - start, 1),
        "note": "outputs only; latency under emulation is not a phone number and is not recorded", "bundle_note": args.note,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", report)
    atomic_write_text(RESULTS / f"{args.name}.md", markdown(report, manifest.output_names))
    print(f"wrote {RESULTS / args.name}.json, .md in {report['seconds']} s")


def markdown(report: dict, outputs: list[str]) -> str:
    lines = [
        f"# ARM64 (qemu) against x86: {report['model']} at {report['input_size']} px",
        "",
        f"- Bundle: `{report['bundle']}`, ExecuTorch {report['executorch']}; {report['images']['golden']} golden images + "
        f"{report['images']['synthetic']} synthetic photographs (seed {report['images']['seed']})",
        f"- x86: {report['x86']['cpu']} ({report['x86']['cores']} cores), {report['x86']['system']}: the runner against the x86-64 wheel",
        f"- ARM64: the runner cross-built with {report['arm64']['compiler']} against the {report['arm64']['wheel']} wheel, run under "
        f"{report['arm64']['emulator']} (user-mode emulation on the x86 machine)",
        *([f"- The bundle: {report['bundle_note']}"] if report.get("bundle_note") else []),
        f"- {report['note']}; {report['seconds']} s",
        "",
        "Largest |ARM64 - x86| per output, and the screening decision agreement:",
        "",
        "| program | qemu CPU | " + " | ".join(outputs) + " | decision agreement |",
        "|---|---|" + "---|" * len(outputs) + "---|",
    ]
    for program in report["programs"]:
        for label, cpu in program["cpus"].items():
            cells = [f"{cpu['max_abs_difference'][name]:.3g}" for name in outputs]
            lines.append(f"| {program['artifact']} | {label} (`{cpu['qemu_cpu']}`) | " + " | ".join(cells) + f" | {cpu['decision_agreement']:.1%} |")
    lines += ["", "Output magnitude (largest |x86 output|): " + "; ".join(
        f"{p['artifact']}: " + ", ".join(f"{n} {p['output_scale'][n]:.3g}" for n in outputs) for p in report["programs"]), ""]  # fmt: skip
    lines += ["Golden vectors against the PyTorch reference (largest |error|, ARM64 / x86):", ""]
    for program in report["programs"]:
        errors = ", ".join(f"{name} {e['arm64']:.3g} / {e['x86']:.3g}" for name, e in program["golden_vs_reference"].items())
        lines.append(f"- {program['artifact']}: {errors}")
        for machine in ("arm64", "x86"):
            check = program[f"self_check_{machine}"]
            if check is not None:
                lines.append(f"  - BundledProgram self-check on {machine.upper()} (the manifest's per-output limits): **{check['status']}**, "
                             f"{check.get('cases', 0)} cases: {check.get('detail', '')}")  # fmt: skip
    near = [f"{p['artifact']} {p['near_threshold']['fraction']:.0%}" for p in report["programs"] if "near_threshold" in p]
    if near:
        lines += ["", f"Images whose x86 probability lies within 1e-4 of the decision threshold (a decision there flips on float32 noise): {', '.join(near)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
