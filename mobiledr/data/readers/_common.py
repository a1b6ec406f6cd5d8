"""What every data-set reader shares: the root, a file index, table parsing and row bookkeeping."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING


from mobiledr.data.records import ReadResult, Record, Skipped
from mobiledr.errors import MobiledrError

if TYPE_CHECKING:
    import pandas as pd

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
_DELIMITERS = (",", ";", "\t")
_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
_EYES = {"left": "left", "l": "left", "os": "left", "right": "right", "r": "right", "od": "right"}


class RowError(Exception):
    """One row (or file) cannot be used; the message becomes the skip reason."""


def open_root(root: Path | str, dataset: str, *, allow_file: bool = False) -> Path:
    """The data set's root as an absolute path; a one-line error when it is missing or not a folder."""
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise MobiledrError(f"{dataset}: {path} does not exist")
    if not allow_file and not path.is_dir():
        raise MobiledrError(f"{dataset}: {path} is not a folder (give the data set's root folder)")
    return path


def is_image(path: Path) -> bool:
    """Whether a file name has one of the image extensions (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def visible(name: str) -> bool:
    """False for hidden files and macOS archive debris (``.DS_Store``, ``__MACOSX``)."""
    return not name.startswith(".") and name != "__MACOSX"


class FileIndex:
    """Every file under a root, indexed once (on first use) by lower-case name and image stem."""

    def __init__(self, root: Path, dataset: str) -> None:
        self.root = root
        self.dataset = dataset

    @cached_property
    def _by_name(self) -> dict[str, list[Path]]:
        index: dict[str, list[Path]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if visible(d))
            for name in sorted(files):
                if visible(name):
                    index.setdefault(name.lower(), []).append(Path(folder, name))
        return index

    @cached_property
    def _by_stem(self) -> dict[str, list[Path]]:
        index: dict[str, list[Path]] = {}
        for paths in self._by_name.values():
            for path in paths:
                if is_image(path):
                    index.setdefault(path.stem.lower(), []).append(path)
        return index

    def named(self, name: str) -> list[Path]:
        """All files called ``name`` (case-insensitive), shallowest first."""
        return sorted(self._by_name.get(name.lower(), []), key=lambda p: (len(p.parts), str(p)))

    def matching(self, pattern: re.Pattern[str]) -> list[Path]:
        """All files whose name fully matches ``pattern``, in path order."""
        return sorted(p for name, paths in self._by_name.items() if pattern.fullmatch(name) for p in paths)

    def find_file(self, name: str) -> Path | None:
        """A labels file: ``root/name`` or the one shallowest file of that name under the root."""
        if (self.root / name).is_file():
            return self.root / name
        found = self.named(name)
        if len(found) > 1 and len(found[0].parts) == len(found[1].parts):
            raise MobiledrError(
                f"{self.dataset}: several {name} under {self.root} ({self.rel(found[0])}, {self.rel(found[1])}); "
                "point the root at one copy"
            )
        return found[0] if found else None

    def expected(self, *names: str) -> MobiledrError:
        """The one-line error for a labels file (any of ``names``) that is not under the root."""
        return MobiledrError(f"{self.dataset}: expected {' or '.join(names)} under {self.root} (not found)")

    def require_file(self, name: str) -> Path:
        """Like :meth:`find_file`, but an error naming the expected file when it is absent."""
        path = self.find_file(name)
        if path is None:
            raise self.expected(name)
        return path

    def require_any(self, *names: str) -> dict[str, Path]:
        """The labels files among ``names`` that exist (at least one, else an error naming them all)."""
        found = {name: path for name in names if (path := self.find_file(name)) is not None}
        if not found:
            raise self.expected(*names)
        return found

    def image(self, name: str, folder: Path) -> Path:
        """Resolve an image name: ``folder/name``, else a file of that name (or stem) anywhere under the root.

        Among several candidates the one closest to ``folder`` wins (longest shared path, then the
        shallowest); a tie is reported as ambiguous rather than guessed.
        """
        if (folder / name).is_file():
            return folder / name
        found = self._by_name.get(Path(name).name.lower()) or self._by_stem.get(Path(name).stem.lower(), [])
        if not found:
            raise RowError(f"image {self.rel(folder / name)} not found")

        def rank(path: Path) -> tuple[int, int]:
            shared = len(os.path.commonpath([path, folder]).split(os.sep))
            return -shared, len(path.parts)

        ranked = sorted(found, key=lambda p: (rank(p), str(p)))
        if len(ranked) > 1 and rank(ranked[0]) == rank(ranked[1]):
            raise RowError(f"image {name} is ambiguous: {self.rel(ranked[0])} and {self.rel(ranked[1])}")
        return ranked[0]

    def rel(self, path: Path) -> str:
        """A path relative to the root where possible, for messages."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


