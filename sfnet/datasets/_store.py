"""The on-disk store behind `~sfnet.GalaxySample`, the folder loader and training.

A saved sample is a directory::

    sample/
        catalog.ecsv    the catalog (units, meta and int64 objIDs kept exactly)
        images.npy      the images, one .npy array (memory-mapped on load)
        sample.json     format version, N, image shape and dtype

This module owns that format (file names, manifest, the streaming ``.npy``
writer, building a directory atomically), reading rows of a memory-mapped
file without mapping them (`read_file_rows`, used by training), locating a
memmap in its file (pickling by reference), turning catalogs into tables
with exact ``int64`` objIDs (`as_catalog`, pandas both ways) and the one
normalisation of row indices (`normalize_rows`).  `sfnet.datasets.sample`
(the container), `sfnet.datasets.folder` (the decode cache) and the training
data path use it; nothing here knows `~sfnet.GalaxySample`.
"""

import json
import os
import shutil
import struct
import sys
import uuid
from pathlib import Path

import numpy as np

from .._io import check_output_dir

__all__ = ["FORMAT_VERSION", "FORMAT_NAME", "CATALOG_FILE", "IMAGES_FILE", "MANIFEST_FILE",
           "CHUNK_BYTES", "NpyWriter", "write_catalog", "write_manifest", "read_manifest",
           "is_sample_dir", "check_target_dir", "build_dir", "write_sample_dir",
           "read_sample_dir", "normalize_rows", "as_run", "read_rows", "memmap_reference",
           "open_reference", "read_file_rows", "as_catalog", "catalog_to_pandas",
           "DEFAULT_ID_COLUMN", "check_id_column", "normalize_ids"]

#: Version of the on-disk layout written by `GalaxySample.save`.
FORMAT_VERSION = 1
FORMAT_NAME = "sfnet.GalaxySample"
CATALOG_FILE = "catalog.ecsv"
IMAGES_FILE = "images.npy"
MANIFEST_FILE = "sample.json"
#: Bytes of image data copied per chunk when streaming images to disk.
CHUNK_BYTES = 64 * 2**20
#: The default ID column: SDSS's 64-bit photometric object identifier.
DEFAULT_ID_COLUMN = "objID"


