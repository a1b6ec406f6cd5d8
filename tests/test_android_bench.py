"""``mobiledr bench --device android...``: adb's outputs parsed from recordings, and the whole Android
path through ``tests/fake_adb.py`` (phones whose shell runs here): the native runner, the harness
app, several phones in one report, and every failure as a one-line error or a failed row."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobiledr.bench import android, contract
from mobiledr.bench.adb import GONE, Adb, AdbTimeout, DeviceGone, find_adb, parse_cpufreq, parse_devices, parse_getprop
from mobiledr.bench.android import AndroidOptions, connect, cpu_mask, device_facts, parse_device, run_android, select_serials, wait_ready
from mobiledr.bench.report import load_results, validation_error
from mobiledr.cli import app
from mobiledr.errors import MobiledrError
from mobiledr.export.manifest import Manifest

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "adb"
FAKE_ADB = str(Path(__file__).with_name("fake_adb.py"))
APP_RESULTS = FIXTURES / "android_app_results.json"
QUICK = ["--warmup", "0", "--iters", "2"]
runner = CliRunner()

# An x86_64 emulator image: the desktop-built runner runs "on" it.
EMULATOR = {"ro.product.model": "sdk_gphone64_x86_64", "ro.product.manufacturer": "Google", "ro.board.platform": "ranchu",
            "ro.product.cpu.abi": "x86_64", "ro.build.version.release": "14", "ro.build.version.sdk": "34"}  # fmt: skip
PIXEL = parse_getprop((RECORDED / "getprop-pixel8.txt").read_text())


def phone(props: dict[str, str] = EMULATOR, **settings: object) -> dict[str, object]:
    return {"state": "device", "props": props, "cpufreq_khz": [1800000, 1800000], **settings}


@pytest.fixture
def fake_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Call with {serial: phone(...)}: writes the fake adb's configuration; returns each phone's folder."""

    def configure(devices: dict[str, dict[str, object]]) -> Path:
        config = tmp_path / "phones" / "adb.json"
        config.parent.mkdir(exist_ok=True)
        config.write_text(json.dumps({"devices": devices}))
        monkeypatch.setenv("FAKE_ADB_CONFIG", str(config))
        monkeypatch.setenv("ADB", FAKE_ADB)
        return config.parent

    return configure


@pytest.fixture
def fake_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in for the native runner (a shell script; its ELF check is bypassed): prints a result,
    except for artifacts whose name contains ``crash`` (exit 139) or ``hang`` (sleeps)."""
    line = json.dumps({"status": "ok", "load_ms": 5.0, "first_ms": 2.0, "latencies_ms": [2.0, 2.0], "baseline_rss_mb": 9.0,
                       "rss_mb": 19.0, "peak_rss_mb": 23.0, "checks": {"bundled_program": {"status": "passed", "cases": 3}}})  # fmt: skip

    def make(crash: str = "", hang: str = "") -> Path:
        script = tmp_path / "bin" / contract.NATIVE_RUNNER
        script.parent.mkdir(exist_ok=True)
        script.write_text(f"""#!/bin/sh
case "$*" in
  *{crash or "@none@"}*) echo "loading program" >&2; echo "XNNPACK: bad weights" >&2; echo "Segmentation fault" >&2; exit 139;;
  *{hang or "@none@"}*) sleep 30;;
