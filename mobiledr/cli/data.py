"""``mobiledr data ...``: synthesise, inspect, prepare, split and preview data sets.

Heavy modules (torch, OpenCV, scikit-learn, matplotlib) are imported inside the commands, so
``mobiledr --help`` and argument errors answer at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mobiledr.data.labels import SCHEMES, case_definition, get_scheme
from mobiledr.data.readers import READERS, read_dataset
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError
from mobiledr.progress import progress_bar, stderr

console = Console()
app = typer.Typer(help="Data sets: synthesise, inspect, prepare (cache), split, preview.", no_args_is_help=True)

DATASET_HELP = f"Data set layout: {', '.join(READERS)}."
SCHEME_HELP = f"Label scheme: {', '.join(SCHEMES)}, or 'classes' (a class-folder data set's own classes)."


def _dataset(name: str) -> str:
    if name not in READERS:
        raise MobiledrError(f"unknown dataset {name!r}; known: {', '.join(READERS)}")
    return name


def _spec(size: int, mode: str) -> PreprocessSpec:
    return PreprocessSpec.for_oct(size) if mode == "oct" else PreprocessSpec(size=size, mode=mode)


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("")
    table.add_column("images", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, f"{count:,}")
    return table


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (APTOS layout: train.csv + train_images/)."),
    n: int = typer.Option(200, "--n", min=1, help="Number of images (two eyes per fake patient)."),
    size: int = typer.Option(512, "--size", min=64, help="Frame height in pixels (width is 4/3 of it)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes identical files."),
) -> None:
    """Generate a synthetic fundus data set with DR lesions by grade 0-4 (for tests and the demo)."""
    from mobiledr.data.synth import make_dataset

    with progress_bar("synthesising", total=n) as bar:
        csv_path = make_dataset(out, n=n, size=size, seed=seed, progress=bar.advance)
    console.print(f"wrote {n} images to {out} ({csv_path.name}); read it with --dataset aptos")


@app.command()
def inspect(
    source: Path = typer.Argument(..., help="The data set's root folder (or CSV file for --dataset csv)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    sheet: Path = typer.Option(None, "--sheet", help="Contact sheet PNG (default: inspect_<dataset>.png)."),
    per_class: int = typer.Option(6, "--per-class", min=1, help="Sample images per class on the sheet."),
    splits: Path = typer.Option(None, "--splits", help="A split file: also count images per split."),
) -> None:
    """Counts per class, per official split and per patient, and a contact sheet of samples per class."""
    from mobiledr.data.inspect import contact_sheet, dataset_stats
    from mobiledr.data.splits import SPLITS, SplitFile

    result = read_dataset(source, _dataset(dataset))
    console.print(result.summary())
    stats = dataset_stats(result)
    console.print(_counts_table(f"{dataset}: images per class", dict(stats.per_class)))
    console.print(_counts_table("images per official split", dict(stats.per_source_split)))
    patients = ", ".join(f"{n} with {k} image{'s' * (k > 1)}" for k, n in sorted(stats.images_per_patient.items()))
    console.print(f"patients: {stats.patients:,} ({patients or 'none known'}); images without a patient id: {stats.without_patient:,}")
    if splits:
        split_file = SplitFile.read(splits)
        for name in SPLITS:
            rows = split_file.rows_of(name)
            console.print(_counts_table(f"split {name}: {len({r.patient_id for r in rows if r.patient_id}):,} patients", _by_class(rows)))
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} rows skipped[/yellow], first: {result.skipped[0]}")
    sheet = sheet or Path(f"inspect_{dataset}.png")
    with stderr.status("drawing the contact sheet"):
        shown = contact_sheet(result.records, sheet, per_class=per_class)
    console.print(f"contact sheet: {sheet} ({shown} images)")


def _by_class(rows: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.class_name] = counts.get(row.class_name, 0) + 1
    return counts


@app.command("prepare")
def prepare_command(
    source: Path = typer.Argument(..., help="The data set's root folder (or CSV file for --dataset csv)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Cache folder (re-runs only process new or changed images)."),
    size: int = typer.Option(512, "--size", min=32, help="Model input size in pixels."),
    mode: str = typer.Option("fundus", "--mode", help="fundus (circle crop) or oct (no crop)."),
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-j", min=1, help="Parallel worker processes."),
) -> None:
    """Run the geometric stage once per image into a cache; broken images go to rejects.csv."""
    from mobiledr.data.cache import prepare

    spec = _spec(size, mode)
    with progress_bar("preparing") as bar:
        report = prepare(source, _dataset(dataset), spec, out, workers=workers, on_progress=lambda done, total: bar.set(done, total))
    reasons: dict[str, int] = {}
    for reject in report.rejected:
        reason = reject.reason.split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    console.print(
        f"{out}: {len(report.cache.entries):,} images ({report.processed:,} processed, {report.reused:,} unchanged) "
        f"in {report.seconds:.1f} s; {len(report.rejected):,} rejected"
    )
    if reasons:
        console.print(_counts_table(f"rejects ({out / 'rejects.csv'})", reasons))


@app.command()
def split(
    cache: Path = typer.Argument(..., help="A prepared cache folder."),
    scheme: str = typer.Option(..., "--scheme", "-s", help=SCHEME_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Split file (CSV) to write."),
    val: float = typer.Option(0.15, "--val", help="Fraction of images for validation."),
    test: float = typer.Option(0.15, "--test", help="Fraction of images for testing."),
    seed: int = typer.Option(0, "--seed"),
    merge_duplicates: bool = typer.Option(False, "--merge-duplicates", help="Keep near-duplicate photographs together, like one patient."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates", help="Write the splits even with near-duplicates across them."),
    sheet: Path = typer.Option(None, "--sheet", help="Contact sheet PNG of the flagged near-duplicate pairs, to look at them."),
    positive: str = typer.Option(
        None, "--positive", help="The referred (positive) class of a two-class 'classes' data set (default: recognised by name, e.g. DR of DR/No_DR)."
    ),
) -> None:
    """Stratified, patient-grouped train/val/test splits; refuses to put copies of a photograph on both sides."""
    from mobiledr.data.cache import Cache
    from mobiledr.data.duplicates import draw_sheet, write_evidence
    from mobiledr.data.splits import SPLITS, flag_duplicates, make_splits, pair_rows

    if sheet is not None and (sheet.suffix.lower() != ".png" or sheet.is_dir()):
        raise MobiledrError(f"{sheet}: --sheet takes the path of a .png file to write")
    data = Cache.open(cache)
    label_scheme = get_scheme(scheme, data.records, positive)
    with stderr.status("checking for near-duplicates (candidate pairs, then keypoints)"):
        flagged = flag_duplicates(data)
    with stderr.status("splitting"):
        split_file, duplicates = make_splits(data, label_scheme, val, test, seed, merge_duplicates, flagged=flagged)
    rows = pair_rows(data, flagged, split_file)
    evidence = out.with_name(f"{out.stem}.duplicates.csv")
    write_evidence(evidence, rows)
    if sheet:
        with stderr.status("drawing the near-duplicate sheet"):
            drawn = draw_sheet(sheet, rows, lambda i: data.image(data.entries[i]))
        console.print(f"near-duplicate sheet: {sheet} ({drawn} of {len(rows)} pairs)")
    if flagged:
        console.print(f"{len(flagged)} near-duplicate pairs flagged, {len(duplicates)} across splits; evidence: {evidence}")
    if duplicates:
        first = next(r for r in rows if r.crosses_splits)
        message = (
            f"{len(duplicates)} near-duplicate pairs across splits (first: {first.key_a} ~ {first.key_b}, "
            f"{first.candidate.match.inliers} matching keypoints); evidence in {evidence}{'' if sheet else ' (--sheet PNG draws them)'}; "
        )
        if not allow_duplicates:
            raise MobiledrError(message + "refusing to write splits; pass --merge-duplicates to keep copies together or --allow-duplicates")
        stderr.print(f"[yellow]warning:[/yellow] {message}written anyway (--allow-duplicates)")
    if not any(r.patient_id for r in split_file.rows):
        stderr.print(
            "[yellow]warning:[/yellow] the data set has no patient ids: every image is split as its own patient, so one "
            "person's two eyes can land in train and test, and evaluation intervals cannot resample patients"
        )
    split_file.write(out)
    table = Table(title=f"{out} ({label_scheme.name}: {label_scheme.description})")
    table.add_column("split")
    for name in label_scheme.classes:
        table.add_column(name, justify="right")
    table.add_column("ungradable", justify="right")
    table.add_column("patients", justify="right")
    for name in SPLITS:
        rows = split_file.rows_of(name)
        counts = _by_class(rows)
        patients = len({r.patient_id for r in rows if r.patient_id})
        table.add_row(name, *[f"{counts.get(c, 0):,}" for c in label_scheme.classes], f"{counts.get('ungradable', 0):,}", f"{patients:,}")
    console.print(table)
    definition = case_definition(label_scheme, data.records)
    if definition:
        console.print(definition)


@app.command("preview")
def preview_command(
    images: list[Path] = typer.Argument(..., help="Image files to preprocess."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the side-by-side PNGs."),
    size: int = typer.Option(512, "--size", min=32),
    mode: str = typer.Option("fundus", "--mode", help="fundus or oct."),
    as_json: bool = typer.Option(False, "--json", help="Print the crop boxes as JSON."),
) -> None:
    """Write original | geometric stage | photometric stage side by side, and print each crop box."""
    from mobiledr.data.geometry import ImageRejected
    from mobiledr.data.photometric import Photometric
    from mobiledr.data.preview import preview

    spec = _spec(size, mode)
    stage = Photometric(spec)
    results, failures = [], []
    for path in images:
        try:
            results.append(preview(path, spec, out, stage))
        except ImageRejected as exc:
            failures.append({"source": str(path), "error": str(exc)})
    if as_json:
        typer.echo(json.dumps({"previews": [r.to_dict() for r in results], "failures": failures}, indent=2))
    else:
        table = Table(title=f"crop boxes ({spec.mode}, {spec.size}px)")
        for column in ("image", "size", "box x0,y0,x1,y1", "preview"):
            table.add_column(column)
        for r in results:
            table.add_row(Path(r.source).name, "x".join(map(str, r.original_size)), ",".join(map(str, r.box)), r.output)
        console.print(table)
        for failure in failures:
            stderr.print(f"error: {failure['source']}: {failure['error']}")
    if failures:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
