"""ExecuTorch ``.pte`` programs through the native runner (C++, the ExecuTorch Module API): the same
program a phone runs in ``adb shell`` mode, run here on this machine's build of it."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobiledr.bench.native import built_runner, parse_runner_output, runner_args, runner_command
from mobiledr.errors import MobiledrError
from mobiledr.runners.base import Runner, RunnerUnavailable


class NativeRunner(Runner):
    """Each ``run`` is one process of the runner: the images go in as .npy, the outputs come back as
    .npy (output k of the program is the manifest's k-th output)."""

    runtime = "native"

    def __init__(self, path: Path, output_names: tuple[str, ...], threads: int | None = None, timeout: float = 600.0, abi: str = "host") -> None:
        super().__init__(output_names, threads)
        self.path, self.timeout = Path(path), timeout
        binary = built_runner(abi)
        if binary is None:
            raise RunnerUnavailable(f"the native runner is not built: mobiledr bench --build-native{'' if abi == 'host' else f' --abi {abi}'}")
        self.binary, self.command = binary, runner_command(binary)  # arm64 on x86: under qemu-aarch64-static

    def load(self) -> None:
        if not self.path.is_file():
            raise MobiledrError(f"{self.path}: not found")

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.run(image)

    def run(self, images: np.ndarray, on_image: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="mobiledr-native-") as tmp:
            inputs = Path(tmp) / "inputs.npy"
            np.save(inputs, np.ascontiguousarray(images, dtype=np.float32))
            args = runner_args(str(self.path), inputs=str(inputs), outputs=tmp, threads=self.threads or 1, warmup=0, iters=1)
            try:
                done = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=self.timeout, check=False)
            except subprocess.TimeoutExpired:
                raise MobiledrError(f"{self.path.name}: the native runner timed out after {self.timeout:g} s") from None
            row = parse_runner_output(done.returncode, done.stdout, done.stderr)
            if row["status"] != "ok":
                raise MobiledrError(f"{self.path.name}: {row['error']}")
            outputs = {name: np.load(Path(tmp) / f"output_{k}.npy") for k, name in enumerate(self.output_names)}
        if on_image is not None:
            for _ in range(len(images)):
                on_image()
        return outputs
