"""``mobiledr bench --device ios``: the one-line macOS error elsewhere, devicectl's JSON parsed from
recordings (tests/fixtures/devicectl/), the launch arguments against the Swift app's, and the whole
path through a fake ``xcrun`` (tests/fixtures/devicectl/fake_xcrun.py) with the platform check off."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobiledr.bench import contract, ios
from mobiledr.bench.ios import Devicectl, DevicectlError, IosDevice, IosOptions, IosSession, connect, error_message, parse_apps, parse_devices, run_ios, select_device
from mobiledr.bench.report import load_results, validation_error
from mobiledr.cli import app
from mobiledr.errors import MobiledrError

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "devicectl"
APP_RESULTS = FIXTURES / "harness" / "ios_results.json"
UDID = "00008130-001A2C3E0E41001C"
NAME = "Ana's iPhone"
runner = CliRunner()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle folder: a real manifest (four artifacts: Core ML, two ExecuTorch, ONNX) and stand-in files."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(RECORDED / "manifest.json", folder / "manifest.json")
    (folder / "golden").mkdir()
    (folder / "golden" / "inputs.npz").write_bytes(b"npz")
    (folder / "model.fp16.mlpackage").mkdir()
    (folder / "model.fp16.mlpackage" / "Manifest.json").write_text("{}")
    for name in ("model.xnnpack-fp32.pte", "model.coreml-fp16.pte", "model.fp32.onnx"):
        (folder / name).write_bytes(b"program")
    return folder


@pytest.fixture
def fake_xcrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Call with config overrides: writes the fake's configuration, points $XCRUN at it, turns the macOS
    check off and polls fast; returns the app's data container."""

    def configure(**settings: object) -> Path:
        phone = tmp_path / "phone"
        phone.mkdir(exist_ok=True)
        config = {"devices": str(RECORDED / "list-devices.json"), "apps": str(RECORDED / "info-apps.json"), "container": str(phone / "container"),
                  "results": str(APP_RESULTS), **settings}  # fmt: skip
        (phone / "xcrun.json").write_text(json.dumps(config))
        wrapper = phone / "xcrun"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{RECORDED / "fake_xcrun.py"}" "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("FAKE_XCRUN_CONFIG", str(phone / "xcrun.json"))
        monkeypatch.setenv("XCRUN", str(wrapper))
        monkeypatch.setattr(ios, "on_macos", lambda: True)
        monkeypatch.setattr(ios, "POLL_S", 0.01)
        monkeypatch.setattr(ios, "ERROR_GRACE_S", 0.0)
        return phone / "container"

    return configure


def calls(container: Path) -> list[list[str]]:
    return [json.loads(line) for line in (container.parent / "calls.jsonl").read_text().splitlines()]


def devices_document(**changes: dict[str, object]) -> dict:
    """The recorded list with the iPhone's properties changed (e.g. connectionProperties={...})."""
    document = json.loads((RECORDED / "list-devices.json").read_text())
    for key, values in changes.items():
        document["result"]["devices"][0][key].update(values)
    return document


# --- the platform ---------------------------------------------------------------------------------


def test_needs_macos_elsewhere(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ios, "on_macos", lambda: False)
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios"])
    assert result.exit_code == 1
    message = str(result.exception)
    assert message.startswith("--device ios needs macOS with Xcode 15 or newer (xcrun devicectl drives the phone)") and "\n" not in message
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios:" + UDID, "--compute-units", "cpu,all"])
    assert str(result.exception).startswith("--device ios needs macOS")


def test_option_errors(bundle: Path) -> None:
    for args, message in ((["--device", "ios", "--threads", "2"], "--threads do not apply to --device ios"),
                          (["--device", "ios", "--mode", "app"], "do not apply to --device ios"),
                          (["--compute-units", "cpu"], "--compute-units applies to --device ios"),
                          (["--device", "ios:"], "--device takes ios or ios:UDID")):  # fmt: skip
        result = runner.invoke(app, ["bench", str(bundle), *args])
        assert result.exit_code == 1 and message in str(result.exception), (args, result.exception)
    assert ios.parse_compute_units("cpu, ane,all,cpuOnly") == ["cpuOnly", "cpuAndNeuralEngine", "all"]
    assert ios.parse_compute_units(None) == ["all"]
    with pytest.raises(MobiledrError, match="--compute-units takes some of cpu, gpu, ane, all"):
        ios.parse_compute_units("npu")


