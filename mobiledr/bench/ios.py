"""``mobiledr bench --device ios[:UDID]``: benchmarks on an iPhone or iPad through the harness app
(ios_harness/, installed by the user from Xcode), driven from macOS with ``xcrun devicectl``.

The driver picks a connected, paired device (``devicectl list devices``), checks the app is installed
(``device info apps``), copies the bundle into the app's Documents folder (``device copy to``), then
launches the app once per artifact x Core ML compute units (``device process launch
--terminate-existing BUNDLE_ID ARGS``), polls ``Documents/results.json`` back (``device copy from``)
and merges the app's rows into one report (the shared bench schema). ExecuTorch ``.pte`` files run once
(compute units apply to Core ML); ONNX artifacts are skipped rows (the app does not link ONNX Runtime).
The bundle stays in Documents afterwards: the app's screening screen opens it.

Every devicectl call has a timeout and its JSON output (``--json-output``) is read rather than its
text; failures are one-line errors before any work (no macOS, no xcrun, no device, unpaired, app
missing) or failed rows (the app crashed or wrote no results; a locked or disconnected device fails
the remaining measurements and keeps the rows already measured)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobiledr.bench import contract
from mobiledr.bench.desktop import NATIVE, BenchOptions, make_report, measure_in_turn, targets
from mobiledr.bench.report import validation_error
from mobiledr.bench.worker import REFERENCE, latency_fields
from mobiledr.errors import DeviceLost, MobiledrError
from mobiledr.export.manifest import Manifest

README = "ios_harness/README.md"
QUERY_TIMEOUT = 60.0  # seconds for list devices, info apps, launch and copying small files back
COPY_TIMEOUT = 900.0  # seconds for copying the bundle to the phone (tens of MB)
POLL_S = 2.0  # seconds between polls of Documents/results.json
ERROR_GRACE_S = 5.0  # Documents/error.txt counts this long after a launch (an older one lingers until the app starts)
EXECUTORCH_BACKENDS = ("xnnpack", "coreml", "portable")  # what the app links (Runners.unavailableReason)
GONE = re.compile(r"device (was |is )?(not (connected|found|available)|disconnected|unavailable|no longer)|no (such )?device|not connected|"
                  r"connection (was |has been )?(lost|interrupted|invalidated|closed)", re.I)  # fmt: skip
LOCKED = re.compile(r"\blocked\b|unlocked|passcode", re.I)
Row = dict[str, Any]


@dataclass
class IosOptions(BenchOptions):
    device: str = "ios"  # ios | ios:UDID (or the device's CoreDevice identifier or name)
    compute_units: list[str] = field(default_factory=lambda: ["all"])  # the app's names (contract.IOS_COMPUTE_UNITS values)
    xcrun: str | None = None  # the xcrun executable (default: $XCRUN, else xcrun on PATH)
    require_macos: bool = True  # tests turn it off to drive a fake xcrun on Linux
    poll_s: float | None = None  # default POLL_S
    error_grace_s: float | None = None  # default ERROR_GRACE_S


class DevicectlError(MobiledrError):
    """A devicectl command that failed; the message is devicectl's own, on one line."""


@dataclass
class IosDevice:
    """The chosen device: devicectl, its UDID and the facts the report records."""

    ctl: Devicectl
    udid: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.facts["device"]


# --- the host -----------------------------------------------------------------------------------


def on_macos() -> bool:
    return sys.platform == "darwin"


def check_macos(options: IosOptions) -> None:
    if options.require_macos and not on_macos():
        raise MobiledrError(f"--device ios needs macOS with Xcode 15 or newer (xcrun devicectl drives the phone); this machine runs {sys.platform}")


def find_xcrun(explicit: str | None = None) -> str:
    xcrun = explicit or os.environ.get("XCRUN") or shutil.which("xcrun")
    if not xcrun or (os.sep in xcrun and not Path(xcrun).is_file()):
        raise MobiledrError("xcrun not found: install Xcode 15 or newer and select it (sudo xcode-select -s /Applications/Xcode.app)")
    return xcrun


def parse_ios_device(spec: str) -> str | None:
    """``--device ios`` (None: the only connected device) or ``ios:UDID`` (the UDID)."""
    kind, _, udid = spec.partition(":")
    if kind != "ios" or spec.endswith(":"):
        raise MobiledrError(f"--device takes ios or ios:UDID for an iPhone or iPad, got {spec!r}")
    return udid or None