esac
echo '{line}'
""")
        script.chmod(0o755)
        monkeypatch.setattr(android, "elf_abi", lambda path: "x86_64")
        monkeypatch.setattr(android, "built_runner", lambda abi="host": script)
        return script

    return make


def options(bundle: Path, **settings: object) -> AndroidOptions:
    return AndroidOptions(bundle, warmup=0, iters=2, poll_s=0.05, boot_timeout=10.0, **settings)


# --- parsers on recorded outputs ----------------------------------------------------------------


def test_parse_recorded_adb_outputs() -> None:
    devices = parse_devices((RECORDED / "devices-l.txt").read_text())
    assert [(d.serial, d.state) for d in devices] == [("37091FDJH004MK", "device"), ("R58N91ABCDE", "unauthorized")]
    assert devices[0].details["model"] == "Pixel_8" and devices[0].details["transport_id"] == "3"
    assert parse_devices((RECORDED / "devices-l-none.txt").read_text()) == []
    wireless = parse_devices("adb-26151FDF60083B-9tP4nl (2)._adb-tls-connect._tcp device product:shiba model:Pixel_8 device:shiba transport_id:5\n")
    assert wireless[0].serial == "adb-26151FDF60083B-9tP4nl (2)._adb-tls-connect._tcp" and wireless[0].state == "device"
    assert parse_devices("emulator-5554\toffline\n")[0].state == "offline"  # adb devices without -l
    for what, text in json.loads((RECORDED / "errors.json").read_text()).items():
        assert GONE.search(text), what


def test_device_facts_from_recorded_getprop_and_cpufreq() -> None:
    cpus = parse_cpufreq((RECORDED / "cpufreq-pixel8.txt").read_text())
    assert cpus == [1704000] * 4 + [2367000] * 4 + [2910000]
    facts = device_facts("37091FDJH004MK", PIXEL, cpus)
    assert facts == {"device": "Pixel 8 (37091FDJH004MK)", "kind": "android", "serial": "37091FDJH004MK", "model": "Pixel 8", "manufacturer": "Google",
                     "soc": "Tensor G3", "abi": "arm64-v8a", "android": "14", "sdk": 34, "cores": 9, "cpu_max_mhz": [1704] * 4 + [2367] * 4 + [2910]}  # fmt: skip
    older = {k: v for k, v in PIXEL.items() if k != "ro.soc.model"}  # before Android 12
    assert device_facts("S", older, [])["soc"] == "zuma"


def test_device_specs_and_cpu_masks() -> None:
    assert parse_device("desktop") == ("desktop", None) and parse_device("android") == ("android", None)
    assert parse_device("android:192.168.1.5:5555") == ("android", "192.168.1.5:5555") and parse_device("all-android") == ("all-android", None)
    for bad in ("ios", "android:", "all-android:X"):
        with pytest.raises(MobiledrError, match="--device takes desktop, android"):
            parse_device(bad)
    assert cpu_mask("4-7") == "f0" and cpu_mask("0,2") == "5" and cpu_mask("0") == "1"
    with pytest.raises(MobiledrError, match="--pin takes a CPU list"):
        cpu_mask("big")


# --- finding adb and devices --------------------------------------------------------------------


def test_adb_not_found(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MobiledrError, match="adb not found: install Android platform-tools or pass --adb PATH"):
        find_adb()
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "android", "--adb", str(tmp_path / "adb")])
    assert result.exit_code == 1 and str(result.exception).startswith("adb not found")
    assert "--adb and --mode apply to phones" in str(runner.invoke(app, ["bench", str(tiny_bundle), "--adb", FAKE_ADB]).exception)


def test_device_selection_errors(fake_adb) -> None:
    adb = Adb(FAKE_ADB)
    fake_adb({})
    with pytest.raises(MobiledrError, match="no Android device found: connect a phone with USB debugging on"):
        select_serials(adb, "android")
    fake_adb({"R58N91ABCDE": {"state": "unauthorized"}})
    with pytest.raises(MobiledrError, match="device R58N91ABCDE is unauthorized: unlock it and accept the USB debugging prompt"):
        select_serials(adb, "android")
    fake_adb({"emulator-5554": phone(), "emulator-5556": phone(), "R58N91ABCDE": {"state": "unauthorized"}})
    with pytest.raises(MobiledrError, match=r"2 Android devices are connected \(emulator-5554, emulator-5556\): pass --device android:SERIAL or --device all-android"):
        select_serials(adb, "android")
    assert select_serials(adb, "all-android") == ["emulator-5554", "emulator-5556"]  # the unauthorized one is not ready
    assert select_serials(adb, "android:emulator-5556") == ["emulator-5556"]
    with pytest.raises(MobiledrError, match="is unauthorized"):
        select_serials(adb, "android:R58N91ABCDE")
    with pytest.raises(MobiledrError, match=r"device XYZ not found by adb \(devices: emulator-5554 \(device\)"):
        select_serials(adb, "android:XYZ")


def test_boot_wait_and_a_hanging_adb(fake_adb) -> None:
    fake_adb({"emulator-5554": phone(boot_completed_after=2), "emulator-5556": phone(boot_completed_after=10**6), "emulator-5558": phone(hang=60)})
    adb = Adb(FAKE_ADB)
    wait_ready(adb, "emulator-5554", timeout=10, poll_s=0.01)  # sys.boot_completed becomes 1 on the third poll
    with pytest.raises(MobiledrError, match="device emulator-5556 did not finish booting within 0.5 s"):
        wait_ready(adb, "emulator-5556", timeout=0.5, poll_s=0.01)
    with pytest.raises(AdbTimeout, match=r"adb -s emulator-5558 shell getprop timed out after 1 s"):
        Adb(FAKE_ADB, timeout=1).shell("emulator-5558", "getprop")
    with pytest.raises(MobiledrError, match="device emulator-5558 did not come online within 1 s"):
        wait_ready(adb, "emulator-5558", timeout=1, poll_s=0.01)


# --- native mode --------------------------------------------------------------------------------


def test_abi_mismatch(fake_adb, tiny_bundle: Path) -> None:
    fake_adb({"37091FDJH004MK": phone(PIXEL)})
    python = Path(os.path.realpath(sys.executable))  # an x86_64 ELF executable
    with pytest.raises(MobiledrError, match=r"runner built for x86_64 but device 37091FDJH004MK is arm64-v8a: build with the NDK \(android_harness/native/README.md\)"):
        connect(options(tiny_bundle, runner=python))


@pytest.mark.slow
def test_native_end_to_end_on_one_then_two_phones(fake_adb, tiny_bundle: Path, native_runner: Path, tmp_path: Path) -> None:
    """The desktop-built runner (conftest's native_runner) on x86_64 "emulators" behind the fake adb."""
    folders = fake_adb({"emulator-5554": phone(boot_completed_after=1), "emulator-5556": phone()})
    out = tmp_path / "out"
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "android:emulator-5554", "--pin", "0", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    report = load_results(out / "bench-android-emulator-5554.json")  # validates against the shared schema
    assert [d["device"] for d in report["devices"]] == ["sdk_gphone64_x86_64 (emulator-5554)"]
    assert report["devices"][0]["kind"] == "android" and report["devices"][0]["abi"] == "x86_64" and report["devices"][0]["cpu_max_mhz"] == [1800, 1800]
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    assert {r["artifact"] for r in ok} == {"model.xnnpack-fp32.pte", "model.xnnpack-int8.pte"} and {r["runtime"] for r in ok} == {"native"}
    assert all(r["iterations"] >= 2 and r["device"] == "sdk_gphone64_x86_64 (emulator-5554)" for r in ok)
    fp32 = next(r for r in ok if r["artifact"] == "model.xnnpack-fp32.pte")
    assert fp32["checks"]["bundled_program"]["status"] == "passed"  # the BundledProgram pushed next to it
    skipped = {r["artifact"]: r["error"] for r in report["rows"] if r["status"] == "skipped"}
    assert skipped["model.fp16.mlpackage"] == "Core ML runs only on Apple devices" and "--mode app" in skipped["model.int8.ort"]
    assert not (folders / "emulator-5554" / contract.DEVICE_DIR.lstrip("/")).exists()  # cleaned up

    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "all-android", "--threads", "1,2", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    report = load_results(out / "bench-android-all.json")
    names = ["sdk_gphone64_x86_64 (emulator-5554)", "sdk_gphone64_x86_64 (emulator-5556)"]
    assert [d["device"] for d in report["devices"]] == names and report["settings"]["mode"] == "native"
    native = [(r["device"], r["artifact"], r["threads"]) for r in report["rows"] if r["status"] == "ok"]
    assert len(native) == 2 * 2 * 2 and {n for n, _, _ in native} == set(names)
    assert "device,artifact" in (out / "bench-android-all.csv").read_text().splitlines()[0]


def test_runner_crash_and_timeout_are_failed_rows(fake_adb, fake_runner, tiny_bundle: Path) -> None:
    fake_adb({"emulator-5554": phone()})
    fake_runner(crash="xnnpack-fp32", hang="xnnpack-int8")
    settings = options(tiny_bundle, device="android", timeout=1.0)
    report = run_android(settings, connect(settings))
    assert validation_error(report) is None
    rows = {r["artifact"]: r for r in report["rows"] if r["runtime"] == "native"}
    crashed, hung = rows["model.xnnpack-fp32.pte"], rows["model.xnnpack-int8.pte"]
    assert crashed["status"] == "failed" and crashed["error"].startswith("runner exited with code 139: ")
    assert "Segmentation fault" in crashed["error"]
    assert hung["status"] == "failed" and hung["error"] == "timed out after 1 s"


def test_disconnected_phone_keeps_its_results(fake_adb, fake_runner, tiny_bundle: Path, tmp_path: Path) -> None:
    fake_runner()
    # connect: 3 shell commands (boot, getprop, cpufreq); setup: 2 (folder, chmod); then the first measurement
    fake_adb({"emulator-5554": phone(disappear_after_shell=6)})
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "android", *QUICK, "--out", str(tmp_path)])
    assert result.exit_code == 1
    message = str(result.exception)
    assert message.startswith("device emulator-5554 disconnected during the run: 1 measurement(s) not done") and "\n" not in message
    report = load_results(tmp_path / "bench-android-emulator-5554.json")  # written all the same
    rows = {r["artifact"]: r for r in report["rows"] if r["runtime"] == "native"}
    assert rows["model.xnnpack-fp32.pte"]["status"] == "ok"
    assert rows["model.xnnpack-int8.pte"] == rows["model.xnnpack-int8.pte"] | {"status": "failed", "error": "device emulator-5554 disconnected"}
    with pytest.raises(DeviceGone):
        Adb(FAKE_ADB).shell("emulator-5554", "true")
    assert "emulator-5554" not in Adb(FAKE_ADB).run(["devices", "-l"]).stdout


