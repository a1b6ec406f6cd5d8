"""Wall time of ``mobiledr demo`` per stage, with default settings and with ``--fast``, plus the README's
screenshot of the default report (headless Chromium).

    python benchmarks/demo_timings.py [--modes default,fast] [--keep DIR]

Each mode runs ``mobiledr demo`` in a fresh folder (a subprocess, as a user runs it). Writes
``benchmarks/results/demo_timings.{json,md}`` (modes not run this time keep their recorded rows) and,
for the default mode, ``benchmarks/results/demo_report.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.demo_report import render_screenshot

RESULTS = Path(__file__).parent / "results"


def run(mode: str, out: Path) -> dict:
    command = [str(Path(sys.executable).with_name("mobiledr")), "demo", "--out", str(out), *(["--fast"] if mode == "fast" else [])]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    timings = json.loads((out / "timings.json").read_text())
    return {"mode": mode, "exit_code": done.returncode, "wall_seconds": round(time.perf_counter() - start, 1), **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="default,fast")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the demo folders under this folder.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mobiledr-demo-timings-"))
    runs = []
    try:
        for mode in args.modes.split(","):
            out = root / mode
            shutil.rmtree(out, ignore_errors=True)
            runs.append(run(mode, out))
            print(mode, runs[-1]["wall_seconds"], "s", flush=True)
            if mode == "default":
                render_screenshot(out / "report.html", RESULTS / "demo_report.png", width=1200, height=1400)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    recorded = RESULTS / "demo_timings.json"
    if recorded.exists():  # keep the modes not re-run this time
        ran = {r["mode"] for r in runs}
        runs = [r for r in json.loads(recorded.read_text())["runs"] if r["mode"] not in ran] + runs
        runs.sort(key=lambda r: r["mode"] != "default")
    machine = machine_facts()
    names = [s["name"] for s in runs[0]["stages"]]
    lines = ["# `mobiledr demo` wall time per stage (seconds)", "",
             f"Machine: {machine['cpu']} ({machine['cores']} cores). `python benchmarks/demo_timings.py`; each mode in a fresh folder, "
             "as a subprocess. Parity failures and failed measurements are verdicts in the report, not stage errors.", "",
             "| mode | " + " | ".join(names) + " | total (s) | total (min) | exit code | verdicts |", "|---|" + "---|" * (len(names) + 4)]  # fmt: skip
    for r in runs:
        seconds = {s["name"]: s["seconds"] for s in r["stages"]}
        verdicts = "; ".join(v for s in r["stages"] for v in s.get("verdicts", [])) or "-"
        lines.append(f"| {r['mode']} | " + " | ".join(f"{seconds.get(n, '-')}" for n in names)
                     + f" | {r['wall_seconds']} | {r['wall_seconds'] / 60:.1f} | {r['exit_code']} | {verdicts[:300]} |")  # fmt: skip
    write_result(RESULTS, "demo_timings", {"machine": machine, "runs": runs}, lines)


if __name__ == "__main__":
    main()
