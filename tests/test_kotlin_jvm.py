"""The Android app's plain Kotlin compiled and run on a desktop JVM (android_harness/jvm-check/): the
geometric port against mobiledr.data.geometry, the manifest reader, the self-checks and the results
writer of the benchmark, against the Python side. `make test` installs the JDK, Android's org.json
and the Kotlin compiler (make jvm-deps): nothing here is skipped without them, it fails."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mobiledr.data.geometry import decode, geometric, write_png
from mobiledr.data.spec import PreprocessSpec
from mobiledr.export.manifest import Manifest
from mobiledr.parity.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
ANDROID = ROOT / "android_harness"
KOTLIN_SRC = ANDROID / "app/src/main/java/org/mobiledr/harness"
CHECK = ANDROID / "jvm-check/JvmCheck.kt"
KOTLINC = ROOT / "build/kotlin/node_modules/kotlin-compiler/bin/kotlinc"  # make jvm-deps (npm kotlin-compiler)
ORG_JSON = Path("/usr/share/java/com.android.json.jar")  # Debian libandroid-json-java: Android's own org.json
JAR_CACHE = ROOT / "build/kotlin/jvm-check"
# Files that need Android or the runtime AARs (ExecuTorch, ONNX Runtime): everything else is compiled.
PLATFORM_IMPORTS = re.compile(r"^import (android|androidx|org\.pytorch|ai\.onnxruntime)\.", re.M)
BENCH_SCHEMA = ROOT / "mobiledr/bench/bench.schema.json"
pytestmark = pytest.mark.slow


def _code(path: Path) -> str:
    return re.sub(r"//.*", "", re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S))


def plain_sources() -> list[Path]:
    """Every Kotlin file of the app that uses no Android or runtime API, directly or through a class
    of a file that does (the runtime binding, model/Runtimes.kt)."""
    files = sorted(KOTLIN_SRC.rglob("*.kt"))
    excluded = {f for f in files if PLATFORM_IMPORTS.search(f.read_text())}
    while True:
        names = {n for f in excluded for n in re.findall(r"^(?:object|class|interface|data class|fun interface)\s+(\w+)", _code(f), re.M)}
        more = {f for f in files if f not in excluded and any(re.search(rf"\b{n}\b", _code(f)) for n in names)}
        if not more:
            return [f for f in files if f not in excluded]
        excluded |= more


def _tool(env: str, default: Path | str | None, what: str) -> str:
    found = os.environ.get(env) or (str(default) if default and Path(default).exists() else None) or shutil.which(Path(str(default)).name if default else what)
    if not found:
        pytest.fail(f"{what} not found: make jvm-deps installs it ({env}=... overrides)")
    return found


@pytest.fixture(scope="session")
def jvm() -> list[str]:
    """The compiled check (cached by a hash of the sources and the compiler, so a rerun does not
    compile again) as a java command line."""
    kotlinc, java = _tool("KOTLINC", KOTLINC, "kotlinc"), _tool("JAVA", None, "java")
    org_json = _tool("ORG_JSON_JAR", ORG_JSON, "org.json jar")
    sources = [*plain_sources(), CHECK]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + str(Path(kotlinc).resolve()).encode()).hexdigest()[:16]
    jar = JAR_CACHE / f"check-{digest}.jar"
    if not jar.is_file():
        JAR_CACHE.mkdir(parents=True, exist_ok=True)
        partial = jar.with_suffix(".partial.jar")
        done = subprocess.run([kotlinc, *map(str, sources), "-cp", org_json, "-include-runtime", "-d", str(partial)],
                              capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
        errors = [line for line in done.stderr.splitlines() if "error:" in line]
        assert done.returncode == 0, "kotlinc failed: " + " | ".join(errors[:5] or done.stderr.splitlines()[-5:])
        os.replace(partial, jar)
    return [java, "-cp", f"{jar}{os.pathsep}{org_json}", "JvmCheckKt"]


def _check(jvm: list[str], *args: str) -> list[str]:
    done = subprocess.run([*jvm, *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_every_plain_kotlin_file_is_compiled() -> None:
    compiled = {p.relative_to(KOTLIN_SRC).as_posix() for p in plain_sources()}
    left_out = {p.relative_to(KOTLIN_SRC).as_posix() for p in KOTLIN_SRC.rglob("*.kt")} - compiled
    # only Android glue and the runtime binding stay out; the model-facing logic is all in
    assert left_out == {"BenchmarkActivity.kt", "ScreeningActivity.kt", "model/ExecuTorchRunner.kt", "model/OrtRunner.kt", "model/Runtimes.kt",
                        "platform/BundleLocator.kt", "platform/DeviceFacts.kt", "platform/Images.kt"}  # fmt: skip
    assert {"preprocess/Geometric.kt", "bundle/Manifest.kt", "bundle/Integrity.kt", "bench/SelfChecks.kt", "bench/ResultsWriter.kt", "bench/Benchmark.kt"} <= compiled


def _pairs(folder: Path, info: dict) -> list[str]:
    return [str(folder / p[key]) for p in info["pairs"] for key in ("original", "expected")]


def test_geometric_port_on_every_golden_pair_of_a_fresh_bundle(tiny_bundle: Path, jvm: list[str]) -> None:
    manifest = Manifest.load(tiny_bundle)
    path = tiny_bundle / manifest.golden["geometric"]
    info = json.loads(path.read_text())
    lines = _check(jvm, "geometric", str(info["size"]), info["mode"], str(info["crop_tolerance"]), *_pairs(path.parent, info))
    assert len(lines) == len(info["pairs"]) == manifest.golden["count"]
    for pair, line in zip(info["pairs"], lines, strict=True):
        difference, cx, cy, r = line.split()
        assert int(difference) <= 1, f"{pair['name']}: {difference} grey levels"  # exact on these; 1 on rare bicubic rounding ties
        assert np.allclose([float(cx), float(cy), float(r)], [pair["circle"][k] for k in ("cx", "cy", "r")], atol=1e-6), pair["name"]


def _disc(width: int = 900, height: int = 640, cx: float = 450, cy: float = 320, r: float = 290, brightness: float = 1.0, notch: bool = False,
          seed: int = 0) -> np.ndarray:  # fmt: skip
    from tests.test_preprocess import disc_frame

    return disc_frame(width, height, cx, cy, r, brightness, noise=3.0, notch=notch, seed=seed)[..., ::-1].copy()  # BGR -> RGB


def test_geometric_port_on_awkward_photographs(tmp_path: Path, jvm: list[str]) -> None:
    """The hold-out-style cases of tests/test_preprocess.py, written in the awkward file formats and
    decoded by mobiledr.data.geometry.decode (on a phone, Android's decoder and ExifInterface do that
    part: platform/Images.kt); the port gets the decoded pixels and must crop them as Python does."""
    from PIL import Image

    spec = PreprocessSpec(size=96)
    frames = {
        "dim": _disc(brightness=0.12),
        "notched": _disc(notch=True, seed=1),
        "cut_off": _disc(cx=520, cy=330, r=360, seed=2),  # taller than the frame
        "off_centre": _disc(cx=300, cy=360, r=250, seed=3),
        "small_frame": _disc(width=300, height=220, cx=150, cy=110, r=100, seed=4),
    }
    files: dict[str, Path] = {}
    for name, rgb in frames.items():
        Image.fromarray(rgb).save(files.setdefault(name, tmp_path / f"{name}.png"))
    grey = _disc(seed=5)[..., 0]
    Image.fromarray(grey).save(files.setdefault("grey", tmp_path / "grey.png"))
    Image.fromarray((grey.astype(np.uint16) * 257)).save(files.setdefault("sixteen_bit", tmp_path / "sixteen_bit.png"))
    rgba = np.dstack([_disc(seed=6), np.full((640, 900), 255, np.uint8)])
    rgba[:, :60, 3] = 0  # a transparent strip composites on black
    Image.fromarray(rgba, "RGBA").save(files.setdefault("rgba", tmp_path / "rgba.png"))
    rotated = Image.fromarray(_disc(cx=380, seed=7))
    exif = rotated.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    rotated.save(files.setdefault("exif_rotated", tmp_path / "exif_rotated.jpg"), exif=exif, quality=92)
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(files.setdefault("black", tmp_path / "black.png"))

    args, expected = [], {}
    for name, path in files.items():
        rgb = decode(path)
        write_png(tmp_path / f"{name}.decoded.png", rgb)
        args += [str(tmp_path / f"{name}.decoded.png"), str(tmp_path / f"{name}.expected.png")]
        try:
            result = geometric(rgb, spec)
        except Exception as exc:  # the rejection Python gives (ImageRejected)
            expected[name] = str(exc)
            write_png(tmp_path / f"{name}.expected.png", rgb)
            continue
        write_png(tmp_path / f"{name}.expected.png", result.image)
        expected[name] = result.circle
    assert decode(files["exif_rotated"]).shape[:2] == (900, 640)  # the orientation is applied before the port sees it
    lines = _check(jvm, "geometric", str(spec.size), spec.mode, str(spec.crop_tolerance), *args)
    assert len(lines) == len(files)
    for (name, want), line in zip(expected.items(), lines, strict=True):
        if isinstance(want, str):
            assert line == f"rejected: {want}", name
            continue
        difference, cx, cy, r = line.split()
        assert int(difference) <= 1, f"{name}: {difference} grey levels"
        assert np.allclose([float(cx), float(cy), float(r)], [want.cx, want.cy, want.r], atol=1e-6), (name, line, want)
    assert lines[-1] == "rejected: no fundus disc found (image is black)"


def test_manifest_reader_reads_what_python_wrote(tiny_bundle: Path, jvm: list[str], tmp_path: Path) -> None:
    raw = json.loads((tiny_bundle / "manifest.json").read_text())
    read = json.loads(_check(jvm, "manifest", str(tiny_bundle / "manifest.json"))[0])
    assert read["model"] == {"name": raw["model"]["name"], "input_size": raw["model"]["input_size"]}
    assert read["labels"] == raw["labels"] and read["label_scheme"] == raw["label_scheme"]
    assert read["decision"] == {k: raw["decision"][k] for k in ("rule", "threshold", "positive_index", "temperature")}
    assert read["ood"] == raw["ood"]
    geometric_spec = raw["preprocessing"]["geometric"]
    assert read["geometric"] == {k: geometric_spec[k] for k in ("size", "mode", "crop_tolerance")}
    assert read["input"] == {"name": raw["input"]["name"], "shape": raw["input"]["shape"]}
    assert read["outputs"] == [{"name": o["name"], "shape": o["shape"]} for o in raw["outputs"]]
    assert read["files"] == raw["files"]
    assert read["golden"]["geometric_max_abs_difference"] == raw["golden"]["tolerances"]["geometric_max_abs_difference"]
    assert read["golden"]["count"] == raw["golden"]["count"] and read["golden"]["bundled_program"] == raw["golden"].get("bundled_program")
    for got, want in zip(read["artifacts"], raw["artifacts"], strict=True):
        assert got == {k: want.get(k, {}) for k in got}, want["file"]
    # every limit the apps apply comes from the manifest, which the parity policy fills
    policy, outputs = Policy.load(), [o["name"] for o in raw["outputs"]]
    assert any(a["self_check"] for a in read["artifacts"])
    for artifact in read["artifacts"]:
        assert artifact["self_check"] == policy.self_check(artifact["precision"], outputs), artifact["file"]

    # a manifest of another schema version is refused with a one-line reason
    (tmp_path / "manifest.json").write_text(json.dumps(raw | {"schema_version": 2}))
    done = subprocess.run([*jvm, "manifest", str(tmp_path / "manifest.json")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "manifest schema version 2 is not 1" in done.stderr


def _record(bundle: Path, manifest: Manifest, entries: list[dict], path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The desktop runtime's outputs for the golden images, as the JVM check's recorded runner reads them."""
    from mobiledr.runners import artifact_runner

    with np.load(bundle / manifest.golden["vectors"]) as vectors:
        images = vectors["image"]
    recorded = {}
    for entry in entries:
        with artifact_runner(bundle, manifest, entry, threads=1) as runner:
            recorded[entry["file"]] = runner.run(images)
    np.savez(path, **{f"{file}/{name}": np.ascontiguousarray(out, dtype=np.float32) for file, outputs in recorded.items() for name, out in outputs.items()})
    return recorded