class Row:
    """One labels row (or folder file) being turned into records; see :meth:`Collector.row`."""

    def __init__(self, collector: Collector, where: str) -> None:
        self._collector = collector
        self._where = where

    def add(
        self,
        path: Path,
        grade: int | None,
        *,
        patient_id: str | None = None,
        eye: str | None = None,
        classes: tuple[str, ...] | None = None,
        source_split: str | None = None,
        dme: bool | None = None,
    ) -> None:
        """Append a record (``grade=None`` means ungradable); a second row for one image is a skip."""
        first_seen = self._collector.first_seen
        if path in first_seen:
            raise RowError(f"duplicate of {first_seen[path]} ({path.name})")
        first_seen[path] = self._where
        self._collector.result.records.append(
            Record(
                path=path,
                grade=grade,
                dataset=self._collector.result.dataset,
                patient_id=patient_id or None,
                eye=eye,
                gradable=grade is not None,
                classes=classes,
                source_split=source_split,
                dme=dme if grade is not None else None,
            )
        )


class Collector:
    """Accumulates a reader's records and skipped rows, rejecting duplicate images."""

    def __init__(self, dataset: str) -> None:
        self.result = ReadResult(dataset)
        self.first_seen: dict[Path, str] = {}

    @contextmanager
    def row(self, source: Path, row: int | None, what: str = "") -> Iterator[Row]:
        """Context for one row: a :class:`RowError` inside it records a skip (prefixed by ``what``)."""
        where = f"{source.name} row {row}" if row is not None else str(source)
        try:
            yield Row(self, where)
        except RowError as exc:
            self.skip(source, row, f"{what}: {exc}" if what else str(exc))

    def skip(self, source: Path, row: int | None, reason: str) -> None:
        """Record a skipped row or file."""
        self.result.skipped.append(Skipped(source=str(source), row=row, reason=reason))


def _delimiter(path: Path) -> str:
    with path.open(encoding="latin-1") as handle:
        header = handle.readline()
    return max(_DELIMITERS, key=header.count)


def _read(path: Path, sheet: str | None) -> pd.DataFrame:
    import pandas as pd  # imported on first use: the CLI starts without it

    options = {"dtype": str, "keep_default_na": False}
    suffix = path.suffix.lower()
    if suffix in {".xls", ".xlsx"}:
        with warnings.catch_warnings():  # pandas 3 deprecates xlrd, still the reader for .xls
            warnings.filterwarnings("ignore", message=".*xlrd.*")
            engine = "xlrd" if suffix == ".xls" else "openpyxl"
            return pd.read_excel(path, sheet_name=sheet or 0, engine=engine, **options)
    try:
        return pd.read_csv(path, sep=_delimiter(path), skip_blank_lines=False, encoding="utf-8-sig", **options)
    except UnicodeDecodeError:
        return pd.read_csv(path, sep=_delimiter(path), skip_blank_lines=False, encoding="latin-1", **options)


def read_table(path: Path, required: tuple[str, ...], *, sheet: str | None = None) -> pd.DataFrame:
    """A labels table (CSV, ``.xls``, ``.xlsx``) as strings, column names stripped, ``Unnamed: N`` dropped.

    Raises a one-line :class:`MobiledrError` naming the file when it cannot be parsed or lacks a
    required column.
    """
    try:
        table = _read(path, sheet)
    except Exception as exc:  # pandas, xlrd and openpyxl raise many unrelated types
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise MobiledrError(f"cannot read {path}: {detail}") from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.loc[:, [not c.startswith("Unnamed: ") for c in table.columns]]
    missing = [c for c in required if c not in table.columns]
    if missing:
        found = ", ".join(map(repr, table.columns))
        raise MobiledrError(f"{path}: missing column {', '.join(map(repr, missing))} (found: {found})")
    return table


def table_rows(table: pd.DataFrame) -> Iterator[tuple[int, dict[str, str]]]:
    """``(1-based data row, stripped cell texts)``, passing over rows that are entirely empty."""
    for number, values in enumerate(table.to_dict("records"), start=1):
        cells = {str(k): str(v).strip() for k, v in values.items()}
        if any(cells.values()):
            yield number, cells


def list_dir(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible sub-folders and files of ``folder``, each sorted by name."""
    entries = sorted(p for p in folder.iterdir() if visible(p.name))
    return [p for p in entries if p.is_dir()], [p for p in entries if p.is_file()]


def cell(cells: dict[str, str], column: str) -> str:
    """A required cell's text; a :class:`RowError` ("missing image_id") when it is empty."""
    if not cells[column]:
        raise RowError(f"missing {column}")
    return cells[column]


def parse_int(text: str) -> int | None:
    """An integer from ``"2"`` or an Excel-style ``"2.0"``; ``None`` for anything else."""
    return int(text.partition(".")[0]) if _INTEGER.fullmatch(text) else None


def parse_grade(text: str, high: int, what: str = "grade") -> int:
    """An integer label in ``0..high``; a :class:`RowError` ("missing grade", "unknown grade 'x'") otherwise."""
    if not text:
        raise RowError(f"missing {what}")
    value = parse_int(text)
    if value is None or not 0 <= value <= high:
        raise RowError(f"unknown {what} {text!r} (expected 0-{high})")
    return value


def parse_dme(text: str, high: int, what: str) -> bool | None:
    """Macular oedema from a 0..``high`` risk/grade column: present when >= 1; ``None`` when empty."""
    return None if not text else parse_grade(text, high, what) >= 1


def parse_eye(text: str) -> str | None:
    """``"left"``/``"right"`` from left/right/L/R/OS/OD (any case); ``None`` when empty."""
    if not text:
        return None
    try:
        return _EYES[text.lower()]
    except KeyError:
        raise RowError(f"unknown eye {text!r}") from None
