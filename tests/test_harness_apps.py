"""The phone harness apps (android_harness/, ios_harness/): what can be checked without an Android SDK
or a Swift compiler. XML is well-formed; Kotlin and Swift parse (tree-sitter grammars); both sides of
the contract with `mobiledr bench` agree (intent extras, activity, results file, launch arguments); the
results JSON the apps write validates against the one bench schema, and every key their writers put in
a row is a schema property; their golden-vector rules are the parity policy's.

Recorded examples (tests/fixtures/harness/): ``android_results.json`` was written by the Android
harness's own Kotlin code (Benchmark, SelfChecks, ResultsWriter) run on a JVM against the demo bundle,
with a runner replaying the desktop runtimes' outputs; ``ios_results.json`` is a hand-written example
in the format the Swift ``BenchReport`` encodes. Neither holds phone measurements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mobiledr.bench import contract
from mobiledr.bench.report import SCHEMA_PATH, validation_error

ROOT = Path(__file__).resolve().parents[1]
ANDROID = ROOT / "android_harness"
IOS = ROOT / "ios_harness"
KOTLIN_SRC = ANDROID / "app/src/main/java/org/mobiledr/harness"
SWIFT_SRC = IOS / "Sources/MobileDRKit"
FIXTURES = ROOT / "tests/fixtures/harness"
ANDROID_NS = "{http://schemas.android.com/apk/res/android}"
COMPUTED_IN_PYTHON = {"latency_ms", "iterations", "throughput_ips"}  # from latencies_ms, by mobiledr.bench.worker.latency_fields
EXTRA_GETTERS = {"getStringExtra": "--es", "getIntExtra": "--ei"}  # Intent getter -> am start flag


# --- tree-sitter helpers -------------------------------------------------------------------------


def _parser(grammar: str) -> Any:
    ts = pytest.importorskip("tree_sitter")
    module = pytest.importorskip(f"tree_sitter_{grammar}")
    return ts.Parser(ts.Language(module.language()))


@pytest.fixture(scope="module")
def kotlin() -> Any:
    return _parser("kotlin")


@pytest.fixture(scope="module")
def swift() -> Any:
    return _parser("swift")


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(node: Any) -> str:
    return node.text.decode()


def _string(node: Any) -> str | None:
    """The value of a plain string literal (Kotlin string_literal, Swift line_string_literal)."""
    if node.type not in ("string_literal", "line_string_literal"):
        return None
    parts = [c for c in node.children if c.type not in ('"',)]
    if any(c.type not in ("string_content", "line_str_text") for c in parts):
        return None  # interpolated
    return "".join(_text(c) for c in parts)


def _parse(parser: Any, path: Path) -> Any:
    return parser.parse(path.read_bytes()).root_node


def _syntax_errors(root: Any) -> list[str]:
    return [f"line {n.start_point[0] + 1}: {n.type} {_text(n)[:40]!r}" for n in _walk(root) if n.type == "ERROR" or n.is_missing]


def _kotlin_function(root: Any, name: str) -> Any:
    for node in _walk(root):
        if node.type == "function_declaration" and any(c.type == "identifier" and _text(c) == name for c in node.children):
            return node
    raise AssertionError(f"no Kotlin function {name}")


def _kotlin_calls(root: Any) -> Iterator[tuple[str, list[Any]]]:
    """(called name, argument expressions) for every call: `f(a)` and `x.f(a)`."""
    for node in _walk(root):
        if node.type != "call_expression":
            continue
        callee = node.children[0]
        name = _text(callee.children[-1]) if callee.type == "navigation_expression" else _text(callee)
        arguments = next((c for c in node.children if c.type == "value_arguments"), None)
        values = [a.children[-1] for a in arguments.children if a.type == "value_argument"] if arguments else []
        yield name, values


def _swift_type(root: Any, name: str) -> Any:
    for node in _walk(root):
        if node.type == "class_declaration" and any(c.type == "type_identifier" and _text(c) == name for c in node.children):
            return node
    raise AssertionError(f"no Swift type {name}")


def _swift_coding_keys(root: Any, type_name: str) -> set[str]:
    """The JSON keys a Swift Codable type uses: its `CodingKeys` cases, raw values where given."""
    body = next(c for c in _swift_type(root, type_name).children if c.type == "class_body")
    keys_enum = next(n for n in body.children if n.type == "class_declaration" and "CodingKeys" in [_text(c) for c in n.children])
    keys = set()
    for entry in (n for n in _walk(keys_enum) if n.type == "enum_entry"):
        children = [c for c in entry.children if c.type not in ("case", ",")]
        i = 0
        while i < len(children):
            if children[i].type == "simple_identifier":
                if i + 2 < len(children) and children[i + 1].type == "=":
                    keys.add(_string(children[i + 2]))
                    i += 3
                    continue
                keys.add(_text(children[i]))
            i += 1
    return keys


# --- shared facts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _properties(schema: dict[str, Any], where: str) -> set[str]:
    node = schema if where == "report" else schema["$defs"][where] if where in schema["$defs"] else schema["properties"][where]
    return set(node["properties"])


def _required(schema: dict[str, Any], where: str) -> set[str]:
    node = schema if where == "report" else schema["$defs"][where] if where in schema["$defs"] else schema["properties"][where]
    return set(node.get("required", []))


# --- Android --------------------------------------------------------------------------------------


def test_android_xml_is_well_formed() -> None:
    files = sorted((ANDROID / "app/src/main").rglob("*.xml"))
    assert len(files) >= 4  # manifest, layout, strings, file paths
    for path in files:
        ET.parse(path)  # raises on malformed XML


def test_android_manifest_declares_the_contract_activity(kotlin: Any) -> None:
    build = _parse(kotlin, ANDROID / "app/build.gradle.kts")
    assignments = {}
    for node in _walk(build):
        if node.type == "assignment" and len(node.children) == 3 and _string(node.children[2]) is not None:
            assignments[_text(node.children[0])] = _string(node.children[2])
    assert assignments["namespace"] == contract.APP_PACKAGE
    assert assignments["applicationId"] == contract.APP_PACKAGE

    application = ET.parse(ANDROID / "app/src/main/AndroidManifest.xml").getroot().find("application")
    activities = {}
    for activity in application.findall("activity"):
        name = activity.get(f"{ANDROID_NS}name")
        activities[contract.APP_PACKAGE + name if name.startswith(".") else name] = activity
    benchmark = activities[contract.APP_ACTIVITY]
    assert benchmark.get(f"{ANDROID_NS}exported") == "true"  # adb shell am start -n needs it
    launcher = activities[f"{contract.APP_PACKAGE}.ScreeningActivity"]
    assert launcher.find("intent-filter/category").get(f"{ANDROID_NS}name") == "android.intent.category.LAUNCHER"

    source = _parse(kotlin, KOTLIN_SRC / "BenchmarkActivity.kt")
    package = _text(next(n for n in _walk(source) if n.type == "qualified_identifier"))
    classes = [_text(c) for n in _walk(source) if n.type == "class_declaration" for c in n.children if c.type == "identifier"]
    assert f"{package}.{classes[0]}" == contract.APP_ACTIVITY


@pytest.mark.parametrize("root", [ANDROID, IOS], ids=["kotlin", "swift"])
def test_sources_parse_without_errors(root: Path, kotlin: Any, swift: Any) -> None:
    files = [p for p in sorted(root.rglob("*")) if p.suffix in (".kt", ".kts", ".swift") and "native" not in p.relative_to(root).parts]
    assert len(files) >= 10
    problems = {str(p.relative_to(ROOT)): _syntax_errors(_parse(swift if p.suffix == ".swift" else kotlin, p)) for p in files}
    assert {p: e for p, e in problems.items() if e} == {}


def test_the_intent_extras_are_the_contract(kotlin: Any) -> None:
    root = _parse(kotlin, KOTLIN_SRC / "BenchmarkActivity.kt")
    read = {}
    for name, arguments in _kotlin_calls(root):
        if name.startswith("get") and name.endswith("Extra"):
            assert name in EXTRA_GETTERS, f"{name}: the contract has only --es and --ei extras"
            key = _string(arguments[0])
            assert key is not None, f"{name} with a computed name"
            assert key not in read, f"{key} read twice"
            read[key] = EXTRA_GETTERS[name]
    assert read == contract.APP_EXTRAS


def test_the_results_file_is_the_contract(kotlin: Any) -> None:
    root = _parse(kotlin, KOTLIN_SRC / "BenchmarkActivity.kt")
    constants = {}
    for node in _walk(root):
        if node.type == "property_declaration":
            name = next((_text(c.children[0]) for c in node.children if c.type == "variable_declaration"), None)
            value = next((_string(c) for c in node.children if _string(c) is not None), None)
            constants[name] = value
    assert f"files/{constants['RESULTS']}" == contract.APP_RESULTS
    assert any(name == "File" and _text(arguments[0]) == "filesDir" and _text(arguments[1]) == "RESULTS" for name, arguments in _kotlin_calls(root))


def test_the_android_readme_documents_the_extras() -> None:
    section = (ANDROID / "README.md").read_text().split("## Benchmark mode", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `(--e[si])` \|", section, flags=re.M)
    assert dict(rows) == contract.APP_EXTRAS
    assert contract.DEVICE_DIR in section and contract.APP_RESULTS in section


def test_kotlin_results_writer_keys_are_schema_properties(kotlin: Any, schema: dict[str, Any]) -> None:
    root = _parse(kotlin, KOTLIN_SRC / "bench/ResultsWriter.kt")

    def keys(function: str) -> set[str]:
        """First arguments of JSONObject.put(key, value) (JSONArray.put has one argument)."""
        found = {_string(arguments[0]) for name, arguments in _kotlin_calls(_kotlin_function(root, function)) if name == "put" and len(arguments) == 2}
        assert None not in found, f"{function}: a key that is not a string literal"
        return found

    row = keys("rowJson")
    assert row <= _properties(schema, "row") and _required(schema, "row") <= row
    # the phone writes every row field, pss_mb and checks included, except the statistics: it reports
    # raw timings (latencies_ms) and mobiledr bench computes latency_ms, iterations and throughput_ips
    assert row == _properties(schema, "row") - COMPUTED_IN_PYTHON
    assert keys("checkJson") == _properties(schema, "check")
    settings = keys("settingsJson")
    assert settings <= _properties(schema, "settings") and _required(schema, "settings") <= settings
    report = keys("reportJson") - {"name", "input_size"}  # the nested model object
    assert report <= _properties(schema, "report") and _required(schema, "report") <= report
    device = {_string(a[0]) for n, a in _kotlin_calls(_kotlin_function(root, "deviceJson")) if n == "put" and len(a) == 2}
    assert {"device", "kind"} <= device  # plus free-form facts (devices items allow any property)


def test_no_app_computes_latency_statistics() -> None:
    """Percentiles, CV and the noisy flag are computed once, in Python (the C++ runner, Kotlin and Swift report raw timings)."""
    sources = [*KOTLIN_SRC.rglob("*.kt"), *SWIFT_SRC.rglob("*.swift"), *(ANDROID / "native/src").glob("*.*")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"LatencyStats|latency_stats|\bp50\b|\bp99\b|noisyCV|NOISY_CV|coefficient of variation", text), path


def test_swift_results_keys_are_schema_properties(swift: Any, schema: dict[str, Any]) -> None:
    root = _parse(swift, SWIFT_SRC / "Bench/Results.swift")
    row = _swift_coding_keys(root, "BenchRow")
    assert row <= _properties(schema, "row") and _required(schema, "row") <= row
    assert "latencies_ms" in row and not row & COMPUTED_IN_PYTHON  # raw timings; the statistics are mobiledr bench's
    assert _swift_coding_keys(root, "CheckResult") == _properties(schema, "check")
    report = _swift_coding_keys(root, "BenchReport")
    assert report <= _properties(schema, "report") and _required(schema, "report") <= report
    assert _swift_coding_keys(root, "Settings") >= _required(schema, "settings")
    assert _swift_coding_keys(root, "ModelInfo") == {"name", "input_size"}


@pytest.mark.parametrize("name, kind", [("android_results.json", "android"), ("ios_results.json", "ios")])
def test_recorded_results_validate(name: str, kind: str, schema: dict[str, Any]) -> None:
    data = json.loads((FIXTURES / name).read_text())
    assert validation_error(data) is None
    assert data["schema"] == schema["properties"]["schema"]["const"]
    assert [d["kind"] for d in data["devices"]] == [kind]
    rows = data["rows"]
    assert {r["status"] for r in rows} >= {"ok", "skipped"}
    for row in (r for r in rows if r["status"] == "ok"):
        assert {"integrity", "geometric", "golden_vectors"} <= set(row["checks"])
        assert row["device"] == data["devices"][0]["device"]
    broken = json.loads(json.dumps(data))
    broken["rows"][0]["compile_ms"] = 1.0  # rows have additionalProperties: false
    assert validation_error(broken) is not None


def test_recorded_rows_use_only_keys_the_writers_write(kotlin: Any, swift: Any) -> None:
    writer = _kotlin_function(_parse(kotlin, KOTLIN_SRC / "bench/ResultsWriter.kt"), "rowJson")
    kotlin_keys = {_string(a[0]) for n, a in _kotlin_calls(writer) if n == "put" and len(a) == 2}
    swift_keys = _swift_coding_keys(_parse(swift, SWIFT_SRC / "Bench/Results.swift"), "BenchRow")
    for name, keys in (("android_results.json", kotlin_keys), ("ios_results.json", swift_keys)):
        for row in json.loads((FIXTURES / name).read_text())["rows"]:
            assert set(row) <= keys, f"{name}: {set(row) - keys}"


def _policy_rules() -> dict[str, set[tuple[str, str, float]]]:
    policy = yaml.safe_load((ROOT / "mobiledr/parity/tolerances.yaml").read_text())
    return {
        precision: {(measure, output, float(limit)) for measure in ("max_abs", "max_rel") for output, limit in table.get(measure, {}).items()}
        for precision, table in policy.items()
        if any(m in table for m in ("max_abs", "max_rel"))
    }


def test_kotlin_golden_rules_come_from_the_manifest(kotlin: Any) -> None:
    """No copy of the policy's limits in the app: SelfChecks builds its rules from the artifact's
    manifest `self_check` (tests/test_kotlin_jvm.py runs it against a changed manifest)."""
    root = _parse(kotlin, KOTLIN_SRC / "bench/SelfChecks.kt")
    rules = [a for name, a in _kotlin_calls(root) if name == "Rule"]
    assert rules and all(len(a) == 3 and a[2].type in ("identifier", "simple_identifier") for a in rules), [_text(x) for a in rules for x in a]
    assert '"self_check"' in (KOTLIN_SRC / "bundle/Manifest.kt").read_text()
    assert "artifact.selfCheck" in (KOTLIN_SRC / "bench/SelfChecks.kt").read_text()


def test_swift_golden_rules_are_the_parity_policy(swift: Any) -> None:
    root = _parse(swift, SWIFT_SRC / "Bench/SelfChecks.swift")
    literal = next(n for n in _walk(root) if n.type == "dictionary_literal")
    tables: dict[str, set[tuple[str, str, float]]] = {}
    children = [c for c in literal.children if c.type not in ("[", "]", ",", ":")]
    for key, value in zip(children[::2], children[1::2], strict=True):
        rules = set()
        for call in (n for n in _walk(value) if n.type == "call_expression" and _text(n.children[0]) == "Rule"):
            arguments = {_text(a.children[0]): a.children[-1] for a in _walk(call) if a.type == "value_argument"}
            rules.add((_string(arguments["measure"]), _string(arguments["output"]), float(_text(arguments["limit"]))))
        tables[_string(key)] = rules
    assert tables == _policy_rules()


def test_runtime_versions_follow_the_exporters() -> None:
    """The phone runtimes are the ones that exported the artifacts (pyproject's pins)."""
    pins = dict(re.findall(r'"(executorch|onnxruntime)[=~]=([\d.]+)"', (ROOT / "pyproject.toml").read_text()))
    catalog = dict(re.findall(r'^(\w+) = "([^"]+)"', (ANDROID / "gradle/libs.versions.toml").read_text(), flags=re.M))  # [versions]
    assert catalog["executorch"] == pins["executorch"]
    assert catalog["onnxruntime"].split(".")[:2] == pins["onnxruntime"].split(".")[:2]
    branch = re.search(r'branch: "swiftpm-([\d.]+)"', (IOS / "Package.swift").read_text()).group(1)
    assert branch.split(".")[:2] == pins["executorch"].split(".")[:2]


def test_the_ci_workflow_builds_the_debug_apk() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/android-harness.yml").read_text())
    job = workflow["jobs"]["assemble-debug"]
    assert job["runs-on"] == "ubuntu-latest" and job["defaults"]["run"]["working-directory"] == "android_harness"
    assert any("assembleDebug" in step.get("run", "") for step in job["steps"])
    gradle = re.search(r"distributions/gradle-([\d.]+)-bin", (ANDROID / "gradle/wrapper/gradle-wrapper.properties").read_text()).group(1)
    assert all(step.get("with", {}).get("gradle-version", gradle) == gradle for step in job["steps"])


# --- iOS ------------------------------------------------------------------------------------------


def test_ios_launch_arguments_match_the_readme(swift: Any) -> None:
    root = _parse(swift, SWIFT_SRC / "Bench/LaunchArguments.swift")
    parsed = set()
    for entry in (n for n in _walk(root) if n.type == "switch_entry"):
        for pattern in (c for c in entry.children if c.type == "switch_pattern"):
            value = next((_string(n) for n in _walk(pattern) if _string(n) is not None), None)
            if value and value.startswith("--"):
                parsed.add(value)
    section = (IOS / "README.md").read_text().split("## Benchmark mode", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(--[\w-]+)` \|", section, flags=re.M))
    assert parsed == documented == {"--bundle", "--artifact", "--compute-units", "--iterations", "--warmup"}


def test_ios_compute_units_are_the_documented_names(swift: Any) -> None:
    root = _parse(swift, SWIFT_SRC / "Model/Runner.swift")
    function = next(n for n in _walk(root) if n.type == "function_declaration" and "computeUnits" in [_text(c) for c in n.children])
    names = {_string(n) for e in _walk(function) if e.type == "switch_entry" for n in _walk(e) if n.type == "switch_pattern" for n in _walk(n) if _string(n)}
    assert names == {"cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all"}
    section = (IOS / "README.md").read_text().split("## Benchmark mode", 1)[1]
    assert all(f"`{name}`" in section for name in names)