def _golden_verdict(manifest: Manifest, entry: dict, outputs: dict[str, np.ndarray], golden: dict[str, np.ndarray]) -> str:
    """What the golden-vector self-check must conclude: the artifact's manifest limits, else the decisions."""
    limits = entry.get("self_check", {})
    if limits:
        ok = all(np.abs(outputs[n] - golden[n]).max() <= lim["max_abs"] for n, lim in limits.items() if "max_abs" in lim)
        ok &= all((np.abs(outputs[n] - golden[n]) / np.maximum(np.abs(golden[n]), 1e-6)).max() <= lim["max_rel"] for n, lim in limits.items() if "max_rel" in lim)
        return "passed" if ok else "failed"
    positive, threshold = manifest.decision["positive_index"], manifest.decision["threshold"]
    return "passed" if np.array_equal(outputs["probs"][:, positive] >= threshold, golden["probs"][:, positive] >= threshold) else "failed"


def test_benchmark_self_checks_and_results_writer(tiny_bundle: Path, jvm: list[str], tmp_path: Path) -> None:
    from mobiledr.io import schema_error

    manifest = Manifest.load(tiny_bundle)
    entries = [a for a in manifest.artifacts if a["kind"] == "pte" and a["backend"] == "xnnpack"]
    recorded = _record(tiny_bundle, manifest, entries, tmp_path / "outputs.npz")
    with np.load(tiny_bundle / manifest.golden["vectors"]) as vectors:
        golden = {name: vectors[name] for name in vectors.files}
    schema = json.loads(BENCH_SCHEMA.read_text())
    for entry in entries:
        results = tmp_path / f"{entry['file']}.results.json"
        _check(jvm, "bench", str(tiny_bundle), str(tmp_path / "outputs.npz"), str(results), entry["file"])
        report = json.loads(results.read_text())
        assert schema_error(BENCH_SCHEMA, report) is None, schema_error(BENCH_SCHEMA, report)
        assert schema["$id"] and report["schema"] == "mobiledr-bench/1"
        (row,) = report["rows"]
        assert row["artifact"] == entry["file"] and row["status"] == "ok" and len(row["latencies_ms"]) == 3, row  # raw: the statistics are mobiledr bench's
        assert not {"latency_ms", "iterations", "throughput_ips"} & set(row)
        checks = row["checks"]
        assert checks["integrity"]["status"] == "passed" and checks["geometric"]["status"] == "passed", checks
        assert checks["geometric"]["max_abs_error"] <= manifest.golden["tolerances"]["geometric_max_abs_difference"]
        assert checks["golden_vectors"]["status"] == _golden_verdict(manifest, entry, recorded[entry["file"]], golden), checks["golden_vectors"]
        assert checks["golden_vectors"]["cases"] == manifest.golden["count"]
        if "self_check" in entry:
            for name in entry["self_check"]:
                assert f".{name} " in checks["golden_vectors"]["detail"], checks["golden_vectors"]["detail"]


