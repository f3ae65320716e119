"""Private: the galaxy-folder layout, its file names and its catalog reader and writers.

The one home of the layout of the paper's Zenodo record
(doi:10.5281/zenodo.14712542), which `sfnet.datasets.folder` reads and writes
and `sfnet.datasets.sdss` / `sfnet.datasets.cutouts` fetch into::

    galaxies.csv            catalog, objID as exact 64-bit integers (CATALOG_CSV)
    galaxies.ecsv           the same with units and provenance (CATALOG_ECSV, fetched folders)
    images-sdss/{objID}.jpg colour cutouts (IMAGE_DIR, IMAGE_SUFFIX)
    failures.csv            cutouts a fetch could not get (FAILURES_CSV)
    fetch_report.json       counts of the last fetch (REPORT_JSON)

`read_catalog_csv` parses ``galaxies.csv`` with ``objID`` as exact int64
(never through float); `write_catalog_csv` and `write_galaxy_catalog` write
it (and the ECSV) atomically; `remove_stale_temporaries` clears what a killed
run left.  Helpers have plain names; the other modules import them by name.
"""

import csv
import io
import os
import re

import numpy as np

from .._io import atomic_write_text

__all__ = []  # private module

#: The catalog file of a galaxy folder.
CATALOG_CSV = "galaxies.csv"
#: The catalog with units and provenance written beside it by a fetch.
CATALOG_ECSV = "galaxies.ecsv"
#: The image folder: one ``{objID}.jpg`` per galaxy.
IMAGE_DIR = "images-sdss"
#: File name ending of the images.
IMAGE_SUFFIX = ".jpg"
#: The cutouts a fetch could not get.
FAILURES_CSV = "failures.csv"
#: Counts of the last fetch.
REPORT_JSON = "fetch_report.json"

#: How many bad rows an error message names.
N_SHOWN = 5

# Temporary files of `sfnet._io`'s atomic writes of the files above.
_TEMPORARY = re.compile(r"^\.(\d+\.jpg|galaxies\.e?csv|failures\.csv|fetch_report\.json)"
                        r"\..+\.tmp$")


def image_path(folder, objid):
    """The image file of galaxy ``objid`` in a galaxy folder."""
    return folder / IMAGE_DIR / f"{objid}{IMAGE_SUFFIX}"


def write_catalog_csv(path, table):
    """Write ``table`` as CSV to ``path`` atomically (units and meta are not kept)."""
    buf = io.StringIO()
    table.write(buf, format="ascii.csv")
    atomic_write_text(path, buf.getvalue())


def write_galaxy_catalog(folder, table):
    """Write ``galaxies.ecsv`` (units, provenance) and then ``galaxies.csv`` into ``folder``.

    The ECSV goes first: a run killed between the two writes leaves a catalog
    the next run recognises and completes.
    """
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    atomic_write_text(folder / CATALOG_ECSV, buf.getvalue())
    write_catalog_csv(folder / CATALOG_CSV, table)


def read_catalog_ecsv(path):
    """The ECSV catalog written by `write_galaxy_catalog` (with its meta)."""
    from astropy.table import Table

    return Table.read(path, format="ascii.ecsv")


def read_catalog_csv(csv_bytes, csv_path):
    """Parse the bytes of a ``galaxies.csv`` into a Table with ``objID`` as exact int64.

    Raises
    ------
    ValueError
        Not UTF-8, empty, unparsable, no ``objID`` column, empty, non-integer
        or duplicated objIDs; the message names ``csv_path``.
    """
    from astropy.io import ascii

    try:
        text = csv_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"catalog file {csv_path} is not UTF-8 text: {exc}") from exc
    if not text.strip():
        raise ValueError(f"catalog file {csv_path} is empty")
    if not text.endswith("\n"):
        text += "\n"
    try:
        table = ascii.read(text, format="csv", guess=False)
    except (ValueError, ascii.InconsistentTableError) as exc:
        raise ValueError(f"cannot parse catalog file {csv_path}: {exc}") from exc
    if "objID" not in table.colnames:
        raise ValueError(f"catalog file {csv_path} has no 'objID' column; its columns "
                         f"are {table.colnames}")
    col = table["objID"]
    if getattr(col, "mask", None) is not None and np.any(col.mask):
        rows = np.flatnonzero(np.asarray(col.mask))
        raise ValueError(f"catalog file {csv_path} has {rows.size} empty objID value(s), "
                         f"first at data row(s) {(rows[:N_SHOWN] + 1).tolist()}")
    if col.dtype.kind == "i":
        ids = np.asarray(col, dtype=np.int64)
    else:
        # Not parsed as integers (floats, strings, out of range): re-read the
        # column's text exactly, so no digit goes through float.
        ids = _exact_ids(text, csv_path)
    table.replace_column("objID", ids)
    s = np.sort(ids)
    dup = np.unique(s[1:][s[1:] == s[:-1]])
    if dup.size:
        raise ValueError(f"catalog file {csv_path} has {dup.size} duplicated objID(s), "
                         f"e.g. {', '.join(str(int(d)) for d in dup[:N_SHOWN])}")
    return table


def _exact_ids(text, csv_path):
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    j = [h.strip() for h in header].index("objID")
    ids, bad = [], []
    for i, rec in enumerate(reader):
        if not rec:
            continue
        raw = rec[j].strip() if j < len(rec) else ""
        try:
            v = int(raw)
        except ValueError:
            bad.append((i + 1, raw))
            continue
        if not np.iinfo(np.int64).min <= v <= np.iinfo(np.int64).max:
            bad.append((i + 1, raw))
            continue
        ids.append(v)
    if bad:
        shown = ", ".join(f"row {r}: {v!r}" for r, v in bad[:N_SHOWN])
        raise ValueError(f"catalog file {csv_path}: {len(bad)} objID value(s) are not "
                         f"64-bit integers ({shown})")
    return np.array(ids, dtype=np.int64)


def remove_stale_temporaries(folder):
    """Remove temporary files an earlier, killed run may have left (never real files)."""
    for directory in (folder, folder / IMAGE_DIR):
        if directory.is_dir():
            for entry in os.scandir(directory):
                if entry.is_file() and _TEMPORARY.match(entry.name):
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        pass