def parse_compute_units(text: str | None) -> list[str]:
    """``--compute-units cpu,all`` as the app's names (cpuOnly, all); the app's names are accepted too."""
    names = contract.IOS_COMPUTE_UNITS
    chosen = []
    for part in (p.strip() for p in (text or "all").split(",")):
        if not part:
            continue
        if part not in names and part not in names.values():
            raise MobiledrError(f"--compute-units takes some of {', '.join(names)} (or {', '.join(names.values())}), got {part!r}")
        chosen.append(names.get(part, part))
    if not chosen:
        raise MobiledrError("--compute-units needs at least one of " + ", ".join(names))
    return list(dict.fromkeys(chosen))


# --- devicectl ----------------------------------------------------------------------------------


class Devicectl:
    """``xcrun devicectl`` with a timeout per call, reading the JSON it writes (``--json-output``)."""

    def __init__(self, xcrun: str) -> None:
        self.xcrun = xcrun

    def command(self, args: list[str], output: Path, tail: list[str] | None = None) -> list[str]:
        """The command line: ``tail`` (launch's bundle id and app arguments) goes after every option."""
        return [self.xcrun, "devicectl", *args, "--json-output", str(output), *(tail or [])]

    def run(self, args: list[str], timeout: float | None = None, tail: list[str] | None = None) -> dict[str, Any]:
        timeout = QUERY_TIMEOUT if timeout is None else timeout
        what = " ".join(a for a in args[:4] if not a.startswith("-"))
        with tempfile.TemporaryDirectory(prefix="mobiledr-devicectl-") as tmp:
            output = Path(tmp) / "output.json"
            try:
                done = subprocess.run(self.command(args, output, tail), capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise DevicectlError(f"xcrun devicectl {what} timed out after {timeout:g} s") from None
            except OSError as exc:
                raise MobiledrError(f"cannot run {self.xcrun}: {exc.strerror or exc}") from None
            try:
                document = json.loads(output.read_text())
            except (OSError, ValueError):
                document = {}
        if "unable to find utility" in done.stderr:
            raise MobiledrError("xcrun cannot find devicectl: install Xcode 15 or newer and select it (sudo xcode-select -s /Applications/Xcode.app)")
        if done.returncode != 0 or document.get("info", {}).get("outcome") == "failed" or "error" in document:
            raise DevicectlError(f"xcrun devicectl {what}: {error_message(document, done.stderr or done.stdout, done.returncode)}")
        return document


def error_message(document: dict[str, Any], text: str, returncode: int) -> str:
    """devicectl's error on one line: the descriptions and failure reasons along its error chain, else
    the last line it printed."""
    parts: list[str] = []
    error = document.get("error") if isinstance(document, dict) else None
    while isinstance(error, dict):
        info = error.get("userInfo") or {}
        for key in ("NSLocalizedDescription", "NSLocalizedFailureReason", "NSLocalizedRecoverySuggestion"):
            value = info.get(key)
            value = value.get("string") if isinstance(value, dict) else value
            if isinstance(value, str) and value.strip() and value.strip() not in parts:
                parts.append(value.strip())
        error = (info.get("NSUnderlyingError") or {}).get("error")
    if parts:
        return " ".join(parts)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return re.sub(r"^ERROR:\s*", "", lines[-1]) if lines else f"exit code {returncode}"


def parse_devices(document: dict[str, Any]) -> list[dict[str, Any]]:
    """``devicectl list devices`` JSON as flat entries (udid, identifier, name, model, product_type,
    device_type, platform, os, build, pairing, tunnel, transport, developer_mode, reality)."""
    entries = []
    for d in (document.get("result") or {}).get("devices") or []:
        connection, props, hardware = d.get("connectionProperties") or {}, d.get("deviceProperties") or {}, d.get("hardwareProperties") or {}
        entries.append({
            "identifier": d.get("identifier", ""), "udid": hardware.get("udid") or d.get("identifier", ""), "name": props.get("name", "?"),
            "model": hardware.get("marketingName") or hardware.get("productType", "?"), "product_type": hardware.get("productType", ""),
            "device_type": hardware.get("deviceType", ""), "platform": hardware.get("platform", ""), "os": props.get("osVersionNumber", ""),
            "build": props.get("osBuildUpdate", ""), "pairing": connection.get("pairingState", ""), "tunnel": connection.get("tunnelState", ""),
            "transport": connection.get("transportType", ""), "developer_mode": props.get("developerModeStatus", ""), "reality": hardware.get("reality", "physical"),
        })  # fmt: skip
    return entries


def parse_apps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``devicectl device info apps`` JSON as {bundle identifier: app}."""
    return {a["bundleIdentifier"]: a for a in (document.get("result") or {}).get("apps") or [] if "bundleIdentifier" in a}


def is_phone(entry: dict[str, Any]) -> bool:
    """A physical iPhone or iPad (devicectl also lists Apple Watches, Vision Pros and Macs)."""
    return entry["platform"] in ("iOS", "iPadOS") and entry["reality"] == "physical" and entry["device_type"] in ("iPhone", "iPad", "")


def unusable(entry: dict[str, Any]) -> str | None:
    """Why a device cannot run the benchmark now, as a one-line error, or None."""
    who = f"device {entry['name']} ({entry['udid']})"
    if entry["pairing"] != "paired":
        return f"{who} is not paired with this Mac: connect it with a cable, unlock it and tap Trust"
    if entry["tunnel"] == "unavailable":
        return f"{who} is not connected (devicectl reports it unavailable): connect it with a cable (or to this Mac's network) and unlock it"
    if entry["developer_mode"] == "disabled":
        return f"{who} has Developer Mode off: turn it on in Settings > Privacy & Security > Developer Mode"
    return None


def select_device(entries: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    """The device ``wanted`` names (UDID, CoreDevice identifier or name), else the only usable iPhone or iPad."""
    phones = [e for e in entries if is_phone(e)]
    if wanted is not None:
        match = [e for e in entries if wanted in (e["udid"], e["identifier"], e["name"])]
        if not match:
            seen = ", ".join(f"{e['name']} ({e['udid']}, {e['tunnel'] or e['pairing']})" for e in phones) or "none"
            raise MobiledrError(f"device {wanted} not found by devicectl (iPhones and iPads: {seen})")
        problem = unusable(match[0])
        if problem:
            raise MobiledrError(problem)
        return match[0]
    ready = [e for e in phones if unusable(e) is None]
    if not ready:
        if phones:  # the most useful reason: a plugged-in one first, then a paired one
            raise MobiledrError(unusable(min(phones, key=lambda e: (e["tunnel"] == "unavailable", e["pairing"] != "paired"))) or "")
        raise MobiledrError("no iPhone or iPad found: connect one with a cable, unlock it and trust this Mac (xcrun devicectl list devices lists none)")
    if len(ready) > 1:
        listed = ", ".join(f"{e['name']}: {e['udid']}" for e in ready)
        raise MobiledrError(f"{len(ready)} iOS devices are connected ({listed}): pass --device ios:UDID")
    return ready[0]


def device_facts(entry: dict[str, Any]) -> dict[str, Any]:
    """The report's facts about the device (the app adds cores, RAM and its version from its results)."""
    system = "iPadOS" if entry["device_type"] == "iPad" else "iOS"
    return {"device": entry["name"], "kind": "ios", "model": entry["model"], "machine": entry["product_type"], "udid": entry["udid"],
            "os": f"{system} {entry['os']}" + (f" ({entry['build']})" if entry["build"] else ""), "connection": entry["transport"] or entry["tunnel"]}  # fmt: skip


def connect(options: IosOptions) -> IosDevice:
    """macOS, xcrun, the device and the app: one-line errors before any work."""
    wanted = parse_ios_device(options.device)
    check_macos(options)
    ctl = Devicectl(find_xcrun(options.xcrun))
    entry = select_device(parse_devices(ctl.run(["list", "devices"])), wanted)
    apps = parse_apps(ctl.run(["device", "info", "apps", "--device", entry["udid"]]))
    if contract.IOS_APP_BUNDLE_ID not in apps:
        raise MobiledrError(f"the harness app {contract.IOS_APP_BUNDLE_ID} is not installed on {entry['name']}: build and run it from Xcode ({README})")
    facts = device_facts(entry) | {"harness_app_version": apps[contract.IOS_APP_BUNDLE_ID].get("version", "?")}
    return IosDevice(ctl, entry["udid"], facts)


# --- what runs ----------------------------------------------------------------------------------


def plan(manifest: Manifest, options: IosOptions) -> list[tuple[Row, str | None]]:
    """(target, compute units) per launch: each Core ML artifact once per compute units, every other
    artifact once (None: compute units do not apply). The eager baseline and the native runner are desktop
    and Android targets."""
    found = [t for t in targets(manifest, options.runtimes) if t["artifact"] != REFERENCE and t["runtime"] != NATIVE]
    return [(t, units) for t in found for units in (options.compute_units if t["runtime"] == "coreml" else [None])]


def skip_reason(target: Row) -> str | None:
    """Why the app cannot run a target (as Runners.unavailableReason says), or None."""
    if target["runtime"] == "executorch":
        return None if target["backend"] in EXECUTORCH_BACKENDS else f"the iOS harness links no ExecuTorch {target['backend']} backend"
    if target["runtime"] != "coreml":
        return f"runtime {target['runtime']} is not linked into the iOS harness (Core ML and ExecuTorch only)"
    return None


def row_target(target: Row, units: str | None) -> Row:
    """Core ML rows measured with other compute units than ``all`` carry them in their runtime
    (``coreml-cpuOnly``), so that rows stay distinct and ``bench --compare`` pairs them."""
    return target | {"runtime": f"coreml-{units}"} if units not in (None, "all") else target


def launch_arguments(artifact: str, units: str | None, options: IosOptions) -> list[str]:
    """The app's arguments (LaunchArguments.swift) for one measurement."""
    values = {"--bundle": contract.IOS_BUNDLE, "--artifact": artifact, "--compute-units": units, "--iterations": options.iters, "--warmup": options.warmup}
    return [str(part) for name in contract.IOS_ARGUMENTS if values[name] is not None for part in (name, values[name])]


def stop_reason(device: IosDevice, exc: DevicectlError) -> str | None:
    """When a devicectl failure means no further launch can work: why, as the rows' error."""
    if GONE.search(str(exc)):
        return f"device {device.name} disconnected"
    if LOCKED.search(str(exc)):
        return f"device {device.name} is locked: unlock it, keep it awake (Settings > Display & Brightness > Auto-Lock: Never) and run again"
    return None


class IosSession:
    """The bundle in the app's Documents folder; the app launched once per measurement; its results
    copied back into ``tmp``."""

    def __init__(self, device: IosDevice, options: IosOptions, tmp: Path) -> None:
        self.device, self.options, self.tmp = device, options, tmp
        self.seen: set[str] = set()  # 'created' of results documents already read (or left by an earlier run)

    def container(self, *args: str) -> list[str]:
        return [*args, "--device", self.device.udid, "--domain-type", "appDataContainer", "--domain-identifier", contract.IOS_APP_BUNDLE_ID]

    def copy_command(self) -> list[str]:
        bundle = str(Path(self.options.bundle).resolve())
        return self.container("device", "copy", "to") + ["--source", bundle, "--destination", f"{contract.IOS_DOCUMENTS}/{contract.IOS_BUNDLE}"]

    def launch_command(self, artifact: str, units: str | None) -> tuple[list[str], list[str]]:
        """devicectl's options, then what follows them: the bundle id and the app's arguments."""
        options = ["device", "process", "launch", "--device", self.device.udid, "--terminate-existing"]
        return options, [contract.IOS_APP_BUNDLE_ID, *launch_arguments(artifact, units, self.options)]

    def setup(self) -> None:
        self.device.ctl.run(self.copy_command(), timeout=COPY_TIMEOUT)
        stale = self.fetch(contract.IOS_RESULTS)
        if stale is not None:
            self.seen.add(json_created(stale))

    def fetch(self, name: str) -> str | None:
        """A file of the app's Documents folder, or None when it is not there (yet)."""
        local = self.tmp / name
        local.unlink(missing_ok=True)
        try:
            self.device.ctl.run(self.container("device", "copy", "from") + ["--source", f"{contract.IOS_DOCUMENTS}/{name}", "--destination", str(local)])
        except DevicectlError as exc:
            if GONE.search(str(exc)) or LOCKED.search(str(exc)):
                raise
            return None
        try:
            return local.read_text()
        except OSError:
            return None

    def measure(self, target: Row, units: str | None) -> Row:
        options, tail = self.launch_command(target["artifact"], units)
        started = time.monotonic()
        self.device.ctl.run(options, tail=tail)
        while True:
            time.sleep(POLL_S if self.options.poll_s is None else self.options.poll_s)
            text = self.fetch(contract.IOS_RESULTS)
            document = _json(text)
            if document is not None and json_created(text) not in self.seen and _answers(document, target["artifact"], units):
                self.seen.add(json_created(text))
                return self.fields(document, target)
            elapsed = time.monotonic() - started
            if elapsed >= (ERROR_GRACE_S if self.options.error_grace_s is None else self.options.error_grace_s):
                error = (self.fetch(contract.IOS_ERROR) or "").strip()
                if error:
                    return {"status": "failed", "error": f"the app could not run: {error.splitlines()[0]}"}
            if elapsed > self.options.timeout:
                return {"status": "failed", "error": f"no {contract.IOS_DOCUMENTS}/{contract.IOS_RESULTS} after {self.options.timeout:g} s: "
                        "the app crashed or hung (Xcode > Window > Devices and Simulators > Open Recent Logs)"}  # fmt: skip

    def fields(self, document: dict[str, Any], target: Row) -> Row:
        """The measured fields of the app's row (the manifest describes the artifact)."""
        problem = validation_error(document)
        if problem:
            return {"status": "failed", "error": f"the app's results do not match the bench schema: {problem}"}
        row = next(r for r in document["rows"] if r["artifact"] == target["artifact"])
        for key, value in (document["devices"][0] if document["devices"] else {}).items():
            if key not in ("device", "note"):
                self.device.facts.setdefault(key, value)  # cores, RAM, the app's version
        fields = {k: v for k, v in row.items() if k not in target and k not in ("device", "threads")}
        if "latencies_ms" in fields:  # the app reports raw timings: the statistics are computed here, as for every runtime
            fields |= latency_fields(fields.pop("latencies_ms"))
        return fields


def json_created(text: str | None) -> str:
    document = _json(text)
    return str(document.get("created", text)) if isinstance(document, dict) else str(text)


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None  # still being written


def _answers(document: Any, artifact: str, units: str | None) -> bool:
    """Whether a results document is the answer to this launch (not a left-over of another one)."""
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        return False
    if units is not None and (document.get("settings") or {}).get("compute_units", units) != units:
        return False
    return any(isinstance(r, dict) and r.get("artifact") == artifact for r in document["rows"])


# --- the run ------------------------------------------------------------------------------------


def run_ios(options: IosOptions, device: IosDevice, on_row: Callable[[Row], None] | None = None) -> dict[str, Any]:
    """Every measurement on the device (from ``connect``), in turn; returns the report. A locked or
    disconnected device fails the remaining measurements; the rows measured before are kept."""
    manifest = Manifest.load(options.bundle)
    with tempfile.TemporaryDirectory(prefix="mobiledr-ios-") as tmp:
        session = IosSession(device, options, Path(tmp))
        stop: str | None = None
        try:
            session.setup()
        except DevicectlError as exc:
            stop = stop_reason(device, exc) or f"could not copy the bundle to {device.name}: {exc}"

        def measure(target: Row, units: str | None) -> Row:
            try:
                return session.measure(target, units)
            except DevicectlError as exc:  # a lost or locked device stops the run; anything else fails this row
                reason = stop_reason(device, exc)
                raise (DeviceLost(reason) if reason else exc) from None

        rows, _ = measure_in_turn(device.name, plan(manifest, options), measure, skip_reason, lambda target, units: (row_target(target, units), 1),
                                  stop=stop, on_row=on_row)  # fmt: skip
    return make_report(options, manifest, [device.facts], rows, mode="app", compute_units=options.compute_units)


def results_name(report: dict[str, Any]) -> str:
    """The results file name (without extension): bench-ios-UDID."""
    return "bench-ios-" + re.sub(r"[^A-Za-z0-9._-]", "_", report["devices"][0].get("udid", "device"))
