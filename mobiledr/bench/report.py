"""Benchmark results: schema validation, the terminal table, CSV, Markdown, the PNG chart, and the
comparison of two runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.table import Table

from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_csv, atomic_write_json, atomic_write_text, read_json, schema_error
from mobiledr.plots import save_figure
from mobiledr.reporting import json_safe, md_table

SCHEMA_PATH = Path(__file__).with_name("bench.schema.json")
CSV_COLUMNS = ["device", "artifact", "format", "precision", "runtime", "backend", "threads", "status", "size_bytes", "params", "macs",
               "load_ms", "first_ms", "mean", "std", "min", "p50", "p90", "p99", "max", "cv", "throughput_ips", "baseline_rss_mb", "rss_mb", "peak_rss_mb", "pss_mb", "checks", "error"]  # fmt: skip


def validation_error(data: Any) -> str | None:
    """The first violation of the bench schema as 'where: what', or None."""
    return schema_error(SCHEMA_PATH, data)


def load_results(path: Path) -> dict[str, Any]:
    data = read_json(path, "benchmark results")
    problem = validation_error(data)
    if problem:
        raise MobiledrError(f"{path}: not mobiledr benchmark results: {problem}")
    return data


def _ms(row: dict[str, Any], key: str) -> str:
    return f"{row['latency_ms'][key]:.2f}" if row["status"] == "ok" else "-"


def _size(row: dict[str, Any]) -> str:
    return "-" if row.get("size_bytes") is None else f"{row['size_bytes'] / 1e6:.2f}"


def checks_text(row: dict[str, Any]) -> str:
    """The self-checks a row's measuring program ran, e.g. 'bundled_program passed (3 cases)'."""
    return "; ".join(f"{name} {c['status']}" + (f" ({c['cases']} cases)" if "cases" in c else "") for name, c in row.get("checks", {}).items())


