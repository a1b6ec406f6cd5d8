"""Parity of the demo model's full bundle (android + ios formats) on a held-out synthetic test set.

    make demo                                   # trains the demo model and exports out/demo/bundle
    python benchmarks/parity_demo.py [--bundle out/demo/bundle] [--n 1000] [--seed 2026] [--name parity_demo]

The photographs are generated from a seed of their own (the demo's data set uses seed 0), put through
the geometric stage and labelled with the bundle's scheme. Writes ``benchmarks/results/parity_demo.{json,md}``:
the parity report (every artifact against the PyTorch reference, with the int8 decision agreement and
delta AUC, and the layer analysis of failing int8 ONNX artifacts) plus the machine it ran on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mobiledr.bench.machine import machine_facts
from mobiledr.data.spec import PreprocessSpec
from mobiledr.export.manifest import Manifest
from mobiledr.parity.inputs import synthetic
from mobiledr.parity.policy import Policy
from mobiledr.parity.report import write_report
from mobiledr.parity.suite import ParityOptions, run_parity

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("out/demo/bundle"))
    parser.add_argument("--n", type=int, default=1000, help="synthetic test photographs")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the photographs")
    parser.add_argument("--name", default="parity_demo", help="result file name under benchmarks/results/")
    args = parser.parse_args()
    manifest = Manifest.load(args.bundle)
    spec = PreprocessSpec.from_dict(manifest.preprocessing["photometric"]["spec"])
    start = time.perf_counter()
    inputs = synthetic(args.n, spec, manifest.label_scheme, args.seed)
    report = run_parity(ParityOptions(bundle=args.bundle, policy=Policy.load(), localize=True), inputs)
    report["machine"] = machine_facts()
    report["seconds"] = round(time.perf_counter() - start, 1)
    for path in write_report(report, [RESULTS / args.name]):
        print(f"wrote {path}")
    print(f"verdict {report['verdict']} in {report['seconds']} s")


if __name__ == "__main__":
    main()