# ---------------------------------------------------------------------------
# the directory format
class NpyWriter:
    """Stream rows into a version-1.0 ``.npy`` file opened for writing.

    The header is written for ``n_max`` rows and padded; `close` rewrites it in
    place with the number of rows actually written (never more than ``n_max``),
    padded to the same length, so a writer that drops rows needs no second
    pass over the data.
    """

    def __init__(self, fh, n_max, item_shape, dtype):
        self._fh = fh
        self._start = fh.tell()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.dtype = np.dtype(dtype)
        self.item_bytes = int(np.prod(self.item_shape, dtype=np.int64)) * self.dtype.itemsize
        self.n_max = int(n_max)
        self.n = 0
        header = self._header(self.n_max)
        self._header_len = len(header)
        fh.write(header)

    def _header(self, n, total=None):
        from numpy.lib import format as npformat

        d = (f"{{'descr': {npformat.dtype_to_descr(self.dtype)!r}, 'fortran_order': False, "
             f"'shape': {(n,) + self.item_shape!r}, }}")
        if total is None:
            total = -(-(10 + len(d) + 1) // 64) * 64
        body = d + " " * (total - 10 - len(d) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")

    def write(self, rows):
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.item_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match {self.item_shape}")
        if self.n + rows.shape[0] > self.n_max:
            raise ValueError("more rows than the header allows")
        self._fh.write(memoryview(rows.reshape(-1)).cast("B"))
        self.n += rows.shape[0]

    def close(self):
        """Fix the header to the number of rows written."""
        if self.n != self.n_max:
            end = self._fh.tell()
            self._fh.seek(self._start)
            self._fh.write(self._header(self.n, total=self._header_len))
            self._fh.seek(end)


def write_catalog(path, catalog):
    """Write ``catalog`` as ECSV to ``path`` (units, meta and int64 kept)."""
    catalog.write(path, format="ascii.ecsv", overwrite=True)


def write_manifest(directory, n, image_shape, dtype, catalog, extra=None):
    """Write ``sample.json`` into ``directory``; ``extra`` entries are added to it."""
    from astropy.table import QTable

    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "n": int(n),
        "image_shape": [int(s) for s in image_shape],
        "dtype": str(np.dtype(dtype)),
        "catalog": CATALOG_FILE,
        "images": IMAGES_FILE,
        "table_class": "QTable" if isinstance(catalog, QTable) else "Table",
    }
    if extra:
        manifest.update(extra)
    with open(Path(directory) / MANIFEST_FILE, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_manifest(path):
    """The manifest of the saved sample at ``path`` (checked to be one sfnet reads)."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(f"saved sample {path} has no {MANIFEST_FILE} "
                                f"(missing file {file})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{file} does not describe a saved GalaxySample")
    if int(manifest.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{file} has format version {manifest['version']}; this sfnet "
                         f"reads up to version {FORMAT_VERSION} (upgrade sfnet)")
    for key in ("n", "image_shape"):
        if key not in manifest:
            raise ValueError(f"{file} lacks the {key!r} entry")
    return manifest


def is_sample_dir(path):
    """Whether ``path`` holds a readable ``sample.json``."""
    try:
        read_manifest(path)
    except (OSError, ValueError):
        return False
    return True


def check_target_dir(path, overwrite, name="path"):
    """Refuse to write over anything but an empty dir or (with overwrite) a sample.

    Raises `sfnet._io.NotADirectoryPathError` (a `FileExistsError`) if ``path``
    is a file, `FileExistsError` if it holds a sample and ``overwrite`` is
    false or holds anything else.
    """
    path = check_output_dir(path, name)
    if not path.is_dir():
        return
    if not any(path.iterdir()):
        return
    if is_sample_dir(path):
        if not overwrite:
            raise FileExistsError(f"a saved sample already exists at {path}; "
                                  "pass overwrite=True to replace it")
        return
    raise FileExistsError(f"{path} is a non-empty directory that is not a saved "
                          "sample; refusing to replace it")


def build_dir(path, fill, replace):
    """Create directory ``path`` atomically: ``fill(tmp)`` then rename.

    If ``path`` already exists it is replaced when ``replace`` is true (the
    caller has checked it may be), otherwise it is left alone and ``False`` is
    returned (someone else built it first).  Returns ``True`` when our directory
    is now at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        fill(tmp)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        try:
            os.rename(tmp, path)
            return True
        except OSError:
            if not path.exists():
                raise
            if not replace:
                shutil.rmtree(tmp)
                return False
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_sample_dir(path, catalog, n, image_shape, dtype, read_chunk, overwrite=False,
                     id_column=DEFAULT_ID_COLUMN):
    """Write a saved sample at ``path`` atomically (checked first, then built and renamed).

    ``read_chunk(slice)`` returns those rows of the images in memory; they are
    streamed to ``images.npy`` in chunks of about `CHUNK_BYTES`.
    """
    path = Path(path)
    check_target_dir(path, overwrite)

    def fill(tmp):
        write_catalog(tmp / CATALOG_FILE, catalog)
        with open(tmp / IMAGES_FILE, "wb") as fh:
            writer = NpyWriter(fh, n, image_shape, dtype)
            per_chunk = max(1, CHUNK_BYTES // max(1, writer.item_bytes))
            for start in range(0, n, per_chunk):
                writer.write(read_chunk(slice(start, start + per_chunk)))
            writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        write_manifest(tmp, n, image_shape, dtype, catalog,
                       extra={"id_column": id_column})

    build_dir(path, fill, replace=True)
    return path


def read_sample_dir(path, mmap=True, with_id_column=False):
    """``(images, catalog)`` of the saved sample at ``path``, checked against each other.

    With ``with_id_column``: ``(images, catalog, id_column)``, the ID column
    recorded in the manifest (``objID`` for samples saved before it was).
    """
    from astropy.table import QTable, Table

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no saved GalaxySample directory at {path}")
    manifest = read_manifest(path)
    for name in (CATALOG_FILE, IMAGES_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"saved sample {path} has no {name} "
                                    f"(missing file {path / name})")
    table_cls = QTable if manifest.get("table_class") == "QTable" else Table
    catalog = table_cls.read(path / CATALOG_FILE, format="ascii.ecsv")
    try:
        images = np.load(path / IMAGES_FILE, mmap_mode="r" if mmap else None,
                         allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"cannot read {path / IMAGES_FILE}: {exc}") from exc
    expected = (int(manifest["n"]),) + tuple(int(s) for s in manifest["image_shape"])
    if images.shape != expected:
        raise ValueError(f"{path / IMAGES_FILE} has shape {images.shape} but "
                         f"{path / MANIFEST_FILE} says {expected}")
    if len(catalog) != images.shape[0]:
        raise ValueError(f"{path / CATALOG_FILE} has {len(catalog)} rows but "
                         f"{path / IMAGES_FILE} has {images.shape[0]} images")
    if with_id_column:
        return images, catalog, str(manifest.get("id_column", DEFAULT_ID_COLUMN))
    return images, catalog


# ---------------------------------------------------------------------------
# rows
def normalize_rows(key, n, *, unique=True):
    """A row index of a sequence of ``n`` rows as a slice or a 1-D intp array.

    The one interpretation of row indices: slices, integers (a slice of one
    row), boolean masks of length ``n`` and integer arrays (negative counted
    from the end).  With ``unique`` an integer array must not repeat rows.
    """
    if isinstance(key, slice):
        return slice(*key.indices(n))
    if isinstance(key, (bool, np.bool_)):
        raise TypeError("a sample cannot be indexed with a single bool; "
                        "use a boolean mask of length len(sample)")
    if isinstance(key, (int, np.integer)):
        i = int(key)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a sample of {n}")
        i %= n
        return slice(i, i + 1)
    if isinstance(key, (str, tuple)):
        raise TypeError(
            f"a sample is indexed by rows (slice, boolean mask or integer "
            f"indices), not {key!r}; use sample.catalog[...] for columns")
    if np.ma.isMaskedArray(key):
        key = np.ma.filled(key, False if key.dtype == bool else -n - 1)
    arr = np.asarray(key)
    if arr.ndim != 1:
        raise IndexError(f"row index must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        if arr.shape[0] != n:
            raise IndexError(f"boolean mask has length {arr.shape[0]} but the "
                             f"sample has {n} rows")
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.empty(0, dtype=np.intp)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"row index must be integers or booleans, got dtype "
                         f"{arr.dtype}")
    if arr.min() < -n or arr.max() >= n:
        raise IndexError(f"row index out of range for a sample of {n}")
    arr = np.where(arr < 0, arr + n, arr).astype(np.intp)
    if unique and np.unique(arr).size != arr.size:
        raise ValueError("row index repeats rows; a sample's objIDs must stay "
                         "unique (index sample.images directly to resample)")
    return arr


def as_run(index):
    """``slice(a, b)`` if ``index`` is the ascending run ``a, a+1, ..., b-1``."""
    if index.size == 0:
        return slice(0, 0)
    a = int(index[0])
    if int(index[-1]) - a + 1 == index.size and np.all(np.diff(index) == 1):
        return slice(a, a + index.size)
    return None


def read_rows(base, rows):
    """Rows (absolute positions in ``base``) as an in-memory array, in the requested order.

    Reads in ascending order (friendly to memory-mapped files).
    """
    rows = np.asarray(rows, dtype=np.intp)
    if rows.size > 1 and np.any(rows[1:] < rows[:-1]):
        order = np.argsort(rows, kind="stable")
        out = np.empty((rows.size,) + tuple(base.shape[1:]), dtype=base.dtype)
        out[order] = base[rows[order]]
        return out
    return np.asarray(base[rows])


# ---------------------------------------------------------------------------
# memory-mapped files: references (pickling) and positioned reads (training)
def memmap_reference(arr):
    """``(filename, offset, shape, dtype, (start, step, n))`` locating the rows of a
    memmap (or a row slice of one) in its file, or None if that is not possible."""
    import mmap

    if not isinstance(arr, np.memmap):
        return None
    root = arr
    while isinstance(root.base, np.memmap):
        root = root.base
    if (not isinstance(root.base, mmap.mmap) or not root.filename
            or root.mode not in ("r", "r+") or arr.shape[1:] != root.shape[1:]
            or arr.strides[1:] != root.strides[1:] or root.shape[0] == 0):
        return None
    s0 = root.strides[0]
    delta = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if s0 <= 0 or delta % s0 or arr.strides[0] % s0:
        return None
    step = arr.strides[0] // s0 if arr.shape[0] > 1 else 1
    return (str(root.filename), int(root.offset), tuple(root.shape), root.dtype.str,
            (delta // s0, step, arr.shape[0]))


def open_reference(filename, offset, shape, dtype, rows):
    """Map a file located by `memmap_reference` again, read-only: ``(base, index)``.

    ``rows`` is the ``(start, step, n)`` run or an array of rows; ``index`` is
    None when ``base`` already is exactly those rows (a slice of the map).
    """
    mm = np.memmap(filename, mode="r", dtype=np.dtype(dtype), shape=tuple(shape),
                   offset=offset)
    if isinstance(rows, tuple):
        start, step, n = rows
        rows = np.arange(start, start + step * n, step) if step < 0 else \
            slice(start, start + step * n, step)
    if isinstance(rows, np.ndarray):
        run = as_run(rows)
        rows = rows if run is None else run
    if isinstance(rows, slice):
        return mm[rows], None
    return mm, rows


def read_file_rows(arr, rows):
    """Rows of a file-backed memmap read with positioned reads, not through the map.

    Reading through a `numpy.memmap` maps every page it touches into the
    process, where it counts as resident memory until the kernel reclaims it:
    an epoch over a large sample would show a resident set as large as the
    file.  Reading the same bytes with ``preadv`` goes through the page cache
    only, so the memory of a streamed epoch stays that of a few batches,
    whatever the size of the sample.  Runs of consecutive rows are read with
    one call each.

    Parameters
    ----------
    arr : numpy.memmap
        A C-ordered memmap, or a row slice of one.
    rows : array of int
        Rows of ``arr`` in any order: they are read in file order, each
        straight into its place in the result (no sort and un-permute copy).

    Returns
    -------
    numpy.ndarray or None
        A new writable array ``arr[rows]``, or None when ``arr`` is not a
        file-backed C-ordered memmap or the platform lacks ``os.preadv``
        (then index ``arr`` instead).
    """
    if not hasattr(os, "preadv"):
        return None
    ref = memmap_reference(arr)
    if ref is None or not arr[:1].flags.c_contiguous:
        return None
    filename, offset, shape, dtype, (start, step, n) = ref
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"rows out of range for {n} images")
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    out = np.empty((rows.size,) + tuple(arr.shape[1:]), dtype=arr.dtype)
    if rows.size == 0:
        return out
    file_rows = start + rows * step
    buf = memoryview(out.reshape(rows.size, -1).view(np.uint8)).cast("B")
    # read in file order, each row straight into its place in ``out`` (one
    # ``preadv`` per run of consecutive file rows, scattering into the output)
    order = np.argsort(file_rows, kind="stable")
    sorted_rows = file_rows[order]
    # split wherever the next file row is not the one right after
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    fd = os.open(filename, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, rows.size]):
            pos = offset + int(sorted_rows[a]) * row_bytes
            views = _destination_views(buf, order[a:b], row_bytes)
            while views:
                got = os.preadv(fd, views[:_IOV_MAX], pos)
                if got <= 0:
                    raise OSError(f"{filename} ended before row {int(sorted_rows[a])} "
                                  "(was the file truncated?)")
                pos += got
                while got and views:  # drop what was filled, keep the rest
                    if got >= len(views[0]):
                        got -= len(views.pop(0))
                    else:
                        views[0], got = views[0][got:], 0
    finally:
        os.close(fd)
    return out


#: Buffers per ``preadv`` call (POSIX guarantees at least 16, Linux allows 1024).
_IOV_MAX = 512


def _destination_views(buf, dest, row_bytes):
    """Memoryviews of ``buf`` for the output rows ``dest``, in that order, with rows
    that follow each other in the output merged into one view."""
    if len(dest) and np.all(np.diff(dest) == 1):  # already in order: one view
        return [buf[int(dest[0]) * row_bytes:(int(dest[-1]) + 1) * row_bytes]]
    views, first, count = [], int(dest[0]), 1
    for d in dest[1:]:
        if int(d) == first + count:
            count += 1
            continue
        views.append(buf[first * row_bytes:(first + count) * row_bytes])
        first, count = int(d), 1
    views.append(buf[first * row_bytes:(first + count) * row_bytes])
    return views


# ---------------------------------------------------------------------------
# catalogs: tables with exact int64 objIDs, pandas both ways
def is_dataframe(obj):
    """Whether ``obj`` is a `pandas.DataFrame` (without importing pandas)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def table_from_pandas(df):
    """A `~astropy.table.Table` from a DataFrame, with units where they are known."""
    from astropy import units as u
    from astropy.table import Table

    from ..catalog import add_units

    names = list(df.columns) + [n for n in df.index.names if n is not None]
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"catalog (a DataFrame) must have string column names; got {bad!r}")
    # A named index (``df.set_index("objID")``) is data; a default RangeIndex is not.
    keep_index = any(n is not None for n in df.index.names)
    try:
        table = Table.from_pandas(df, index=keep_index)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"catalog (a DataFrame) cannot be converted to an astropy "
                        f"Table: {exc}") from exc
    units = df.attrs.get("units") if isinstance(df.attrs, dict) else None
    for name, unit in (units or {}).items():
        if name in table.colnames and table[name].dtype.kind in "fiuc":
            try:
                table[name].unit = u.Unit(unit)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"catalog (a DataFrame) records unit {unit!r} for column "
                                 f"{name!r}, which astropy cannot parse: {exc}") from exc
    return add_units(table, descriptions=True)


def exact_int64(data):
    """Strings of digits or Python ints as exact int64, or None if they are not."""
    if data.dtype.kind not in "OUS":
        return None
    if data.dtype.kind == "O" and not all(
            isinstance(v, (int, np.integer, str)) and not isinstance(v, bool)
            for v in data):
        return None  # floats among them would be truncated silently
    try:
        return data.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        return None


def check_id_column(id_column, name="id_column"):
    """``id_column`` if it is a non-empty string, else TypeError/ValueError naming ``name``."""
    if not isinstance(id_column, str):
        raise TypeError(f"{name} must be a column name (a string), got {id_column!r}")
    if not id_column.strip():
        raise ValueError(f"{name} must be a non-empty column name")
    return id_column


def normalize_ids(catalog, column=DEFAULT_ID_COLUMN):
    """Make ``catalog[column]`` unique, unmasked IDs (in place); return ``catalog``.

    The default ``objID`` column must hold integers (strings of digits are
    converted exactly); it becomes int64.  Any other ID column may hold
    integers (made int64) or strings (kept as strings, e.g. DESI names); IDs
    never go through float.
    """
    if column not in catalog.colnames:
        raise ValueError(f"catalog must have an {column!r} column; it has {catalog.colnames}")
    col = catalog[column]
    if getattr(col, "mask", None) is not None and np.any(col.mask):
        raise ValueError(f"catalog column {column!r} has {int(np.sum(col.mask))} masked value(s)")
    data = np.asarray(col)
    if data.ndim != 1:
        raise ValueError(f"catalog column {column!r} must be one-dimensional, got shape "
                         f"{data.shape}")
    if column != DEFAULT_ID_COLUMN and data.dtype.kind in "OUS":
        data = _string_ids(data, column)
        if data is not None:
            catalog.replace_column(column, data)
            _check_unique(data, column)
            return catalog
        data = np.asarray(catalog[column])
    if data.dtype.kind in "OUS":
        exact = exact_int64(data)
        if exact is None:
            raise TypeError(f"catalog column {column!r} must be integer (or strings of "
                            f"digits), got dtype {data.dtype} with other values")
        catalog.replace_column(column, exact)
        col, data = catalog[column], exact
    if data.dtype.kind not in "iu":
        kinds = ("integer" if column == DEFAULT_ID_COLUMN else "integer or string")
        raise TypeError(f"catalog column {column!r} must be {kinds} (64-bit SDSS ids "
                        f"lose digits as float), got dtype {data.dtype}")
    if data.dtype != np.int64:
        if data.dtype == np.uint64 and data.size and data.max() > np.iinfo(np.int64).max:
            raise ValueError(f"catalog column {column!r} has values beyond the int64 range")
        catalog.replace_column(column, col.astype(np.int64))
        data = np.asarray(catalog[column])
    _check_unique(data, column)
    return catalog


def _string_ids(data, column):
    """A unicode array of string IDs, or None for an object column of Python ints."""
    if data.dtype.kind == "S":
        try:
            return np.char.decode(data, "utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"catalog column {column!r} holds bytes that are not "
                             f"UTF-8: {exc}") from None
    if data.dtype.kind == "U":
        return data
    if all(isinstance(v, str) for v in data):
        return np.array(list(data), dtype=str) if data.size else np.array([], dtype="U1")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in data):
        return None
    raise TypeError(f"catalog column {column!r} must hold integers or strings (IDs never "
                    f"go through float), got mixed values of dtype {data.dtype}")


def _check_unique(data, column):
    if data.size > 1:
        s = np.sort(data)
        dup = np.unique(s[1:][s[1:] == s[:-1]])
        if dup.size:
            shown = ", ".join(str(d) for d in dup[:5])
            raise ValueError(f"catalog column {column!r} has {dup.size} duplicated "
                             f"value(s), e.g. {shown}")
    if data.dtype.kind == "U" and data.size:
        empty = np.flatnonzero(np.char.str_len(np.char.strip(data)) == 0)
        if empty.size:
            raise ValueError(f"catalog column {column!r} has {empty.size} empty ID(s), "
                             f"first at row {int(empty[0])}")


def as_catalog(catalog, id_column=DEFAULT_ID_COLUMN):
    """A shallow-copied Table (a DataFrame converted) with checked IDs in ``id_column``."""
    from astropy.table import Table

    if is_dataframe(catalog):
        catalog = table_from_pandas(catalog)
    elif isinstance(catalog, Table):
        catalog = catalog.copy(copy_data=False)
    else:
        raise TypeError(f"catalog must be an astropy Table or QTable (or a pandas "
                        f"DataFrame), got {type(catalog).__name__}")
    return normalize_ids(catalog, id_column)


def catalog_to_pandas(catalog, index=False):
    """``catalog`` as a DataFrame, units in ``attrs["units"]`` (`GalaxySample.to_pandas`)."""
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError("GalaxySample.to_pandas needs pandas; install it with "
                          "'pip install sfnet[pandas]' or 'pip install pandas'") from exc
    multidim = [name for name in catalog.colnames
                if getattr(catalog[name], "ndim", 1) > 1]
    if multidim:
        raise ValueError(f"cannot convert the catalog to pandas: column(s) {multidim} "
                         "are multidimensional; remove or flatten them first")
    if index is True:
        index = None  # astropy: the primary key, if any
    elif index is not False and index not in catalog.colnames:
        raise ValueError(f"index must be False, True or a column name; "
                         f"{index!r} is not in the catalog")
    units = {name: catalog[name].unit.to_string() for name in catalog.colnames
             if getattr(catalog[name], "unit", None) is not None}
    try:
        df = catalog.to_pandas(index=index)
    except ValueError as exc:
        raise ValueError(f"cannot convert the catalog to pandas: {exc}") from exc
    df.attrs["units"] = units
    return df
