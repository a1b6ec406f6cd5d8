"""One reader per public retinal data set (and two for a user's own data), by name.

Each reader takes the data set's root folder as downloaded and unpacked, and returns a
:class:`~mobiledr.data.records.ReadResult`: usable records plus the rows it skipped and why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mobiledr.data.readers.aptos import read_aptos
from mobiledr.data.readers.ddr import read_ddr
from mobiledr.data.readers.eyepacs import read_eyepacs
from mobiledr.data.readers.generic import read_csv_list, read_folder
from mobiledr.data.readers.idrid import read_idrid
from mobiledr.data.readers.kermany import read_kermany
from mobiledr.data.readers.messidor import read_messidor
from mobiledr.data.readers.messidor2 import read_messidor2
from mobiledr.data.readers.odir import read_odir
from mobiledr.data.records import ReadResult
from mobiledr.errors import MobiledrError

READERS: dict[str, Callable[[Path], ReadResult]] = {
    "aptos": read_aptos,
    "eyepacs": read_eyepacs,
    "messidor": read_messidor,
    "messidor2": read_messidor2,
    "idrid": read_idrid,
    "ddr": read_ddr,
    "odir": read_odir,
    "kermany": read_kermany,
    "csv": read_csv_list,
    "folder": read_folder,
}


def read_dataset(root: Path | str, dataset: str) -> ReadResult:
    """Read a data set by its reader name; a one-line :class:`MobiledrError` for an unknown name,
    a missing root, or a root without the expected labels file or layout."""
    try:
        reader = READERS[dataset]
    except KeyError:
        raise MobiledrError(f"unknown dataset {dataset!r}; known: {', '.join(READERS)}") from None
    return reader(Path(root))


__all__ = ["READERS", "read_dataset"]
