"""The ``adb`` command-line tool as the field uses it: finding it, parsing what it prints, and running
its commands with a timeout each (a hung adb never hangs the benchmark), telling a device that went
away from a command that failed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

from mobiledr.errors import DeviceLost, MobiledrError

DEFAULT_TIMEOUT = 60.0  # seconds for one adb command (pushes of large files get more)
# A line of ``adb devices [-l]``: "%-22s %s" serial and state, then key:value details. Wireless
# serials may hold spaces ("adb-26151FDF60083B-9tP4nl (2)._adb-tls-connect._tcp").
STATES = ("device", "unauthorized", "offline", "authorizing", "connecting", "bootloader", "recovery", "rescue", "sideload", "host", "unknown", "no permissions")
DEVICE_LINE = re.compile(rf"^(?P<serial>.+?)\s+(?P<state>{'|'.join(STATES)})(?P<rest>(?:\s.*)?)$")
# What adb prints (on stdout or stderr, depending on the command and version) when the device is gone.
GONE = re.compile(r"device '[^']*' not found|no devices/emulators found|error: device offline|adb: device offline")


class DeviceGone(DeviceLost):
    """The device disconnected (or went offline) in the middle of the run."""

    def __init__(self, serial: str) -> None:
        super().__init__(f"device {serial} disconnected")
        self.serial = serial


class AdbTimeout(MobiledrError):
    """An adb command did not finish in time (it was killed)."""

    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"adb {command} timed out after {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class AdbDevice:
    """One line of ``adb devices -l``: serial, state (device, unauthorized, offline, ...) and the
    ``key:value`` details (usb, product, model, device, transport_id)."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def find_adb(path: str | None = None) -> str:
    """The adb executable: ``path`` (from --adb), else ``$ADB``, else ``adb`` on PATH."""
    candidate = path or os.environ.get("ADB") or "adb"
    found = shutil.which(candidate)
    if found is None:
        raise MobiledrError(f"adb not found: install Android platform-tools or pass --adb PATH (looked for {candidate!r})")
    return found


def parse_devices(text: str) -> list[AdbDevice]:
    """Parse ``adb devices -l`` (daemon start-up lines and the header are skipped)."""
    devices = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*", "adb server")):
            continue
        match = DEVICE_LINE.match(line)
        if match:
            details = dict(w.split(":", 1) for w in match["rest"].split() if re.fullmatch(r"[a-z_]+:\S+", w))
            devices.append(AdbDevice(match["serial"], match["state"], details))
    return devices


def parse_getprop(text: str) -> dict[str, str]:
    """Parse ``getprop`` (every property as ``[name]: [value]``)."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, flags=re.M))


def parse_cpufreq(text: str) -> list[int]:
    """Maximum frequency (kHz) per CPU, in CPU order, from ``grep . /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq``."""
    found = {int(cpu): int(khz) for cpu, khz in re.findall(r"cpu(\d+)/cpufreq/cpuinfo_max_freq:(\d+)", text)}
    return [found[cpu] for cpu in sorted(found)]


class Adb:
    """Runs ``adb [-s SERIAL] ARGS`` with a timeout; output naming a vanished device raises DeviceGone."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def run(self, args: list[str], serial: str | None = None, timeout: float | None = None) -> Result:
        command = [self.path, *(["-s", serial] if serial else []), *args]
        seconds = timeout or self.timeout
        # A session of its own, so a timeout kills adb and (with a fake adb) whatever it started.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   text=True, errors="replace", start_new_session=True)  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise AdbTimeout(" ".join(command[1:])[:200], seconds) from None
        result = Result(process.returncode, stdout, stderr)
        if serial and result.returncode != 0 and GONE.search(result.output):
            raise DeviceGone(serial)
        return result

    def devices(self) -> list[AdbDevice]:
        result = self.run(["devices", "-l"])
        if result.returncode != 0:
            raise MobiledrError(f"adb devices failed: {result.output.splitlines()[-1] if result.output else f'exit code {result.returncode}'}")
        return parse_devices(result.stdout)

    def shell(self, serial: str, command: str, timeout: float | None = None) -> Result:
        """``adb -s SERIAL shell COMMAND`` (one string for the device's sh); its exit code is the command's."""
        return self.run(["shell", command], serial, timeout)

    def check(self, serial: str, command: str, timeout: float | None = None) -> str:
        """A shell command that must succeed; returns its stdout."""
        result = self.shell(serial, command, timeout)
        if result.returncode != 0:
            raise MobiledrError(f"{command.split()[0]} failed on {serial} (exit code {result.returncode}): {last_lines(result.output, 1)}")
        return result.stdout

    def push(self, serial: str, local: str | list[str], remote: str, timeout: float | None = None) -> None:
        """``adb push``: one file to a path, or files and folders into an existing folder."""
        sources = [local] if isinstance(local, str) else local
        result = self.run(["push", *sources, remote], serial, timeout)
        if result.returncode != 0:
            raise MobiledrError(f"adb push {' '.join(sources)} to {serial} failed: {last_lines(result.output, 1)}")

    def getprop(self, serial: str, name: str) -> str:
        return self.shell(serial, f"getprop {name}").stdout.strip()


def last_lines(text: str, count: int = 3) -> str:
    """The last non-empty lines of some output, joined with ' | '."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"