HEADER = ["device", "artifact", "runtime", "threads", "MB", "load ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "mean ms", "cv", "+RSS MB", "status", "self-checks"]


def _cells(row: dict[str, Any]) -> list[str]:
    ok = row["status"] == "ok"
    return [row["device"], row["artifact"], row["runtime"], str(row["threads"]), _size(row),
            f"{row['load_ms']:.0f}" if ok else "-", f"{row['first_ms']:.1f}" if ok else "-",
            _ms(row, "p50"), _ms(row, "p90"), _ms(row, "p99"), _ms(row, "mean"),
            f"{row['latency_ms']['cv']:.0%}" if ok else "-", f"{row['rss_mb'] - row['baseline_rss_mb']:.0f}" if ok else "-",
            row["status"] if ok and not row.get("warning") else f"{row['status']}: {row.get('error') or row.get('warning')}",
            checks_text(row) or "-"]  # fmt: skip


def terminal_table(report: dict[str, Any]) -> Table:
    """The columns that fit a terminal (the Markdown and CSV have them all); the device column when
    the report holds several devices."""
    several = len(report["devices"]) > 1
    columns = ["artifact", "runtime", "thr", "MB", "load ms", "p50 ms", "p90 ms", "+RSS MB", "status"]
    table = Table(*(["device"] if several else []), *columns, title=f"bench: {report['model']['name']}")
    for row in report["rows"]:
        cells = _cells(row)
        status = row["status"] if row["status"] != "ok" else f"noisy (cv {row['latency_ms']['cv']:.0%})" if row.get("warning") else "ok"
        table.add_row(*(cells[:1] if several else []), cells[1], cells[2], cells[3], cells[4], cells[5], cells[7], cells[8], cells[12], status)
    return table


def markdown(report: dict[str, Any], chart: str | None) -> str:
    settings = report["settings"]
    lines = [f"# Benchmark: {report['model']['name']} at {report['model']['input_size']} px", "",
             f"- Bundle: `{report['bundle']}`; created {report['created']}, mobiledr {report['mobiledr_version']}",
             f"- Settings: {settings['warmup']} warm-up, {settings['iters']} timed inferences (at least {settings.get('min_time_s', 0)} s), "
             f"pinned to CPUs {settings.get('pin') or 'none'}; one process per row; one image per inference"]  # fmt: skip
    for device in report["devices"]:
        facts = ", ".join(f"{k} {v}" for k, v in device.items() if k not in ("device", "kind"))
        lines.append(f"- Device `{device['device']}` ({device['kind']}): {facts}")
    lines += ["", *md_table(HEADER, [_cells(r) for r in report["rows"]])]
    if chart:
        lines += [f"![latency per artifact and runtime; latency against size]({chart})", ""]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    """p50 latency per row (bars, p90 as whiskers) and p50 latency against file size."""
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    fig = Figure(figsize=(11, max(3.0, 0.35 * len(rows) + 1.5)))
    bars, scatter = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{r['artifact']} ({r['runtime']}, {r['threads']}T)" + (f" [{r['device']}]" if len(report["devices"]) > 1 else "") for r in rows]
    p50 = [r["latency_ms"]["p50"] for r in rows]
    whiskers = [[0] * len(rows), [r["latency_ms"]["p90"] - r["latency_ms"]["p50"] for r in rows]]
    bars.barh(range(len(rows)), p50, xerr=whiskers, color=["#4c72b0" if r["precision"] == "fp32" else "#dd8452" for r in rows])
    bars.set_yticks(range(len(rows)), labels, fontsize=8)
    bars.invert_yaxis()
    bars.set_xscale("log")  # eager PyTorch is tens of times slower than the runtimes
    bars.set_xlabel("latency p50 (ms, log scale; whisker to p90)")
    for runtime in sorted({r["runtime"] for r in rows if r.get("size_bytes")}):
        points = [r for r in rows if r["runtime"] == runtime and r.get("size_bytes")]
        scatter.scatter([r["size_bytes"] / 1e6 for r in points], [r["latency_ms"]["p50"] for r in points], label=runtime)
    scatter.set_xlabel("file size (MB)")
    scatter.set_ylabel("latency p50 (ms)")
    scatter.legend(fontsize=8)
    save_figure(fig, path)


def write_results(report: dict[str, Any], out: Path, name: str = "bench") -> list[Path]:
    """``out/NAME.json`` (validated), ``.csv``, ``.md`` and ``.png``; returns the paths written."""
    data = json_safe(report)
    problem = validation_error(data)
    if problem:
        raise MobiledrError(f"internal error: benchmark results do not match their schema: {problem}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{name}.json", data)
    flat = [{**r, **r.get("latency_ms", {}), "checks": checks_text(r)} for r in report["rows"]]
    atomic_write_csv(out / f"{name}.csv", CSV_COLUMNS, ([("" if f.get(c) is None else f[c]) for c in CSV_COLUMNS] for f in flat))
    has_chart = any(r["status"] == "ok" for r in report["rows"])
    if has_chart:
        chart(report, out / f"{name}.png")
    atomic_write_text(out / f"{name}.md", markdown(report, f"{name}.png" if has_chart else None))
    return [out / f"{name}.{ext}" for ext in ("json", "csv", "md", *(["png"] if has_chart else []))]


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows present in both runs (same device, artifact, runtime, threads) with after/before ratios of
    p50 and mean latency and of load time."""
    key = ("device", "artifact", "runtime", "threads")
    old = {tuple(r[k] for k in key): r for r in before["rows"] if r["status"] == "ok"}
    matched = []
    for row in after["rows"]:
        base = old.get(tuple(row[k] for k in key))
        if base is None or row["status"] != "ok":
            continue
        matched.append({**{k: row[k] for k in key}, "p50_before": base["latency_ms"]["p50"], "p50_after": row["latency_ms"]["p50"],
                        "p50_ratio": row["latency_ms"]["p50"] / base["latency_ms"]["p50"],
                        "mean_ratio": row["latency_ms"]["mean"] / base["latency_ms"]["mean"], "load_ratio": row["load_ms"] / base["load_ms"]})  # fmt: skip
    return matched