# --- app mode -----------------------------------------------------------------------------------


def test_app_not_installed(fake_adb, tiny_bundle: Path) -> None:
    fake_adb({"emulator-5554": phone()})
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "android", "--mode", "app"])
    assert result.exit_code == 1
    assert str(result.exception) == "the harness app org.mobiledr.harness is not installed on emulator-5554: build and install it (android_harness/README.md)"


@pytest.mark.slow
def test_app_mode_reads_the_apps_results(fake_adb, tiny_bundle: Path, tmp_path: Path) -> None:
    assert validation_error(json.loads(APP_RESULTS.read_text())) is None  # the recording is what the app writes
    folders = fake_adb({"37091FDJH004MK": phone(PIXEL, app_installed=True, app_results=str(APP_RESULTS))})
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--device", "android", "--mode", "app", "--threads", "2", *QUICK, "--out", str(tmp_path)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    report = load_results(tmp_path / "bench-android-37091FDJH004MK-app.json")
    device = report["devices"][0]
    assert device["device"] == "Pixel 8 (37091FDJH004MK)" and device["soc"] == "Tensor G3" and device["executorch"] == "1.5.1"  # getprop, then the app's facts
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    assert {r["artifact"] for r in ok} == {"model.xnnpack-fp32.pte", "model.xnnpack-int8.pte", "model.fp32.onnx", "model.fp32.ort", "model.int8.onnx", "model.int8.ort"}
    assert all(r["device"] == "Pixel 8 (37091FDJH004MK)" and r["pss_mb"] > 0 and r["checks"]["golden_vectors"]["status"] == "passed" for r in ok)
    ort = next(r for r in ok if r["artifact"] == "model.int8.ort")
    assert all(r["threads"] == 2 for r in report["rows"])
    assert ort["runtime"] == "onnxruntime-mobile" and ort["precision"] == "int8"  # the manifest describes the artifact, the app measures it
    assert {r["error"] for r in report["rows"] if r["status"] == "skipped"} == {"Core ML runs only on Apple devices"}
    assert not (folders / "37091FDJH004MK" / contract.DEVICE_DIR.lstrip("/")).exists()


