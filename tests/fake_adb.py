#!/usr/bin/env python3
"""A fake ``adb`` for tests: phones whose file systems are folders on this machine and whose ``shell``
runs commands here with ``/bin/sh``, answering like the real adb (its messages and exit codes).

Configured by the JSON file named by ``$FAKE_ADB_CONFIG``::

    {"devices": {"SERIAL": {
        "state": "device",                 # or unauthorized, offline
        "props": {"ro.product.model": "Pixel 8", ...},   # getprop
        "cpufreq_khz": [1704000, ...],     # /sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq
        "boot_completed_after": 0,         # sys.boot_completed reads "" this many times, then "1"
        "disappear_after_shell": null,     # after N shell commands the device is gone
        "hang": 0,                         # seconds every command for this device sleeps first
        "app_installed": false,            # the harness app (pm path, run-as, am start)
        "app_results": null}}}             # a results.json the "app" writes on am start

Device paths under /data, /sys and /sdcard live in ``<config folder>/<SERIAL>/``; counters live in
``<config>.state``. Implemented: devices [-l], -s S wait-for-device | shell CMD | push | pull.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(os.environ["FAKE_ADB_CONFIG"])
PACKAGE = "org.mobiledr.harness"  # the harness app (mobiledr.bench.contract.APP_PACKAGE)
UNAUTHORIZED = """error: device unauthorized.
This adb server's $ADB_VENDOR_KEYS is not set
Try 'adb kill-server' if that seems wrong.
Otherwise check for a confirmation dialog on your device."""


def load() -> tuple[dict, dict]:
    config = json.loads(CONFIG.read_text())
    state_file = CONFIG.with_suffix(".state")
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return config["devices"], state


def save(state: dict) -> None:
    CONFIG.with_suffix(".state").write_text(json.dumps(state))


def root(serial: str) -> Path:
    return CONFIG.parent / serial


def host_path(serial: str, text: str) -> str:
    """Device paths (/data/..., /sys/..., /sdcard/...) in ``text`` rewritten to the device's folder."""
    return re.sub(r"(?<![\w./-])/(data|sys|sdcard)(?=/|\b)", lambda m: f"{root(serial)}/{m[1]}", text)


def fail(message: str, code: int = 1, stream=sys.stderr) -> None:
    print(message, file=stream)
    sys.exit(code)


def devices(config: dict, state: dict) -> None:
    print("List of devices attached")
    for n, (serial, device) in enumerate(config.items(), start=1):
        if state.get(serial, {}).get("gone"):
            continue
        line = f"{serial:<22} {device.get('state', 'device')} usb:1-{n}"
        if device.get("state", "device") == "device":
            props = device.get("props", {})
            model = re.sub(r"[^A-Za-z0-9_-]", "_", props.get("ro.product.model", "unknown"))
            name = props.get("ro.product.device", "generic")
            line += f" product:{props.get('ro.product.name', name)} model:{model} device:{name}"
        print(f"{line} transport_id:{n}")
    print()


def getprop(device: dict, counters: dict, args: list[str]) -> None:
    props = {"sys.boot_completed": "1", **device.get("props", {})}
    if not args:
        print("\n".join(f"[{k}]: [{v}]" for k, v in sorted(props.items())))
        return
    if args[0] == "sys.boot_completed":
        counters["boot_polls"] = counters.get("boot_polls", 0) + 1
        if counters["boot_polls"] <= device.get("boot_completed_after", 0):
            print()
            return
    print(props.get(args[0], ""))


def am_start(serial: str, device: dict, args: list[str]) -> None:
    """The harness app: writes the recorded results, its rows set to the requested artifact and threads."""
    component = args[args.index("-n") + 1]
    if not device.get("app_installed"):
        fail(f"Starting: Intent {{ cmp={component} }}\nError type 3\nError: Activity class {{{component}}} does not exist.", stream=sys.stdout)
    extras = {args[i + 1]: args[i + 2] for i, arg in enumerate(args) if arg in ("--es", "--ei")}
    pushed = Path(host_path(serial, extras["bundle"])) / extras["artifact"]
    if device.get("app_results") and pushed.is_file():  # the app reads the bundle pushed to the phone
        document = json.loads(Path(device["app_results"]).read_text())
        for row in document["rows"]:
            row.update(artifact=extras["artifact"], threads=int(extras["threads"]), runtime=extras["runtime"])
        results = root(serial) / "data" / "data" / PACKAGE / "files" / "results.json"
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(document))
    print(f"Starting: Intent {{ cmp={component} (has extras) }}\nStatus: ok\nLaunchState: COLD\nActivity: {component}\nTotalTime: 412\nWaitTime: 415\nComplete")