# --- recorded devicectl outputs --------------------------------------------------------------------


def test_parse_recorded_devicectl_outputs() -> None:
    entries = parse_devices(json.loads((RECORDED / "list-devices.json").read_text()))
    assert [(e["name"], e["device_type"], e["tunnel"]) for e in entries] == [(NAME, "iPhone", "connected"), ("Lab iPad", "iPad", "unavailable"),
                                                                            ("Ana's Apple Watch", "appleWatch", "unavailable")]  # fmt: skip
    chosen = select_device(entries, None)
    assert chosen["udid"] == UDID and chosen["identifier"] == "4B1D7C52-9A0E-4F3B-8C61-2E7D5A9F0B13"
    assert ios.device_facts(chosen) == {"device": NAME, "kind": "ios", "model": "iPhone 15 Pro", "machine": "iPhone16,1", "udid": UDID,
                                        "os": "iOS 18.6 (22G86)", "connection": "wired"}  # fmt: skip
    assert select_device(entries, "4B1D7C52-9A0E-4F3B-8C61-2E7D5A9F0B13") is chosen or select_device(entries, NAME)["udid"] == UDID
    apps = parse_apps(json.loads((RECORDED / "info-apps.json").read_text()))
    assert apps[contract.IOS_APP_BUNDLE_ID]["version"] == "0.1.0" and "com.apple.TestFlight" in apps
    locked = json.loads((RECORDED / "launch-locked.json").read_text())
    message = error_message(locked, "", 1)
    assert message.startswith('The request to launch "org.mobiledr.harness" failed.') and "could not be, unlocked" in message
    device = IosDevice(Devicectl("xcrun"), UDID, {"device": NAME})
    assert "is locked: unlock it" in ios.stop_reason(device, DevicectlError(message))
    assert ios.stop_reason(device, DevicectlError("xcrun devicectl device copy from: The device is not connected.")) == f"device {NAME} disconnected"
    assert ios.stop_reason(device, DevicectlError("The file “results.json” couldn’t be opened because there is no such file.")) is None
    assert error_message({}, "some progress\nERROR: Failed to load provisioning paramter list (exit)\n", 1) == "Failed to load provisioning paramter list (exit)"


def test_device_selection_errors() -> None:
    def pick(document: dict, wanted: str | None = None) -> str:
        with pytest.raises(MobiledrError) as caught:
            select_device(parse_devices(document), wanted)
        return str(caught.value)

    empty = {"info": {"outcome": "success"}, "result": {"devices": []}}
    assert pick(empty).startswith("no iPhone or iPad found: connect one with a cable, unlock it and trust this Mac")
    assert "is not paired with this Mac" in pick(devices_document(connectionProperties={"pairingState": "unpaired"}))
    assert pick(devices_document(connectionProperties={"tunnelState": "unavailable"})) == (
        f"device {NAME} ({UDID}) is not connected (devicectl reports it unavailable): connect it with a cable (or to this Mac's network) and unlock it")
    assert "Developer Mode off" in pick(devices_document(deviceProperties={"developerModeStatus": "disabled"}))
    assert pick(devices_document(), "00008101-000000000000001E").startswith(f"device 00008101-000000000000001E not found by devicectl (iPhones and iPads: {NAME} ({UDID}, connected)")
    assert "Lab iPad" in pick(devices_document(), "Lab iPad")  # named, but unavailable
    two = devices_document()
    two["result"]["devices"][1]["connectionProperties"]["tunnelState"] = "disconnected"  # plugged in, no tunnel yet: usable
    assert pick(two) == f"2 iOS devices are connected ({NAME}: {UDID}, Lab iPad: 00008103-000E59A12E90801E): pass --device ios:UDID"
    assert select_device(parse_devices(two), "00008103-000E59A12E90801E")["name"] == "Lab iPad"


# --- the contract with the Swift app ---------------------------------------------------------------