@pytest.mark.slow
def test_app_that_writes_nothing_or_nonsense(fake_adb, tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "mobiledr-bench/1", "rows": []}))
    fake_adb({"emulator-5554": phone(app_installed=True), "emulator-5556": phone(app_installed=True, app_results=str(tmp_path / "bad.json"))})
    settings = options(tiny_bundle, device="all-android", mode="app", timeout=0.3)
    manifest = Manifest.load(tiny_bundle)
    target = next(t for t, _ in android.plan(manifest, settings) if t["artifact"] == "model.int8.ort")
    silent, confused = ([*android.measure_phone(p, android.AppSession(p, settings, manifest), [(target, 1)], "app")] for p in connect(settings))
    assert silent[0]["status"] == "failed" and silent[0]["error"] == "timed out after 0.3 s waiting for the app's files/results.json"
    assert confused[0]["status"] == "failed" and confused[0]["error"].startswith("the app's results do not match the bench schema: ")


def test_adb_timeout_kills_what_it_started(fake_adb, tmp_path: Path) -> None:
    fake_adb({"emulator-5554": phone()})
    pid_file = tmp_path / "pid"
    with pytest.raises(AdbTimeout):
        Adb(FAKE_ADB, timeout=1).shell("emulator-5554", f"echo $$ > {pid_file}; exec sleep 30")
    assert not _alive(int(pid_file.read_text()))