def test_the_apps_limits_follow_the_manifest(tiny_bundle: Path, jvm: list[str], tmp_path: Path) -> None:
    """A constant Python changes reaches the app: a tightened limit in the manifest (what a changed
    tolerances.yaml exports) fails the same outputs; and a tampered artifact fails integrity."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = Manifest.load(bundle)
    entry = next(a for a in manifest.artifacts if a.get("self_check"))
    _record(bundle, manifest, [entry], tmp_path / "outputs.npz")
    raw = json.loads((bundle / "manifest.json").read_text())
    for artifact in raw["artifacts"]:
        if artifact["file"] == entry["file"]:
            artifact["self_check"]["probs"] = {"max_abs": 0.0}
    (bundle / "manifest.json").write_text(json.dumps(raw))
    _check(jvm, "bench", str(bundle), str(tmp_path / "outputs.npz"), str(tmp_path / "tight.json"), entry["file"])
    (row,) = json.loads((tmp_path / "tight.json").read_text())["rows"]
    golden = row["checks"]["golden_vectors"]
    with np.load(bundle / manifest.golden["vectors"]) as vectors, np.load(tmp_path / "outputs.npz") as out:
        exact = np.array_equal(out[f"{entry['file']}/probs"], vectors["probs"])
    assert golden["status"] == ("passed" if exact else "failed") and "max_abs.probs" in golden["detail"] and "0" in golden["detail"]
    assert "self-check golden_vectors failed" in (row.get("warning") or "") or exact

    data = bytearray((bundle / entry["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / entry["file"]).write_bytes(bytes(data))
    _check(jvm, "bench", str(bundle), str(tmp_path / "outputs.npz"), str(tmp_path / "tampered.json"), entry["file"])
    (row,) = json.loads((tmp_path / "tampered.json").read_text())["rows"]
    assert row["status"] == "failed" and row["checks"]["integrity"]["status"] == "failed" and "sha256" in row["error"], row


def test_decisions_follow_the_manifest(tiny_bundle: Path, jvm: list[str], tmp_path: Path) -> None:
    """ScreeningModel.decide and the OOD gate on the reference outputs: the manifest's rule, threshold
    and OOD threshold as Python applies them."""
    manifest = Manifest.load(tiny_bundle)
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (64, 1))
    outputs = {"probs": np.hstack([1 - probs, probs]).astype(np.float32), "ood_score": rng.normal(manifest.ood["threshold"], 5, 64).astype(np.float32)}
    np.savez(tmp_path / "decide.npz", **outputs)
    lines = _check(jvm, "decide", str(tiny_bundle / "manifest.json"), str(tmp_path / "decide.npz"))
    positive, threshold = manifest.decision["positive_index"], manifest.decision["threshold"]
    for k, line in enumerate(lines):
        index, refer, out = line.split()
        want_refer = bool(outputs["probs"][k, positive] >= threshold)
        assert refer == str(want_refer).lower() and int(index) == (positive if want_refer else 1 - positive)
        assert out == str(bool(outputs["ood_score"][k] < manifest.ood["threshold"])).lower()
    assert len(lines) == 64