def test_launch_arguments_match_the_swift_app(bundle: Path) -> None:
    swift = (ROOT / "ios_harness/Sources/MobileDRKit/Bench/LaunchArguments.swift").read_text()
    assert tuple(re.findall(r'case "(--[a-z-]+)"', swift)) == contract.IOS_ARGUMENTS
    runners = (ROOT / "ios_harness/Sources/MobileDRKit/Model/Runner.swift").read_text()
    assert set(re.findall(r'case "(\w+)": return \.\w+', runners)) == set(contract.IOS_COMPUTE_UNITS.values())
    view = (ROOT / "ios_harness/App/BenchmarkView.swift").read_text()
    assert f'appendingPathComponent("{contract.IOS_RESULTS}")' in view and f'appendingPathComponent("{contract.IOS_ERROR}")' in view
    readme = (ROOT / "ios_harness/README.md").read_text()
    assert f"**`{contract.IOS_APP_BUNDLE_ID}`**" in readme and f"--destination {contract.IOS_DOCUMENTS}/{contract.IOS_BUNDLE}" in readme

    session = IosSession(IosDevice(Devicectl("/usr/bin/xcrun"), UDID, {"device": NAME}), IosOptions(bundle, warmup=3, iters=7), bundle)
    options, tail = session.launch_command("model.fp16.mlpackage", "cpuOnly")
    assert options == ["device", "process", "launch", "--device", UDID, "--terminate-existing"]
    assert tail == [contract.IOS_APP_BUNDLE_ID, "--bundle", "bundle", "--artifact", "model.fp16.mlpackage", "--compute-units", "cpuOnly", "--iterations", "7", "--warmup", "3"]
    assert "--compute-units" not in session.launch_command("model.xnnpack-fp32.pte", None)[1]
    command = session.device.ctl.command(options, Path("/tmp/out.json"), tail)
    assert command[:2] == ["/usr/bin/xcrun", "devicectl"] and command.index("--json-output") < command.index(contract.IOS_APP_BUNDLE_ID)  # options before the app's arguments
    assert session.copy_command() == ["device", "copy", "to", "--device", UDID, "--domain-type", "appDataContainer", "--domain-identifier", contract.IOS_APP_BUNDLE_ID,
                                      "--source", str(bundle.resolve()), "--destination", "Documents/bundle"]  # fmt: skip


# --- through the fake xcrun ------------------------------------------------------------------------


def test_end_to_end(fake_xcrun, bundle: Path, tmp_path: Path) -> None:
    assert validation_error(json.loads(APP_RESULTS.read_text())) is None  # the template is what the app writes
    container = fake_xcrun()
    out = tmp_path / "results"
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios", "--compute-units", "cpu,all", "--warmup", "2", "--iters", "5", "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception}"
    report = load_results(out / f"bench-ios-{UDID}.json")
    device = report["devices"][0]
    assert device["device"] == NAME and device["model"] == "iPhone 15 Pro" and device["os"] == "iOS 18.6 (22G86)" and device["cores"] == "6"  # devicectl, then the app
    assert report["settings"]["compute_units"] == ["cpuOnly", "all"] and report["settings"]["mode"] == "app"
    rows = {(r["artifact"], r["runtime"]): r for r in report["rows"]}
    assert set(rows) == {("model.fp16.mlpackage", "coreml-cpuOnly"), ("model.fp16.mlpackage", "coreml"), ("model.xnnpack-fp32.pte", "executorch"),
                         ("model.coreml-fp16.pte", "executorch"), ("model.fp32.onnx", "onnxruntime")}  # fmt: skip
    assert all(r["device"] == NAME and r["threads"] == 1 for r in report["rows"])
    assert all(r["status"] == "ok" and r["iterations"] == 5 for key, r in rows.items() if key[1] != "onnxruntime")
    assert rows[("model.fp32.onnx", "onnxruntime")]["status"] == "skipped"
    assert rows[("model.coreml-fp16.pte", "executorch")]["backend"] == "coreml"  # the manifest describes the artifact, the app measures it
    assert (container / "Documents" / "bundle" / "manifest.json").is_file()  # left for the app's screening screen
    made = calls(container)
    assert all(c[0] == "devicectl" and "--json-output" in c for c in made)
    launches = [c[c.index(contract.IOS_APP_BUNDLE_ID) + 1 :] for c in made if c[1:4] == ["device", "process", "launch"]]
    assert ["--bundle", "bundle", "--artifact", "model.fp16.mlpackage", "--compute-units", "cpuOnly", "--iterations", "5", "--warmup", "2"] in launches
    assert len(launches) == 4 and ["--bundle", "bundle", "--artifact", "model.xnnpack-fp32.pte", "--iterations", "5", "--warmup", "2"] in launches


