"""The preprocessed-image cache: the geometric stage run once per image, in parallel, incrementally.

Layout of a cache folder::

    cache.json     what was prepared: data set, source, PreprocessSpec, class names, counts
    index.csv      one row per usable image: its record (label, patient, eye...), cached file, crop box, phash
    signatures.npy the near-duplicate polar signature of each index row, in index order
    rejects.csv    every image or labels row that could not be used, with the reason
    images/ab/<hash>.png   the geometric stage's output (size x size RGB, lossless)

Re-running ``prepare`` only processes images that are new or whose file changed (size or mtime);
the index is checkpointed every few seconds so an interrupted run keeps its completed work.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobiledr import __version__
from mobiledr.data.duplicates import ANGLES, FINGERPRINT_SIZE, RADII, Fingerprint, fingerprint
from mobiledr.data.geometry import ImageRejected, decode, geometric, resample, write_png
from mobiledr.data.readers import read_dataset
from mobiledr.data.records import Record
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_bytes, atomic_write_csv, atomic_write_json, read_json

META, INDEX, REJECTS, IMAGES, SIGNATURES = "cache.json", "index.csv", "rejects.csv", "images", "signatures.npy"
FORMAT_VERSION = 3  # 2: polar signatures and chromaticity; 3: fingerprints at a fixed resolution
CHECKPOINT_SECONDS = 5.0
INDEX_COLUMNS = [
    "key", "file", "grade", "gradable", "dataset", "patient_id", "eye", "source_split", "source",
    "src_size", "src_mtime_ns", "x0", "y0", "x1", "y1", "phash", "chroma_r", "chroma_g", "dme",
]  # fmt: skip


@dataclass(frozen=True)
class Processed:
    """What the geometric stage produced for one source file."""

    file: str  # relative to the cache folder
    box: tuple[int, int, int, int]
    fingerprint: Fingerprint
    src_size: int
    src_mtime_ns: int


@dataclass(frozen=True)
class CacheEntry:
    key: str  # the source path relative to the data set root (stable when the root moves)
    record: Record
    processed: Processed


@dataclass(frozen=True)
class Reject:
    source: str
    reason: str
    src_size: int = -1
    src_mtime_ns: int = -1


@dataclass
class PrepareReport:
    cache: Cache
    processed: int
    reused: int
    rejected: list[Reject]
    seconds: float


def _opt(value: str) -> str | None:
    return value or None


class Cache:
    """A prepared cache folder, read-only."""

    def __init__(self, root: Path, meta: dict, entries: list[CacheEntry], rejects: list[Reject]) -> None:
        self.root, self.meta, self.entries, self.rejects = root, meta, entries, rejects

    @property
    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.meta["spec"])

    @property
    def classes(self) -> tuple[str, ...] | None:
        return tuple(self.meta["classes"]) if self.meta.get("classes") else None

    @property
    def records(self) -> list[Record]:
        return [e.record for e in self.entries]

    def image(self, entry: CacheEntry) -> np.ndarray:
        """The cached geometric-stage image, (size, size, 3) uint8 RGB."""
        bgr = cv2.imread(str(self.root / entry.processed.file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MobiledrError(f"{self.root / entry.processed.file}: cached image missing or unreadable; re-run mobiledr data prepare")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    @classmethod
    def open(cls, root: str | Path) -> Cache:
        root = Path(root)
        meta_path = root / META
        if not meta_path.is_file():
            raise MobiledrError(f"{root}: not a mobiledr cache ({META} missing); create it with 'mobiledr data prepare'")
        meta = read_json(meta_path, "cache metadata")
        if meta.get("format") != FORMAT_VERSION:
            raise MobiledrError(f"{meta_path}: cache format {meta.get('format')} is not {FORMAT_VERSION}; prepare it again")
        classes = tuple(meta["classes"]) if meta.get("classes") else None
        return cls(root, meta, _read_index(root, classes), _read_rejects(root / REJECTS))


def _format_of(root: Path) -> int | None:
    try:
        return json.loads((root / META).read_text()).get("format")
    except (OSError, ValueError):
        return None


def _read_index(root: Path, classes: tuple[str, ...] | None) -> list[CacheEntry]:
    if not (root / INDEX).is_file():
        return []
    entries = []
    signatures = np.load(root / SIGNATURES)
    with (root / INDEX).open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            record = Record(
                path=Path(row["source"]),
                grade=int(row["grade"]) if row["grade"] else None,
                dataset=row["dataset"],
                patient_id=_opt(row["patient_id"]),
                eye=_opt(row["eye"]),
                gradable=row["gradable"] == "1",
                classes=classes,
                source_split=_opt(row["source_split"]),
                dme={"1": True, "0": False}.get(row.get("dme") or ""),
            )
            box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
            fp = Fingerprint(int(row["phash"], 16), signatures[number], (float(row["chroma_r"]), float(row["chroma_g"])))
            processed = Processed(row["file"], box, fp, int(row["src_size"]), int(row["src_mtime_ns"]))
            entries.append(CacheEntry(row["key"], record, processed))
    return entries


def _read_rejects(path: Path) -> list[Reject]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [Reject(r["source"], r["reason"], int(r["src_size"]), int(r["src_mtime_ns"])) for r in csv.DictReader(handle)]


def _write_index(root: Path, entries: list[CacheEntry], rejects: list[Reject]) -> None:
    def row(e: CacheEntry) -> list:
        r, p = e.record, e.processed
        return [
            e.key, p.file, "" if r.grade is None else r.grade, int(r.gradable), r.dataset, r.patient_id or "", r.eye or "",
            r.source_split or "", str(r.path), p.src_size, p.src_mtime_ns, *p.box, f"{p.fingerprint.phash:016x}", *p.fingerprint.chroma,
            "" if r.dme is None else int(r.dme),
        ]  # fmt: skip

    ordered = sorted(entries, key=lambda e: e.key)
    signatures = np.stack([e.processed.fingerprint.polar for e in ordered]) if ordered else np.zeros((0, ANGLES, RADII), np.float16)
    buffer = io.BytesIO()
    np.save(buffer, signatures)
    atomic_write_bytes(root / SIGNATURES, buffer.getvalue())
    atomic_write_csv(root / INDEX, INDEX_COLUMNS, (row(e) for e in ordered))
    atomic_write_csv(root / REJECTS, ["source", "reason", "src_size", "src_mtime_ns"], ((r.source, r.reason, r.src_size, r.src_mtime_ns) for r in rejects))


_WORKER_SPEC: PreprocessSpec | None = None


def _init_worker(spec: PreprocessSpec) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = spec
    cv2.setNumThreads(1)


def _process(source: str, target: str) -> tuple[tuple[int, int, int, int], Fingerprint] | str:
    """Worker: geometric stage of one file, written atomically as PNG. Returns (box, fingerprint) or a reason."""
    assert _WORKER_SPEC is not None
    try:
        rgb = decode(source)
        result = geometric(rgb, _WORKER_SPEC)
    except ImageRejected as exc:
        return str(exc)
    except Exception as exc:  # a decoder or OpenCV failure on one odd file must not stop the run
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"unexpected error: {type(exc).__name__}: {detail}"
    write_png(target, result.image)
    # Fingerprints come from the original resolution, whatever the cache size: fine detail is what
    # tells two photographs apart.
    return result.box, fingerprint(resample(result, rgb, FINGERPRINT_SIZE))


def _cache_file(key: str) -> str:
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return f"{IMAGES}/{digest[:2]}/{digest}.png"


def prepare(
    source: str | Path,
    dataset: str,
    spec: PreprocessSpec,
    out: str | Path,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PrepareReport:
    """Run the geometric stage over a data set into ``out``; ``on_progress(done, total)`` after each image."""
    start = time.perf_counter()
    source, out = Path(source), Path(out)
    result = read_dataset(source, dataset)
    root = (source if source.is_dir() else source.parent).resolve()
    previous_entries: dict[str, CacheEntry] = {}
    previous_rejects: dict[str, Reject] = {}
    if (out / META).exists() and _format_of(out) == FORMAT_VERSION:  # an older cache is rebuilt
        old = Cache.open(out)
        if (old.meta["geometric_key"], old.meta["dataset"]) != (spec.geometric_key, dataset):
            raise MobiledrError(
                f"{out}: holds {old.meta['dataset']} at size {old.spec.size} ({old.spec.mode}); "
                f"use another --out for {dataset} at size {spec.size} ({spec.mode})"
            )
        previous_entries = {e.key: e for e in old.entries}
        previous_rejects = {r.source: r for r in old.rejects}
    out.mkdir(parents=True, exist_ok=True)

    entries: list[CacheEntry] = []
    rejects = [Reject(f"{s.source}, row {s.row}" if s.row is not None else s.source, s.reason) for s in result.skipped]
    todo: list[tuple[str, Record, os.stat_result]] = []
    reused = 0
    for record in result.records:
        key = record.path.relative_to(root).as_posix() if record.path.is_relative_to(root) else str(record.path)
        try:
            stat = record.path.stat()
        except OSError as exc:
            rejects.append(Reject(str(record.path), f"unreadable: {exc.strerror}"))
            continue
        signature = (stat.st_size, stat.st_mtime_ns)
        old_entry, old_reject = previous_entries.get(key), previous_rejects.get(str(record.path))
        if old_entry and (old_entry.processed.src_size, old_entry.processed.src_mtime_ns) == signature and (out / old_entry.processed.file).is_file():
            entries.append(CacheEntry(key, record, old_entry.processed))  # labels come from the current reader
            reused += 1
        elif old_reject and (old_reject.src_size, old_reject.src_mtime_ns) == signature:
            rejects.append(old_reject)
            reused += 1
        else:
            todo.append((key, record, stat))
    total = len(result.records)
    meta = {
        "format": FORMAT_VERSION,
        "mobiledr": __version__,
        "dataset": dataset,
        "source": str(source.resolve()),
        "spec": spec.to_dict(),
        "geometric_key": spec.geometric_key,
        "classes": list(next((r.classes for r in result.records if r.classes), ()) or []),
    }
    atomic_write_json(out / META, meta)
    if on_progress:
        on_progress(reused, total)

    workers = max(1, workers or os.cpu_count() or 1)
    last_checkpoint = time.monotonic()
    done = reused
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(spec,)) as pool:
        items = iter(todo)
        pending: dict = {}

        def submit_next() -> None:
            item = next(items, None)
            if item is not None:
                pending[pool.submit(_process, str(item[1].path), str(out / _cache_file(item[0])))] = item

        try:
            for _ in range(workers * 4):
                submit_next()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    key, record, stat = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        raise MobiledrError(
                            f"{record.path}: a worker process died while preparing it (out of memory?); "
                            f"the {len(entries)} completed images are kept in {out}, re-run to continue"
                        ) from None
                    if isinstance(outcome, str):
                        rejects.append(Reject(str(record.path), outcome, stat.st_size, stat.st_mtime_ns))
                    else:
                        box, fp = outcome
                        processed = Processed(_cache_file(key), box, fp, stat.st_size, stat.st_mtime_ns)
                        entries.append(CacheEntry(key, record, processed))
                    submit_next()
                    done += 1
                    if on_progress:
                        on_progress(done, total)
                if time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
                    _write_index(out, entries, rejects)
                    last_checkpoint = time.monotonic()
        finally:  # interrupted or not, every completed image stays in the index
            for future in pending:
                future.cancel()
            _write_index(out, entries, rejects)
    meta["counts"] = {"images": len(entries), "rejected": len(rejects), "ungradable": sum(not e.record.gradable for e in entries)}
    atomic_write_json(out / META, meta)
    cache = Cache.open(out)
    if not entries:
        raise MobiledrError(f"{source}: no usable images ({len(rejects)} rejected; see {out / REJECTS})")
    return PrepareReport(cache, processed=len(todo), reused=reused, rejected=rejects, seconds=time.perf_counter() - start)
