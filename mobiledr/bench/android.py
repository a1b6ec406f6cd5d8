"""``mobiledr bench --device android...``: benchmarks on Android phones over adb, one phone after the
other, into one report (the shared bench schema, a row per device x artifact x thread count).

``native`` mode pushes the C++ runner (android_harness/native/) with its libraries and each XNNPACK
``.pte`` to ``contract.DEVICE_DIR`` and runs it in ``adb shell``; ``app`` mode pushes the bundle and
launches the harness app (installed by the user) once per artifact and thread count, then reads the
results document it writes with ``run-as``."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mobiledr.bench import contract
from mobiledr.bench.adb import Adb, AdbTimeout, DeviceGone, find_adb, last_lines, parse_cpufreq, parse_getprop
from mobiledr.bench.desktop import NATIVE, BenchOptions, make_report, measure_in_turn, targets
from mobiledr.bench.native import artifact_args, artifact_files, built_runner, elf_abi, inputs_npy, parse_runner_output
from mobiledr.bench.report import validation_error
from mobiledr.bench.worker import REFERENCE, latency_fields
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import MANIFEST, Manifest

MODES = ("native", "app")
DEVICE_SPECS = "desktop, android, android:SERIAL or all-android"
PUSH_TIMEOUT = 600.0  # seconds for one adb push (artifacts are megabytes; slow USB 2 cables exist)
GOLDEN = "golden"  # the bundle's folder of golden vectors and geometric cases (mobiledr export)
NATIVE_README = "android_harness/native/README.md"
APP_README = "android_harness/README.md"
Row = dict[str, Any]


@dataclass
class AndroidOptions(BenchOptions):
    device: str = "android"  # android | android:SERIAL | all-android
    adb: str | None = None  # the adb executable (default: $ADB, else adb on PATH)
    mode: str = "native"  # native | app
    runner: Path | None = None  # native mode: the runner binary (default: the one built for the phone's ABI)
    boot_timeout: float = 120.0  # seconds to wait for a device to come online and finish booting
    poll_s: float = 1.0  # seconds between polls (boot, the app's results)


@dataclass
class Phone:
    """A ready device: its serial, the name rows use, and the facts the report records."""

    adb: Adb
    serial: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.facts["device"]

    @property
    def abi(self) -> str:
        return self.facts["abi"]


class Session(Protocol):
    """One way of measuring on a phone (native runner or harness app)."""

    def setup(self) -> None: ...
    def measure(self, target: Row, threads: int) -> Row: ...
    def cleanup(self) -> None: ...


# --- choosing and preparing devices -------------------------------------------------------------


def parse_device(spec: str) -> tuple[str, str | None]:
    """``--device`` as (kind, serial): ('desktop', None), ('android', None | SERIAL) or ('all-android', None)."""
    kind, _, serial = spec.partition(":")
    if kind not in ("desktop", "android", "all-android") or (serial and kind != "android") or spec.endswith(":"):
        raise MobiledrError(f"--device takes {DEVICE_SPECS}, got {spec!r}")
    return kind, serial or None


def select_serials(adb: Adb, spec: str) -> list[str]:
    """The serials ``spec`` names among ``adb devices -l``, with a one-line error when they are not usable."""
    kind, serial = parse_device(spec)
    devices = adb.devices()
    states = {d.serial: d.state for d in devices}
    if serial is not None:
        if serial not in states:
            seen = ", ".join(f"{s} ({st})" for s, st in states.items()) or "none"
            raise MobiledrError(f"device {serial} not found by adb (devices: {seen})")
        _check_state(serial, states[serial])
        return [serial]
    ready = [s for s, st in states.items() if st == "device"]
    if not ready:
        for other, state in states.items():
            _check_state(other, state)
        raise MobiledrError("no Android device found: connect a phone with USB debugging on (adb devices lists none)")
    if kind == "android" and len(ready) > 1:
        raise MobiledrError(f"{len(ready)} Android devices are connected ({', '.join(ready)}): pass --device android:SERIAL or --device all-android")
    return ready


def _check_state(serial: str, state: str) -> None:
    if state == "unauthorized":
        raise MobiledrError(f"device {serial} is unauthorized: unlock it and accept the USB debugging prompt (Allow USB debugging)")
    if state == "offline":
        raise MobiledrError(f"device {serial} is offline: reconnect it, or restart adb (adb kill-server)")
    if state == "no permissions":
        raise MobiledrError(f"adb has no permission to use device {serial}: set up its udev rules (https://developer.android.com/studio/run/device)")
    if state != "device":
        raise MobiledrError(f"device {serial} is not ready (adb reports {state!r})")


def wait_ready(adb: Adb, serial: str, timeout: float, poll_s: float) -> None:
    """``adb wait-for-device``, then poll ``sys.boot_completed`` until it is 1."""
    deadline = time.monotonic() + timeout
    try:
        adb.run(["wait-for-device"], serial, timeout=timeout)
    except AdbTimeout:
        raise MobiledrError(f"device {serial} did not come online within {timeout:g} s") from None
    while adb.getprop(serial, "sys.boot_completed") != "1":
        if time.monotonic() > deadline:
            raise MobiledrError(f"device {serial} did not finish booting within {timeout:g} s (sys.boot_completed is not 1)")
        time.sleep(poll_s)


def device_facts(serial: str, props: dict[str, str], cpu_khz: list[int]) -> dict[str, Any]:
    """The report's ``devices`` entry for a phone, from its properties and CPU maximum frequencies."""
    model = props.get("ro.product.model") or serial
    sdk = props.get("ro.build.version.sdk", "")
    return {
        "device": f"{model} ({serial})", "kind": "android", "serial": serial, "model": model,
        "manufacturer": props.get("ro.product.manufacturer", "unknown"),
        "soc": props.get("ro.soc.model") or props.get("ro.board.platform") or "unknown",
        "abi": props.get("ro.product.cpu.abi", "unknown"), "android": props.get("ro.build.version.release", "unknown"),
        "sdk": int(sdk) if sdk.isdigit() else None, "cores": len(cpu_khz), "cpu_max_mhz": [khz // 1000 for khz in cpu_khz],
    }  # fmt: skip


def connect(options: AndroidOptions) -> list[Phone]:
    """Find adb, choose the devices, wait until each has booted and record its facts; checks that the
    chosen mode can run on every device before anything is measured."""
    if options.mode not in MODES:
        raise MobiledrError(f"--mode takes {' or '.join(MODES)}, got {options.mode!r}")
    adb = Adb(find_adb(options.adb))
    phones = []
    for serial in select_serials(adb, options.device):
        wait_ready(adb, serial, options.boot_timeout, options.poll_s)
        props = parse_getprop(adb.check(serial, "getprop"))
        cpus = adb.shell(serial, "grep . /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq")  # absent on some emulators
        phone = Phone(adb, serial, device_facts(serial, props, parse_cpufreq(cpus.stdout)))
        if options.mode == "native":
            runner_for(phone, options)
        else:
            check_app(phone)
        phones.append(phone)
    return phones


def runner_for(phone: Phone, options: AndroidOptions) -> Path:
    """The native runner for the phone's ABI (``options.runner``, else build/native/<abi>/, else the host
    build), refusing one built for another ABI."""
    runner = options.runner or built_runner(phone.abi) or built_runner()
    if runner is None:
        raise MobiledrError(f"the native runner is not built for {phone.abi}: build it with the NDK ({NATIVE_README})")
    built_for = elf_abi(runner)
    if built_for != phone.abi:
        raise MobiledrError(f"runner built for {built_for} but device {phone.serial} is {phone.abi}: build with the NDK ({NATIVE_README})")
    return runner


def check_app(phone: Phone) -> None:
    """The harness app must be installed (by the user) and debuggable (``run-as`` reads its results)."""
    path = phone.adb.shell(phone.serial, f"pm path {contract.APP_PACKAGE}")
    if path.returncode != 0 or not path.stdout.startswith("package:"):
        raise MobiledrError(f"the harness app {contract.APP_PACKAGE} is not installed on {phone.serial}: build and install it ({APP_README})")
    clear = phone.adb.shell(phone.serial, f"run-as {contract.APP_PACKAGE} rm -f {contract.APP_RESULTS}")
    if clear.returncode != 0:
        raise MobiledrError(f"run-as {contract.APP_PACKAGE} failed on {phone.serial} ({last_lines(clear.output, 1)}): install a debuggable build ({APP_README})")


# --- what runs where ----------------------------------------------------------------------------


def plan(manifest: Manifest, options: AndroidOptions) -> list[tuple[Row, int]]:
    """(target, threads) per measurement on one phone: native mode runs each XNNPACK ``.pte`` on the
    native runner (the other artifacts become skipped rows); app mode each artifact on its runtime."""
    runtimes = options.runtimes
    if runtimes and "executorch" in runtimes and NATIVE not in runtimes:
        runtimes = [*runtimes, NATIVE]  # on a phone, ExecuTorch means the native runner (or the app)
    found = [t for t in targets(manifest, runtimes) if t["artifact"] != REFERENCE]
    native = {t["artifact"] for t in found if t["runtime"] == NATIVE}
    if options.mode == "native":
        chosen = [t for t in found if t["runtime"] == NATIVE or t["artifact"] not in native]
    else:
        chosen = [t for t in found if t["runtime"] != NATIVE]
    return [(t, n) for t in chosen for n in options.threads]


def skip_reason(target: Row, mode: str) -> str | None:
    """Why a target cannot run on an Android phone in this mode, or None."""
    if "coreml" in (target["runtime"], target["backend"]):
        return "Core ML runs only on Apple devices"
    if mode == "native" and target["runtime"] != NATIVE:
        return "the native runner runs XNNPACK .pte files (--mode app measures the other runtimes)"
    if mode == "app" and target["runtime"] == "executorch" and target["backend"] != "xnnpack":
        return f"the harness app has no {target['backend']} backend"
    return None


def cpu_mask(cpus: str) -> str:
    """A taskset CPU list (``4-7``, ``0,2``) as the hexadecimal mask Android's toybox taskset takes (``f0``, ``5``)."""
    mask = 0
    for part in cpus.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if match is None:
            raise MobiledrError(f"--pin takes a CPU list such as 4-7 or 0,2, got {cpus!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        mask |= sum(1 << cpu for cpu in range(first, last + 1))
    return f"{mask:x}"


# --- on the device ------------------------------------------------------------------------------


class DeviceFolder:
    """A fresh folder on the phone; files are pushed once, on first use; removed at the end."""

    def __init__(self, phone: Phone, remote: str) -> None:
        self.phone, self.remote = phone, remote
        self.pushed: set[str] = set()

    def create(self) -> None:
        self.phone.adb.check(self.phone.serial, f"rm -rf {contract.DEVICE_DIR} && mkdir -p {self.remote}")

    def push(self, root: Path, *relatives: str) -> list[str]:
        """Push ``root/relative`` files or folders not on the phone yet to ``remote/relative``: those at
        the top in one adb call, nested ones one by one. Returns their device paths."""
        adb, serial = self.phone.adb, self.phone.serial
        todo = [r for r in dict.fromkeys(relatives) if r not in self.pushed]
        top = [r for r in todo if "/" not in r]
        if top:
            adb.push(serial, [str(root / r) for r in top], f"{self.remote}/", timeout=PUSH_TIMEOUT)
        for relative in (r for r in todo if "/" in r):
            adb.push(serial, str(root / relative), f"{self.remote}/{relative}", timeout=PUSH_TIMEOUT)
        for relative in todo:
            path = root / relative
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            self.pushed.update(p.relative_to(root).as_posix() for p in files)
        return [f"{self.remote}/{r}" for r in relatives]

    def remove(self) -> None:
        self.phone.adb.shell(self.phone.serial, f"rm -rf {contract.DEVICE_DIR}")


# --- native mode --------------------------------------------------------------------------------


class NativeSession:
    """The runner, its libraries and the golden input in ``DEVICE_DIR``; each ``.pte`` (and its
    BundledProgram) pushed before its first measurement; ``rm -rf`` at the end."""

    def __init__(self, phone: Phone, options: AndroidOptions, manifest: Manifest, inputs: Path) -> None:
        self.phone, self.options, self.manifest, self.inputs = phone, options, manifest, inputs
        self.runner = runner_for(phone, options)
        self.folder = DeviceFolder(phone, contract.DEVICE_DIR)

    def setup(self) -> None:
        self.folder.create()
        self.folder.push(self.runner.parent, self.runner.name, *sorted(p.name for p in self.runner.parent.glob("*.so")))
        self.folder.push(self.inputs.parent, self.inputs.name)
        self.phone.adb.check(self.phone.serial, f"chmod 755 {contract.DEVICE_DIR}/{contract.NATIVE_RUNNER}")

    def command(self, target: Row, threads: int) -> str:
        """The device shell command for one measurement."""
        entry = self.manifest.artifact(target["artifact"])
        self.folder.push(Path(self.options.bundle), *artifact_files(entry))
        args = artifact_args(entry, self.folder.remote, f"{contract.DEVICE_DIR}/{self.inputs.name}", threads=threads, warmup=self.options.warmup,
                             iters=self.options.iters, min_time=self.options.min_time, output_names=self.manifest.output_names)  # fmt: skip
        pin = ["taskset", cpu_mask(self.options.pin)] if self.options.pin else []
        folder = contract.DEVICE_DIR
        return f"cd {folder} && LD_LIBRARY_PATH={folder} " + shlex.join([*pin, f"{folder}/{contract.NATIVE_RUNNER}", *args])

    def measure(self, target: Row, threads: int) -> Row:
        command = self.command(target, threads)
        try:
            done = self.phone.adb.shell(self.phone.serial, command, timeout=self.options.timeout)
        except AdbTimeout as exc:
            return {"status": "failed", "error": f"timed out after {exc.seconds:g} s"}
        return parse_runner_output(done.returncode, done.stdout, done.stderr)

    def cleanup(self) -> None:
        self.folder.remove()


# --- app mode -----------------------------------------------------------------------------------


class AppSession:
    """The bundle (manifest, golden files; each artifact and its extra files before its first
    measurement) in ``DEVICE_DIR/bundle``; the harness app launched once per measurement; its
    ``files/results.json`` read back with run-as."""

    def __init__(self, phone: Phone, options: AndroidOptions, manifest: Manifest) -> None:
        self.phone, self.options, self.manifest = phone, options, manifest
        self.folder = DeviceFolder(phone, f"{contract.DEVICE_DIR}/bundle")
        self.bundle = Path(options.bundle)

    def setup(self) -> None:
        self.folder.create()
        self.folder.push(self.bundle, MANIFEST, GOLDEN)

    def intent(self, target: Row, threads: int) -> str:
        """``am start`` for one measurement, with the extras the benchmark activity reads."""
        values = {"bundle": self.folder.remote, "artifact": target["artifact"], "runtime": "onnxruntime" if target["runtime"].startswith("onnxruntime") else "executorch",
                  "iterations": self.options.iters, "warmup": self.options.warmup, "threads": threads}  # fmt: skip
        extras = [str(part) for name, flag in contract.APP_EXTRAS.items() for part in (flag, name, values[name])]
        return shlex.join(["am", "start", "-W", "-S", "-n", f"{contract.APP_PACKAGE}/{contract.APP_ACTIVITY}", *extras])

    def measure(self, target: Row, threads: int) -> Row:
        adb, serial = self.phone.adb, self.phone.serial
        entry = self.manifest.artifact(target["artifact"])
        self.folder.push(self.bundle, entry["file"], *entry["extras"].values())
        adb.check(serial, f"run-as {contract.APP_PACKAGE} rm -f {contract.APP_RESULTS}")
        started = adb.shell(serial, self.intent(target, threads))
        if started.returncode != 0 or "Error" in started.output:
            return {"status": "failed", "error": f"am start failed: {last_lines(started.output, 1)}"}
        document = self._wait_results()
        if document is None:
            adb.shell(serial, f"am force-stop {contract.APP_PACKAGE}")
            return {"status": "failed", "error": f"timed out after {self.options.timeout:g} s waiting for the app's {contract.APP_RESULTS}"}
        return self._fields(document, target, threads)

    def _wait_results(self) -> dict[str, Any] | None:
        """Poll ``run-as PACKAGE cat files/results.json`` until a complete JSON document appears."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            done = self.phone.adb.shell(self.phone.serial, f"run-as {contract.APP_PACKAGE} cat {contract.APP_RESULTS}")
            if done.returncode == 0:
                try:
                    return json.loads(done.stdout)
                except ValueError:
                    pass  # still being written
            if time.monotonic() > deadline:
                return None
            time.sleep(self.options.poll_s)

    def _fields(self, document: Any, target: Row, threads: int) -> Row:
        """The measured fields of the app's row for this request (the manifest describes the artifact)."""
        problem = validation_error(document)
        if problem:
            return {"status": "failed", "error": f"the app's results do not match the bench schema: {problem}"}
        rows = [r for r in document["rows"] if r["artifact"] == target["artifact"] and r["threads"] == threads]
        if not rows:
            return {"status": "failed", "error": f"the app's results have no row for {target['artifact']} at {threads} thread(s)"}
        for key, value in (document["devices"][0] if document["devices"] else {}).items():
            self.phone.facts.setdefault(key, value)  # what the app knows beyond getprop (e.g. its runtime versions)
        fields = {k: v for k, v in rows[0].items() if k not in target and k not in ("device", "threads")}
        if "latencies_ms" in fields:  # the app reports raw timings: the statistics are computed here, as for every runtime
            fields |= latency_fields(fields.pop("latencies_ms"))
        return fields

    def cleanup(self) -> None:
        self.folder.remove()
        self.phone.adb.shell(self.phone.serial, f"run-as {contract.APP_PACKAGE} rm -f {contract.APP_RESULTS}")


# --- the run ------------------------------------------------------------------------------------


def measure_phone(phone: Phone, session: Session, measurements: list[tuple[Row, int]], mode: str,
                  on_row: Callable[[Row], None] | None = None) -> list[Row]:  # fmt: skip
    """Every measurement on one phone, in turn; the phone's folder is removed at the end, whatever
    happens. A device that disconnects stops its run: the rows already measured are kept and the rest
    fail with 'device S disconnected'."""
    stop: str | None = None  # why no measurement can run
    gone = False
    try:
        try:
            session.setup()
        except DeviceGone as exc:
            stop, gone = str(exc), True
        except MobiledrError as exc:  # e.g. a push failed (storage full) or adb hung
            stop = f"could not prepare {phone.serial}: {exc}"
        rows, lost = measure_in_turn(phone.name, measurements, session.measure, lambda target: skip_reason(target, mode), stop=stop, on_row=on_row)
        gone = gone or lost
    finally:
        if not gone:
            with contextlib.suppress(MobiledrError):  # best effort: the results matter more than a temporary folder
                session.cleanup()
    return rows


def run_android(options: AndroidOptions, phones: list[Phone], on_row: Callable[[Row], None] | None = None) -> dict[str, Any]:
    """Measure on every phone in turn (from ``connect``); returns one report with every phone's rows."""
    manifest = Manifest.load(options.bundle)
    measurements = plan(manifest, options)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mobiledr-android-") as tmp:
        inputs = inputs_npy(Path(options.bundle), manifest, Path(tmp) / "inputs.npy")
        for phone in phones:
            session: Session = NativeSession(phone, options, manifest, inputs) if options.mode == "native" else AppSession(phone, options, manifest)
            rows += measure_phone(phone, session, measurements, options.mode, on_row)
    return make_report(options, manifest, [p.facts for p in phones], rows, mode=options.mode)


def disconnected(report: dict[str, Any]) -> dict[str, int]:
    """The devices that disconnected during the run, with the number of measurements each left undone."""
    lost: dict[str, int] = {}
    for row in report["rows"]:
        if match := re.fullmatch(r"device (.+) disconnected", row.get("error", "")):
            lost[match[1]] = lost.get(match[1], 0) + 1
    return lost


def results_name(report: dict[str, Any]) -> str:
    """The results file name (without extension): bench-android-SERIAL, or bench-android-all for
    several phones; ``-app`` in app mode. The desktop's results are bench.*."""
    devices = report["devices"]
    who = re.sub(r"[^A-Za-z0-9._-]", "_", devices[0]["serial"]) if len(devices) == 1 else "all"
    return f"bench-android-{who}" + ("-app" if report["settings"].get("mode") == "app" else "")