def _alive(pid: int) -> bool:
    """Whether a process runs (a killed one may stay a zombie for a moment until it is reaped)."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        if state == "Z":
            return False
        time.sleep(0.02)
    return True


def test_app_rows_with_raw_latencies_get_the_statistics_computed_here() -> None:
    """The app reports every timed inference (latencies_ms); the statistics are mobiledr's, computed
    once in Python for every runtime (mobiledr.bench.worker.latency_fields)."""
    import numpy as np

    from mobiledr.bench.worker import latency_stats

    document = json.loads(APP_RESULTS.read_text())
    raw = [2.5, 2.75, 3.0, 2.5, 9.0]
    row = document["rows"][0]
    for key in ("latency_ms", "iterations", "throughput_ips"):
        row.pop(key)
    row["latencies_ms"] = raw
    assert validation_error(document) is None  # what the app writes now
    session = android.AppSession.__new__(android.AppSession)
    session.phone = type("Phone", (), {"facts": {}})()
    target = {k: row[k] for k in ("artifact", "format", "precision", "runtime", "backend")}
    fields = session._fields(document, target, row["threads"])
    assert "latencies_ms" not in fields and fields["iterations"] == len(raw)
    assert fields["latency_ms"] == latency_stats([v / 1e3 for v in raw]) and fields["latency_ms"]["p90"] == pytest.approx(float(np.percentile(raw, 90)))
    assert fields["throughput_ips"] == pytest.approx(1e3 / np.mean(raw))
    del row["latencies_ms"]
    assert "is not valid under any of the given schemas" in validation_error(document)  # an ok row without timings is refused
