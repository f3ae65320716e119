"""Private: the galaxy-folder layout, its file names and its catalog reader and writers.

The one home of the layout of the paper's Zenodo record
(doi:10.5281/zenodo.14712542), which `sfnet.datasets.folder` reads and writes
and `sfnet.datasets.sdss` / `sfnet.datasets.cutouts` fetch into::

    galaxies.csv            catalog, objID as exact 64-bit integers (CATALOG_CSV)
    galaxies.ecsv           the same with units and provenance (CATALOG_ECSV, fetched folders)
    images-sdss/{objID}.jpg colour cutouts (IMAGE_DIR, IMAGE_SUFFIX)
    failures.csv            cutouts a fetch could not get (FAILURES_CSV)
    fetch_report.json       counts of the last fetch (REPORT_JSON)
    folder.json             optional: the folder's ID column, image folder and
                            image suffix (FOLDER_JSON, written by `sfnet cutouts`)

Images may also be ``{id}.jpeg``, ``.png``, ``.fits``, ``.fits.gz`` or ``.fit``
(IMAGE_SUFFIXES, in the order they are looked for).
`read_catalog_csv` parses ``galaxies.csv`` with ``objID`` as exact int64
(never through float), or another ID column as int64 or strings;
`write_catalog_csv` and `write_galaxy_catalog` write it (and the ECSV)
atomically; `remove_stale_temporaries` clears what a killed run left.  Helpers
have plain names; the other modules import them by name.
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
#: The image file name endings a folder may use, in the order they are looked for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".fits", ".fits.gz", ".fit")
#: Endings read with astropy.io.fits (the others with PIL).
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")
#: The folder's own description (ID column, image folder, suffix), optional.
FOLDER_JSON = "folder.json"
#: The default ID column.
ID_COLUMN = "objID"
#: The cutouts a fetch could not get.
FAILURES_CSV = "failures.csv"
#: Counts of the last fetch.
REPORT_JSON = "fetch_report.json"

#: How many bad rows an error message names.
N_SHOWN = 5

# Temporary files of `sfnet._io`'s atomic writes of the files above.
_TEMPORARY = re.compile(r"^\.(.+\.(jpg|jpeg|png|fits|fits\.gz|fit)|galaxies\.e?csv|failures\.csv|"
                        r"fetch_report\.json|folder\.json)\..+\.tmp$")


def image_path(folder, objid, suffix=IMAGE_SUFFIX, image_dir=IMAGE_DIR):
    """The image file of galaxy ``objid`` in a galaxy folder."""
    return folder / image_dir / f"{objid}{suffix}"


def write_folder_json(folder, id_column, image_dir, suffix):
    """Record the folder's ID column, image folder and image suffix in ``folder.json``."""
    import json

    text = json.dumps({"id_column": id_column, "image_dir": image_dir, "suffix": suffix},
                      indent=1, sort_keys=True) + "\n"
    atomic_write_text(folder / FOLDER_JSON, text)


def read_folder_json(folder):
    """The dict of ``folder.json`` (empty if there is none); ValueError if unreadable."""
    import json

    path = folder / FOLDER_JSON
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or not all(
            isinstance(record.get(k, ""), str) for k in ("id_column", "image_dir", "suffix")):
        raise ValueError(f"{path} must be a JSON object of strings id_column, image_dir, "
                         f"suffix; got {record!r}")
    return record


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


def read_catalog_csv(csv_bytes, csv_path, id_column=ID_COLUMN):
    """Parse the bytes of a ``galaxies.csv`` into a Table with exact IDs.

    ``objID`` (the default) is read as exact int64.  Another ``id_column``
    is int64 when every value is a canonical integer (no sign but ``-``, no
    leading zeros) in the int64 range, otherwise strings exactly as written
    (so ``007`` stays ``"007"``, the name of its file); never through float.

    Raises
    ------
    ValueError
        Not UTF-8, empty, unparsable, no ID column, empty, non-integer
        (``objID``) or duplicated IDs; the message names ``csv_path``.
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
    if id_column not in table.colnames:
        raise ValueError(f"catalog file {csv_path} has no {id_column!r} column; its columns "
                         f"are {table.colnames}")
    col = table[id_column]
    if getattr(col, "mask", None) is not None and np.any(col.mask):
        rows = np.flatnonzero(np.asarray(col.mask))
        raise ValueError(f"catalog file {csv_path} has {rows.size} empty {id_column} "
                         f"value(s), first at data row(s) {(rows[:N_SHOWN] + 1).tolist()}")
    if id_column != ID_COLUMN:
        ids = _text_ids(text, csv_path, id_column)
    elif col.dtype.kind == "i":
        ids = np.asarray(col, dtype=np.int64)
    else:
        # Not parsed as integers (floats, strings, out of range): re-read the
        # column's text exactly, so no digit goes through float.
        ids = _exact_ids(text, csv_path)
    table.replace_column(id_column, ids)
    s = np.sort(ids)
    dup = np.unique(s[1:][s[1:] == s[:-1]])
    if dup.size:
        raise ValueError(f"catalog file {csv_path} has {dup.size} duplicated "
                         f"{id_column}(s), e.g. {', '.join(str(d) for d in dup[:N_SHOWN])}")
    return table


_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")


def _column_text(text, id_column):
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    j = [h.strip() for h in header].index(id_column)
    return [rec[j].strip() if j < len(rec) else "" for rec in reader if rec]


def _text_ids(text, csv_path, id_column):
    """A non-default ID column's values as written: int64 if all canonical integers."""
    raw = _column_text(text, id_column)
    if raw and all(_CANONICAL_INT.match(v) for v in raw):
        values = [int(v) for v in raw]
        if all(np.iinfo(np.int64).min <= v <= np.iinfo(np.int64).max for v in values):
            return np.array(values, dtype=np.int64)
    return np.array(raw, dtype=str)


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


def remove_stale_temporaries(folder, image_dir=IMAGE_DIR):
    """Remove temporary files an earlier, killed run may have left (never real files)."""
    for directory in (folder, folder / image_dir):
        if directory.is_dir():
            for entry in os.scandir(directory):
                if entry.is_file() and _TEMPORARY.match(entry.name):
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        pass