def test_app_not_installed_and_no_xcrun(fake_xcrun, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apps = json.loads((RECORDED / "info-apps.json").read_text())
    apps["result"]["apps"] = apps["result"]["apps"][1:]
    (tmp_path / "apps.json").write_text(json.dumps(apps))
    fake_xcrun(apps=str(tmp_path / "apps.json"))
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios"])
    assert result.exit_code == 1
    assert str(result.exception) == f"the harness app org.mobiledr.harness is not installed on {NAME}: build and run it from Xcode (ios_harness/README.md)"
    with pytest.raises(MobiledrError, match=r"^xcrun not found: install Xcode 15 or newer"):
        connect(IosOptions(bundle, xcrun=str(tmp_path / "missing" / "xcrun")))
    old = tmp_path / "old-xcrun"
    old.write_text('#!/bin/sh\necho "xcrun: error: unable to find utility \\"devicectl\\", not a developer tool or in PATH" >&2\nexit 72\n')
    old.chmod(0o755)
    with pytest.raises(MobiledrError, match=r"^xcrun cannot find devicectl: install Xcode 15 or newer"):
        connect(IosOptions(bundle, xcrun=str(old)))


def test_hanging_devicectl_times_out(fake_xcrun, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_xcrun(hang=5)
    monkeypatch.setattr(ios, "QUERY_TIMEOUT", 0.5)
    with pytest.raises(DevicectlError, match=r"^xcrun devicectl list devices timed out after 0.5 s$"):
        connect(IosOptions(bundle))


def test_app_crash_is_a_failed_row(fake_xcrun, bundle: Path) -> None:
    fake_xcrun(crash=["model.xnnpack-fp32.pte"])
    options = IosOptions(bundle, warmup=0, iters=2, timeout=0.3, runtimes=["executorch"])
    report = run_ios(options, connect(options))
    rows = {r["artifact"]: r for r in report["rows"]}
    assert rows["model.coreml-fp16.pte"]["status"] == "ok"
    assert rows["model.xnnpack-fp32.pte"]["status"] == "failed" and rows["model.xnnpack-fp32.pte"]["error"].startswith("no Documents/results.json after 0.3 s: the app crashed or hung")


def test_locked_device_fails_the_rest(fake_xcrun, bundle: Path, tmp_path: Path) -> None:
    fake_xcrun(locked=True)
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios:" + UDID, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "measurement(s) failed; first: model.xnnpack-fp32.pte (executorch): device Ana's iPhone is locked: unlock it" in str(result.exception)
    report = load_results(tmp_path / "r" / f"bench-ios-{UDID}.json")
    assert {r["status"] for r in report["rows"]} == {"failed", "skipped"}


def test_disconnected_device_keeps_its_results(fake_xcrun, bundle: Path, tmp_path: Path) -> None:
    container = fake_xcrun(gone_after_launches=2)
    result = runner.invoke(app, ["bench", str(bundle), "--device", "ios", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert str(result.exception) == f"device {NAME} disconnected during the run: 1 measurement(s) not done; the results so far are in {tmp_path / 'r' / f'bench-ios-{UDID}.json'}"
    report = load_results(tmp_path / "r" / f"bench-ios-{UDID}.json")
    assert [(r["artifact"], r["status"]) for r in report["rows"]] == [("model.xnnpack-fp32.pte", "ok"), ("model.fp32.onnx", "skipped"),
                                                                      ("model.fp16.mlpackage", "ok"), ("model.coreml-fp16.pte", "failed")]  # fmt: skip
    assert sum(1 for c in calls(container) if c[1:4] == ["device", "process", "launch"]) == 3  # the third found the device gone: none after it