def sh(serial: str, command: str, cwd: Path) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    sys.exit(subprocess.run(["/bin/sh", "-c", host_path(serial, command)], cwd=cwd, check=False).returncode)


def shell(serial: str, device: dict, counters: dict, command: str) -> None:
    args = shlex.split(command)
    if args[:1] == ["getprop"]:
        getprop(device, counters, args[1:])
    elif args[:2] == ["pm", "path"]:
        if not device.get("app_installed") or args[2] != PACKAGE:
            sys.exit(1)
        print(f"package:/data/app/~~Qf3xv1==/{PACKAGE}-9Zk2Yw==/base.apk")
    elif args[:2] == ["am", "start"]:
        am_start(serial, device, args)
    elif args[:1] == ["run-as"]:
        if not device.get("app_installed") or args[1] != PACKAGE:
            fail(f"run-as: unknown package: {args[1]}")
        sh(serial, shlex.join(args[2:]), root(serial) / "data" / "data" / PACKAGE)
    else:
        sh(serial, command, root(serial))


def copy(source: Path, dest: Path) -> None:
    if dest.is_dir():
        dest = dest / source.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(source, dest)


def main(argv: list[str]) -> None:
    config, state = load()
    if argv[:1] == ["devices"]:
        devices(config, state)
        return
    if argv[:1] != ["-s"]:
        fail(f"fake adb: only 'devices' and '-s SERIAL ...' are implemented, not {argv}")
    serial, command, args = argv[1], argv[2], argv[3:]
    device, counters = config.get(serial), state.setdefault(serial, {})
    if device is None or counters.get("gone"):
        if command == "wait-for-device":
            time.sleep(3600)  # real adb waits for it to come back
        fail(f"adb: error: failed to get feature set: device '{serial}' not found" if command == "push" else f"error: device '{serial}' not found",
             stream=sys.stdout if command == "push" else sys.stderr)  # fmt: skip
    time.sleep(device.get("hang", 0))
    if device.get("state", "device") != "device":
        if command == "wait-for-device":
            time.sleep(3600)
        fail(UNAUTHORIZED if device["state"] == "unauthorized" else f"error: device {device['state']}")
    for cpu, khz in enumerate(device.get("cpufreq_khz", [])):
        freq = root(serial) / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"
        freq.parent.mkdir(parents=True, exist_ok=True)
        freq.write_text(f"{khz}\n")
    if command == "shell":
        counters["shells"] = counters.get("shells", 0) + 1
        if device.get("disappear_after_shell") is not None and counters["shells"] > device["disappear_after_shell"]:
            counters["gone"] = True
        save(state)
        if counters.get("gone"):
            fail(f"error: device '{serial}' not found")
        shell(serial, device, counters, " ".join(args))
        save(state)
    elif command == "wait-for-device":
        pass
    elif command in ("push", "pull"):
        *sources, dest = args
        if command == "push":
            if len(sources) > 1 and not Path(host_path(serial, dest)).is_dir():
                fail(f"adb: error: target '{dest}' is not a directory")
            for source in sources:
                copy(Path(source), Path(host_path(serial, dest)))
            print(f"{len(sources)} files pushed, 0 skipped. 180.3 MB/s")
        else:
            source = sources[0]
            copy(Path(host_path(serial, source)), Path(dest))
            print(f"{source}: 1 file pulled, 0 skipped. 95.1 MB/s")
    else:
        fail(f"fake adb: {command} is not implemented")


if __name__ == "__main__":
    main(sys.argv[1:])
